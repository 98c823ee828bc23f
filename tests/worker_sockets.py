"""Which process answered an HTTP request: the owner of the server side of its connection.

The REST server's workers share one listening socket, and their answers are identical by design;
the kernel knows which worker accepted a connection. From the client's local port, the server
side's socket is found in ``/proc/net/tcp`` (local port = the server's, remote port = the
client's) and its owner among ``/proc/*/fd`` (Linux).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx


def _server_inode(server_port: int, client_port: int) -> int | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
                and inode
            ):
                return inode
    return None


def _owner(inode: int) -> int | None:
    wanted = f"socket:[{inode}]"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") == wanted:
                    return int(entry)
            except OSError:
                continue
    return None


def answering_pid(server_port: int, response: httpx.Response) -> int:
    """The pid of the process that holds the server side of ``response``'s connection.

    Call it while the connection is open (inside the client's ``with`` block).
    """
    stream = response.extensions["network_stream"]
    client_port = int(stream.get_extra_info("client_addr")[1])
    inode = _server_inode(server_port, client_port)
    assert inode is not None, f"no server socket for client port {client_port}"
    pid = _owner(inode)
    assert pid is not None, f"no process holds socket {inode}"
    return pid
