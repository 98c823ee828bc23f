"""The config manager: versioned app configs for people (REST/gRPC) and the actuator.

Every change is a new version with its author, reason and diff, audited in the same
transaction (``storage.configs``, which also queues it as a ``config_changed`` outbox row for the
GitOps repository). After a commit the new active config is handed to
``publish`` (Redis pub/sub, or the in-process bus), so watchers see it at once; watchers also
re-read the database, so a missed message is late, never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine

from core.app_config import AppConfig, ConfigVersion, TaskConfig, config_diff
from core.errors import NotFoundError
from storage.configs import active_config, config_version, config_versions, save_config
from storage.database import session_scope

__all__ = ["ConfigManager", "config_channel", "encode_config"]

_ENCODER = msgspec.json.Encoder()


def config_channel(app: str) -> str:
    """The pub/sub channel on which ``app``'s active config is published after each change."""
    return f"llmopt:config:{app}"


def encode_config(config: AppConfig) -> bytes:
    """The wire form of a config (CONTRACT.md §3), as published and as served."""
    return _ENCODER.encode(config)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ConfigManager:
    """Reads and changes app configs; each change is a version, audited and published."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime] = _utc_now,
        publish: Callable[[AppConfig], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._publish = publish

    def active(self, app: str) -> ConfigVersion:
        """The active version of ``app``'s config.

        Raises:
            NotFoundError: When the app has no config yet.
        """
        with session_scope(self._engine) as session:
            found = active_config(session, app)
        if found is None:
            raise NotFoundError(f"app {app!r} has no config")
        return found

    def version(self, app: str, version: int) -> ConfigVersion:
        """One stored version (``NotFoundError`` when missing)."""
        with session_scope(self._engine) as session:
            return config_version(session, app, version)

    def versions(
        self, app: str, *, before: int | None = None, limit: int = 100
    ) -> list[ConfigVersion]:
        """Versions newest first; ``before`` continues a page."""
        with session_scope(self._engine) as session:
            return config_versions(session, app, before=before, limit=limit)

    def diff(self, app: str, a: int, b: int) -> dict[str, dict[str, Any]]:
        """What changed from version ``a`` to version ``b``."""
        with session_scope(self._engine) as session:
            first = config_version(session, app, a)
            second = config_version(session, app, b)
        return config_diff(first.tasks, second.tasks)

    def update(
        self,
        app: str,
        tasks: dict[str, TaskConfig],
        *,
        author: str,
        reason: str,
        decision_key: str | None = None,
    ) -> ConfigVersion:
        """Store ``tasks`` as the next version and publish it."""
        with session_scope(self._engine) as session:
            saved = save_config(
                session,
                app,
                tasks,
                author=author,
                reason=reason,
                now=self._clock(),
                decision_key=decision_key,
            )
        self.published(saved.as_config())
        return saved

    def rollback_to(self, app: str, version: int, *, author: str, reason: str) -> ConfigVersion:
        """A new version with the tasks of ``version`` (history is never rewritten)."""
        with session_scope(self._engine) as session:
            old = config_version(session, app, version)
            saved = save_config(
                session,
                app,
                old.tasks,
                author=author,
                reason=reason or f"roll back to version {version}",
                now=self._clock(),
            )
        self.published(saved.as_config())
        return saved

    def published(self, config: AppConfig) -> None:
        """Hand a committed config to the publisher (errors are the publisher's to log)."""
        if self._publish is not None:
            self._publish(config)
