"""App configs behind ``/api/v1/config`` and gRPC ``ConfigService``.

Reads are the hot path: the active config of an app is served from a per-replica memory slot
(at most ``min(ttl, 1 s)`` old), then the shared cache (Redis, ``api.config_cache_ttl``), then
the database, which is the source of truth. Changes go through
:class:`sinks.config_manager.ConfigManager` (versioned, audited, published on the app's
channel); this service then refreshes the cache so the next read on any replica sees the new
version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import msgspec
from sqlalchemy import Engine

from core.app_config import AppConfig, ConfigVersion, TaskConfig, config_diff, decode_tasks
from core.errors import NotFoundError, StorageUnavailableError, ValidationError
from sinks.config_manager import config_channel, encode_config
from storage.cache import Cache
from storage.configs import active_config, config_apps, config_version, config_versions
from storage.database import session_scope

__all__ = ["ConfigDiff", "ConfigManagerLike", "ConfigService", "cache_key"]

_log = logging.getLogger(__name__)


class ConfigManagerLike(Protocol):
    """What this service needs of :class:`sinks.config_manager.ConfigManager`."""

    def update(
        self,
        app: str,
        tasks: dict[str, TaskConfig],
        *,
        author: str,
        reason: str,
        decision_key: str | None = None,
    ) -> ConfigVersion:
        """Store a new version (validated, audited, published)."""
        ...

    def rollback_to(self, app: str, version: int, *, author: str, reason: str) -> ConfigVersion:
        """Make the tasks of ``version`` the newest version."""
        ...


class ConfigDiff(msgspec.Struct, frozen=True, kw_only=True):
    """What changed from version ``from_version`` to ``to_version``."""

    app: str
    from_version: int
    to_version: int
    changes: dict[str, dict[str, Any]]


def cache_key(app: str) -> str:
    """The shared cache key of an app's active config."""
    return f"llmopt:config-cache:{app}"


class ConfigService:
    """Reads (cached) and changes (through the config manager) app configs."""

    def __init__(
        self,
        engine: Engine,
        cache: Cache,
        *,
        ttl_s: float,
        manager: ConfigManagerLike | None = None,
    ) -> None:
        self._engine = engine
        self._cache = cache
        self._ttl = ttl_s
        self._local_ttl = min(ttl_s, 1.0)
        self._local: dict[str, tuple[float, bytes]] = {}
        self._manager = manager

    def _load(self, app: str) -> bytes:
        with session_scope(self._engine) as session:
            found = active_config(session, app)
        if found is None:
            raise NotFoundError(f"app {app!r} has no config")
        return encode_config(found.as_config())

    async def active_json(self, app: str) -> bytes:
        """The active config of ``app`` as JSON (CONTRACT.md §3).

        Raises:
            NotFoundError: The app has no config.
        """
        now = time.monotonic()
        slot = self._local.get(app)
        if slot is not None and slot[0] > now:
            return slot[1]
        raw: bytes | None = None
        try:
            raw = await self._cache.get(cache_key(app))
        except StorageUnavailableError as exc:
            _log.warning("config cache unavailable, reading the database: %s", exc)
        if raw is None:
            raw = await asyncio.to_thread(self._load, app)
            await self._store(app, raw)
        if len(self._local) > 10_000:
            self._local.clear()
        self._local[app] = (now + self._local_ttl, raw)
        return raw

    async def active(self, app: str) -> AppConfig:
        """The active config of ``app`` (decoded)."""
        return msgspec.json.decode(await self.active_json(app), type=AppConfig)

    async def _store(self, app: str, raw: bytes) -> None:
        self._local.pop(app, None)
        try:
            await self._cache.set(cache_key(app), raw, self._ttl)
        except StorageUnavailableError as exc:
            _log.warning("config cache unavailable, not cached: %s", exc)

    def apps(self) -> list[str]:
        """Every app that has a config."""
        with session_scope(self._engine) as session:
            return config_apps(session)

    def versions(
        self, app: str, *, before: int | None = None, limit: int = 100
    ) -> list[ConfigVersion]:
        """Versions of ``app``'s config, newest first."""
        if not 1 <= limit <= 1000:
            raise ValidationError(f"limit must be between 1 and 1000, not {limit}")
        with session_scope(self._engine) as session:
            found = config_versions(session, app, before=before, limit=limit)
        if not found and before is None:
            raise NotFoundError(f"app {app!r} has no config")
        return found

    def version(self, app: str, version: int) -> ConfigVersion:
        """One version of ``app``'s config (NotFoundError when it does not exist)."""
        with session_scope(self._engine) as session:
            return config_version(session, app, version)

    def diff(self, app: str, from_version: int, to_version: int) -> ConfigDiff:
        """What changed between two versions of ``app``'s config."""
        with session_scope(self._engine) as session:
            a = config_version(session, app, from_version)
            b = config_version(session, app, to_version)
        return ConfigDiff(
            app=app,
            from_version=from_version,
            to_version=to_version,
            changes=config_diff(a.tasks, b.tasks),
        )

    def _require_manager(self) -> ConfigManagerLike:
        if self._manager is None:
            raise StorageUnavailableError("config changes are not available on this server")
        return self._manager

    async def _published(self, version: ConfigVersion) -> ConfigVersion:
        raw = encode_config(version.as_config())
        await self._store(version.app, raw)
        await self._publish(version.app, raw)
        return version

    async def refresh(self, app: str) -> None:
        """Re-read ``app``'s active config after a change made elsewhere; cache and publish it."""
        try:
            raw = await asyncio.to_thread(self._load, app)
        except NotFoundError:
            return
        await self._store(app, raw)
        await self._publish(app, raw)

    async def _publish(self, app: str, raw: bytes) -> None:
        try:
            await self._cache.publish(config_channel(app), raw)
        except StorageUnavailableError as exc:
            _log.warning("config not published (watchers re-read the database): %s", exc)

    async def update(self, app: str, tasks: Any, *, author: str, reason: str) -> ConfigVersion:
        """Validate ``tasks`` (plain JSON data) and store them as ``app``'s next version."""
        if not app or len(app) > 512:
            raise ValidationError("app must be 1 to 512 characters")
        valid = decode_tasks(tasks)
        manager = self._require_manager()
        version = await asyncio.to_thread(manager.update, app, valid, author=author, reason=reason)
        return await self._published(version)

    async def rollback_to(
        self, app: str, version: int, *, author: str, reason: str
    ) -> ConfigVersion:
        """Make version ``version`` of ``app`` active again (as a new version)."""
        manager = self._require_manager()
        found = await asyncio.to_thread(
            manager.rollback_to, app, version, author=author, reason=reason
        )
        return await self._published(found)
