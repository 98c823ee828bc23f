"""One migration at a time: several processes may start on a fresh database at once.

The dataflow processes of a cluster, the orchestrator and an operator's ``llmopt migrate`` all
bring the schema to head when they start. Alembic alone is not safe under that race (two
upgrades both find no ``alembic_version`` and both create the tables), so every upgrade runs
under a lock that the database's users share:

- PostgreSQL: a transaction-level advisory lock taken on the migration's own connection
  (``pg_advisory_xact_lock``), released by the commit; whoever waited then finds the schema
  at head and does nothing.
- SQLite: an exclusive ``fcntl`` lock on ``<database file>.migrate-lock`` beside the file.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text

__all__ = ["MIGRATION_LOCK_KEY", "advisory_lock", "file_lock_path", "sqlite_file_lock"]

#: The advisory lock key of schema migrations (any fixed 64-bit number: "llmopt" in ASCII).
MIGRATION_LOCK_KEY = 0x6C6C6D6F7074


def advisory_lock(conn: Connection) -> None:
    """Take the migration lock for the rest of ``conn``'s transaction (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def file_lock_path(engine: Engine) -> Path | None:
    """The lock file of a file-backed SQLite database; None for other databases."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).with_name(Path(database).name + ".migrate-lock")


@contextmanager
def sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Hold an exclusive lock on the SQLite database's lock file (blocks until it is free)."""
    path = file_lock_path(engine)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
