"""App configs behind ``/api/v1/config`` and gRPC ``ConfigService``.

Reads are the hot path: the active config of an app is served from a per-replica memory slot
(at most ``min(ttl, 1 s)`` old), then the shared cache (Redis, ``api.config_cache_ttl``), then
the database, which is the source of truth.

When the database cannot be reached, a read serves the *last known* config of the app (kept in
memory and, without expiry, in the shared cache under ``llmopt:config-known:{app}``) marked
stale, with its age: seconds since it was last read from the database or the shared cache
(:class:`ConfigRead`). Only an app whose config was never known answers
:class:`core.errors.StorageUnavailableError` (HTTP 503, gRPC ``UNAVAILABLE``). Changes go through
:class:`rollout.config_manager.ConfigManager` (versioned, audited, published on the app's
channel); this service then refreshes the cache so the next read on any replica sees the new
version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from api.service.bounds import check_id
from api.service.config_known import ConfigRead, LastKnownConfigs
from core.app_config import AppConfig, ConfigVersion, TaskConfig, config_diff, decode_tasks
from core.errors import NotFoundError, StorageUnavailableError, ValidationError
from rollout.config_manager import config_channel, encode_config
from storage.cache import Cache
from storage.configs import active_config, config_apps, config_version, config_versions
from storage.database import session_scope

__all__ = ["ConfigDiff", "ConfigManagerLike", "ConfigService", "cache_key"]

_log = logging.getLogger(__name__)


class ConfigManagerLike(Protocol):
    """What this service needs of :class:`rollout.config_manager.ConfigManager`."""

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


_DATABASE_AWAY = (StorageUnavailableError, OperationalError, InterfaceError)


class ConfigService:
    """Reads (cached, stale when the database is away) and changes app configs.

    Args:
        engine: The database (source of truth).
        cache: The shared cache.
        ttl_s: Lifetime of a cached active config (``api.config_cache_ttl``).
        manager: Stores changes (versioned, audited, published).
        clock: Wall time in Unix seconds (the age of a stale config).
    """

    def __init__(
        self,
        engine: Engine,
        cache: Cache,
        *,
        ttl_s: float,
        manager: ConfigManagerLike | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._cache = cache
        self._ttl = ttl_s
        self._local_ttl = min(ttl_s, 1.0)
        # app -> (expiry, JSON, when it was known if it is a stale answer)
        self._local: dict[str, tuple[float, bytes, float | None]] = {}
        self._known = LastKnownConfigs(cache, clock)
        self._manager = manager
        self._clock = clock

    def _load(self, app: str) -> bytes:
        with session_scope(self._engine) as session:
            found = active_config(session, app)
        if found is None:
            raise NotFoundError(f"app {app!r} has no config")
        return encode_config(found.as_config())

    async def active_json(self, app: str) -> bytes:
        """The active config of ``app`` as JSON (CONTRACT.md §3), stale or not (see :meth:`read`).

        Raises:
            NotFoundError: The app has no config.
            StorageUnavailableError: The database is away and no config of ``app`` is known.
        """
        return (await self.read(app)).raw

    async def read(self, app: str) -> ConfigRead:
        """The active config of ``app``: fresh, or the last known one marked stale.

        Raises:
            NotFoundError: The app has no config.
            StorageUnavailableError: The database is away and no config of ``app`` is known.
        """
        now = time.monotonic()
        slot = self._local.get(app)
        if slot is not None and slot[0] > now:
            return self._answer(slot[1], slot[2])
        raw: bytes | None = None
        try:
            raw = await self._cache.get(cache_key(app))
        except StorageUnavailableError as exc:
            _log.warning("config cache unavailable, reading the database: %s", exc)
        known_at: float | None = None  # set when the answer is the last known config
        if raw is None:
            try:
                raw = await asyncio.to_thread(self._load, app)
            except _DATABASE_AWAY as exc:
                known_at, raw = await self._known.last(app, exc)
            else:
                await self._store(app, raw)
                await self._known.remember(app, raw)
        else:
            self._known.note(app, raw)
        if len(self._local) > 10_000:
            self._local.clear()
        # A stale answer is kept for the slot's second too: one database try a second at most.
        self._local[app] = (now + self._local_ttl, raw, known_at)
        return self._answer(raw, known_at)

    def _answer(self, raw: bytes, known_at: float | None) -> ConfigRead:
        if known_at is None:
            return ConfigRead(raw)
        return ConfigRead(raw, True, max(0.0, self._clock() - known_at))

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
        check_id("before", before)
        with session_scope(self._engine) as session:
            found = config_versions(session, app, before=before, limit=limit)
        if not found and before is None:
            raise NotFoundError(f"app {app!r} has no config")
        return found

    def version(self, app: str, version: int) -> ConfigVersion:
        """One version of ``app``'s config (NotFoundError when it does not exist)."""
        check_id("version", version)
        with session_scope(self._engine) as session:
            return config_version(session, app, version)

    def diff(self, app: str, from_version: int, to_version: int) -> ConfigDiff:
        """What changed between two versions of ``app``'s config."""
        check_id("from", from_version)
        check_id("to", to_version)
        with session_scope(self._engine) as session:
            a = config_version(session, app, from_version)
            b = config_version(session, app, to_version)
        return ConfigDiff(
            app=app,
            from_version=from_version,
            to_version=to_version,
            changes=config_diff(a.tasks, b.tasks),
        )

    @property
    def manager(self) -> ConfigManagerLike | None:
        """What stores changes; ``None`` for a read-only service."""
        return self._manager

    def _require_manager(self) -> ConfigManagerLike:
        if self._manager is None:
            raise StorageUnavailableError("config changes are not available on this server")
        return self._manager

    async def _published(self, version: ConfigVersion) -> ConfigVersion:
        raw = encode_config(version.as_config())
        await self._store(version.app, raw)
        await self._known.remember(version.app, raw)
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
        check_id("version", version)
        manager = self._require_manager()
        found = await asyncio.to_thread(
            manager.rollback_to, app, version, author=author, reason=reason
        )
        return await self._published(found)
