"""A throwaway PostgreSQL cluster a test can stop and start (Debian's initdb and pg_ctl).

The machine's own PostgreSQL (tests/conftest.py) must stay up for every other test; a test that
takes the database away needs its own server: ``initdb`` into a temporary folder (trust auth,
no fsync), ``pg_ctl`` on a free loopback port. As root (CI), the server runs as the
``postgres`` user, which Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

from storage.kafka import free_port

__all__ = ["PgCluster", "find_pg_bin"]


def find_pg_bin() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl; fails clearly."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for path in reversed(found):
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    pytest.fail(
        "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (initdb, pg_ctl): install "
        "Debian's postgresql package (scripts/test-services.sh does)",
        pytrace=False,
    )


class PgCluster:
    """One PostgreSQL server in ``root``: :meth:`start`, :meth:`stop`, :attr:`url`."""

    def __init__(self, root: Path) -> None:
        self._bin = find_pg_bin()
        self._root = root
        self._data = root / "data"
        self._log = root / "server.log"
        self.port = free_port()
        self._user: str | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root needs the `postgres` user (Debian's package)")
            self._user = "postgres"
            shutil.chown(root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self._data), "-A", "trust", "-U", "postgres", "--no-sync", "-E",
            "UTF8",
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self._bin / tool), *args]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self._log.read_text() if self._log.exists() else ""
            pytest.fail(f"{tool} failed ({done.returncode}): {done.stderr}{done.stdout}\n{log}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        """Stop the server at once (``-m fast``: sessions are ended, as in an outage)."""
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        """Whether the server is up (``pg_ctl status``)."""
        cmd = [str(self._bin / "pg_ctl"), "-D", str(self._data), "status"]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0
