"""The collector's rate limits on Redis: one limit for every replica, not one per process.

Same rule as :class:`collector.rate_limit.RateLimiter` (a per-source and a global GCRA limit,
both checked before either is charged, a batch of ``n`` events charged as ``n`` cells), but the
theoretical arrival times live in Redis and one script (:class:`storage.gcra.RedisGcra`) checks
and charges both on the server's clock: N collector replicas, REST workers and gRPC servers
that ingest telemetry enforce the configured rate together. One round trip per batch (an OTLP
request, a REST telemetry post), not per event.

When Redis does not answer, the batch is judged by an in-process limiter with the same limits
(each process then enforces the limit on its own, as without Redis) and
``collector_rate_limit_fallbacks_total`` counts it: telemetry is never refused because the
limiter's store is down, nor let through unlimited.

A reload changes the rates at once; what each key already used is kept as time (its TAT), so
after a change to a slower rate a busy source waits longer, never less.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from collector.rate_limit import RateLimiter
from storage.gcra import Limit, RedisGcra

__all__ = ["SharedRateLimiter"]

_log = logging.getLogger(__name__)


class SharedRateLimiter:
    """Per-source and global GCRA limits whose state is in Redis under ``prefix``.

    Args:
        url: Redis URL (``storage.redis_url``).
        prefix: Key prefix (``api.rate_limit.prefix``); keys are ``<prefix>:collector:...``.
        source_rate: Events/s per source (0: off).
        source_burst: Burst per source.
        global_rate: Events/s over all sources (0: off).
        global_burst: Burst over all sources.
        fallback: The in-process limiter with the same limits, used while Redis is down.
        on_fallback: Called each time Redis failed and ``fallback`` decided.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        source_rate: float,
        source_burst: int,
        global_rate: float,
        global_burst: int,
        *,
        fallback: RateLimiter,
        on_fallback: Callable[[], None] = lambda: None,
    ) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._gcra = RedisGcra(self._redis)
        self._prefix = f"{prefix}:collector"
        self._local = fallback
        self._on_fallback = on_fallback
        self._failing = False
        self._set(source_rate, source_burst, global_rate, global_burst)

    def _set(self, source_rate: float, source_burst: int, global_rate: float, burst: int) -> None:
        self._limits = (source_rate, max(1, source_burst), global_rate, max(1, burst))

    def reconfigure(
        self, source_rate: float, source_burst: int, global_rate: float, global_burst: int
    ) -> None:
        """New limits from the next batch on (settings reload; the fallback's are the caller's)."""
        self._set(source_rate, source_burst, global_rate, global_burst)

    async def acquire(self, source: str, n: int) -> float:
        """Charge ``n`` events to ``source`` when both shared limits allow them.

        Returns:
            0 when admitted, else seconds to wait before retrying (nothing charged; ``inf``
            when ``n`` exceeds a burst and can never be admitted).
        """
        s_rate, s_burst, g_rate, g_burst = self._limits
        limits = []
        if s_rate > 0:
            limits.append(Limit(f"{self._prefix}:src:{source}", s_rate, s_burst))
        if g_rate > 0:
            limits.append(Limit(f"{self._prefix}:all", g_rate, g_burst))
        if n <= 0 or not limits:
            return 0.0
        if any(n > limit.burst for limit in limits):
            return math.inf
        try:
            cells = await self._gcra.take(limits, want=n, need=n)
        except (RedisError, OSError) as exc:
            if not self._failing:
                _log.warning("shared rate limit unavailable, limiting in process: %s", exc)
            self._failing = True
            self._on_fallback()
            return self._local.acquire(source, n)
        if self._failing:
            _log.info("shared rate limit available again")
            self._failing = False
        return 0.0 if cells.granted else cells.retry_us / 1e6

    async def close(self) -> None:
        """Release the connection pool."""
        await self._redis.aclose()
