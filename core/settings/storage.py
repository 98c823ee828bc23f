"""``[storage]``: PostgreSQL or the SQLite fallback, Redis or the in-process fallback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.settings.rules import Text, Url
from core.settings.spec import setting

__all__ = ["StorageSettings"]


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Databases: PostgreSQL or the SQLite fallback, Redis or the in-process fallback."""

    database_url: str = setting(
        "",
        "e.g. `postgresql+psycopg://user@host/db`",
        Url(
            ("postgresql", "postgresql+psycopg", "sqlite"),
            "a postgresql+psycopg:// or sqlite:/// URL (empty: SQLite under storage.data_dir)",
        ),
        shown="SQLite file under `storage.data_dir`",
        restart=True,
    )
    redis_url: str = setting(
        "",
        "e.g. `redis://127.0.0.1:6379/0`",
        Url(("redis", "rediss", "unix"), "a redis:// URL (empty: in-process cache)"),
        shown="empty: in-process cache and pub/sub",
        restart=True,
    )
    data_dir: str = setting(
        "./var", "SQLite file, embedded broker log", Text(min_len=1), restart=True
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, or the embedded SQLite file under ``data_dir`` when none is set."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'llmopt.sqlite3'}"
