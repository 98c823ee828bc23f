"""Engine creation and schema migration (Alembic) for PostgreSQL or the embedded SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.errors import StorageUnavailableError
from storage.json_values import dumps_finite
from storage.migration_lock import advisory_lock, sqlite_file_lock

__all__ = [
    "create_db_engine",
    "head_revision",
    "insert_for",
    "migrate",
    "ping",
    "schema_revision",
    "session_scope",
]

_MIGRATIONS = str(Path(__file__).with_name("migrations"))


def create_db_engine(url: str) -> Engine:
    """Create an engine; for SQLite, create the folder and enable WAL for concurrent readers.

    JSON columns are written with :func:`storage.json_values.dumps_finite` (NaN and Infinity
    become null; PostgreSQL refuses them).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=dumps_finite)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, json_serializer=dumps_finite
    )


def insert_for(engine: Engine) -> Callable[[Any], Any]:
    """The dialect's ``insert`` (PostgreSQL or SQLite), which supports ``on_conflict_do_*``."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` with Alembic (idempotent, safe to race).

    Several processes may call it at once on the same fresh database (the processes of a
    dataflow cluster, the orchestrator): the upgrade runs under a lock they share
    (:mod:`storage.migration_lock`), so one migrates and the others find the schema done.

    Returns:
        The revision the schema was at when this call got the lock (None: empty database).
    """
    from alembic import command  # imported here: slow, and only needed at start
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    try:
        with sqlite_file_lock(engine), engine.begin() as conn:
            advisory_lock(conn)
            before = MigrationContext.configure(conn).get_current_revision()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise StorageUnavailableError(f"database migration failed: {exc}") from exc
    return before


def schema_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StorageUnavailableError(f"database unreachable: {exc.__class__.__name__}") from exc


def head_revision() -> str:
    """The newest revision of the migrations shipped with this code."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise StorageUnavailableError("no migrations found")
    return head


def ping(engine: Engine) -> None:
    """Raise :class:`StorageUnavailableError` unless the database answers ``SELECT 1``."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise StorageUnavailableError(f"database unreachable: {exc.__class__.__name__}") from exc


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back when it raises."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session
