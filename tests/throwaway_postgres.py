"""A throwaway PostgreSQL cluster that a test can stop and start: Debian's initdb and pg_ctl.

The cluster lives in a temporary directory, listens on a free loopback port with trust auth,
and is removed afterwards. Run as root, the server runs as the ``postgres`` user (PostgreSQL
refuses to run as root). Missing binaries fail the test with a message saying what to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storage.kafka import free_port

__all__ = ["PostgresCluster", "throwaway_postgres"]


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb and pg_ctl): "
            "install Debian's postgresql package to run the database-outage tests"
        )
    return Path(found[-1]).parent


class PostgresCluster:
    """One cluster: ``url`` to connect, ``stop()`` and ``start()`` to take it away and back."""

    def __init__(self, root: Path, port: int) -> None:
        self._bin = _bin_dir()
        self._data = root / "data"
        self._log = root / "server.log"
        self._socket_dir = root
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            self._as = {"user": "postgres", "group": "postgres"}
            shutil.chown(root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            **self._as,
        )
        if done.returncode != 0:
            log = self._log.read_text() if self._log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr or done.stdout}\n{log[-2000:]}")

    def init(self) -> None:
        """Create the cluster (trust auth, no fsync: it is thrown away)."""
        self._run("initdb", "-D", str(self._data), "-A", "trust", "-U", "postgres", "-N")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._socket_dir} -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options, "-w", "start"
        )

    def stop(self) -> None:
        """Stop the server (fast: open connections are cut) and wait until it is down."""
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")


@contextmanager
def throwaway_postgres() -> Iterator[PostgresCluster]:
    """A started cluster, stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="llmopt-pg-"))
    cluster = PostgresCluster(root, free_port())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError):  # already stopped
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
