"""The last known config of each app: what reads serve, marked stale, while the database is away.

Kept in memory and, without expiry, in the shared cache under ``llmopt:config-known:{app}`` (the
Unix time it was read, a newline, the JSON), so that a replica started during an outage has it
too. A stale answer says so with ``x-llmopt-config-stale: true`` and ``x-llmopt-config-age-s``
(HTTP headers and gRPC metadata alike).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import StorageUnavailableError
from storage.cache import Cache

__all__ = ["AGE_HEADER", "STALE_HEADER", "ConfigRead", "LastKnownConfigs", "known_key"]

_log = logging.getLogger(__name__)


def known_key(app: str) -> str:
    """The shared cache key of an app's last known config (no expiry).

    Its value is the Unix time it was read from the database, a newline, then the JSON.
    """
    return f"llmopt:config-known:{app}"


@dataclass(frozen=True, slots=True)
class ConfigRead:
    """An active config as served.

    Attributes:
        raw: The config's JSON (CONTRACT.md §3).
        stale: True when the database could not be reached and this is the last known config.
        age_s: For a stale answer, seconds since it was last read from the database or the
            shared cache; 0 otherwise.
    """

    raw: bytes
    stale: bool = False
    age_s: float = 0.0

    def headers(self) -> dict[str, str]:
        """What marks a stale answer: ``x-llmopt-config-stale`` and ``x-llmopt-config-age-s``.

        The same names serve as HTTP headers and gRPC metadata; a fresh answer has none.
        """
        if not self.stale:
            return {}
        return {STALE_HEADER: "true", AGE_HEADER: str(int(self.age_s))}


#: Marks an answer that is the last known config (the database could not be reached).
STALE_HEADER = "x-llmopt-config-stale"
#: Whole seconds since a stale config was last read from the database or the shared cache.
AGE_HEADER = "x-llmopt-config-age-s"


class LastKnownConfigs:
    """The last config read of each app, with when it was read.

    Args:
        cache: The shared cache (where a new replica finds what others read).
        clock: Wall time in Unix seconds.
    """

    def __init__(self, cache: Cache, clock: Callable[[], float]) -> None:
        self._cache = cache
        self._clock = clock
        self._known: dict[str, tuple[float, bytes]] = {}

    def note(self, app: str, raw: bytes) -> None:
        """Keep ``raw`` in memory (read from the shared cache: it is there already)."""
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[app] = (self._clock(), raw)

    async def remember(self, app: str, raw: bytes) -> None:
        """Keep ``raw`` as the app's last known config (memory and, without expiry, the cache)."""
        self.note(app, raw)
        at = self._known[app][0]
        try:
            await self._cache.set(known_key(app), f"{at:.3f}\n".encode() + raw)
        except StorageUnavailableError as exc:
            _log.warning("config cache unavailable, last known config kept in memory: %s", exc)

    async def last(self, app: str, cause: Exception) -> tuple[float, bytes]:
        """When the last known config of ``app`` was read, and its JSON.

        Raises:
            StorageUnavailableError: None is known (``cause`` is the database's error).
        """
        found = self._known.get(app)
        if found is None:
            try:
                stored = await self._cache.get(known_key(app))
            except StorageUnavailableError:
                stored = None
            if stored is not None:
                stamp, _, raw = stored.partition(b"\n")
                try:
                    found = (float(stamp), raw)
                except ValueError:
                    found = None
        if found is None:
            _log.warning("database unavailable and no config of %r known: %s", app, cause)
            raise StorageUnavailableError(
                f"database unavailable and no config of app {app!r} is known yet"
            ) from cause
        _log.warning("database unavailable, serving the last known config of %r", app)
        return found
