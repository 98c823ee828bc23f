"""The collector's rate limits on Redis: one limit for every replica, not one per process.

Same rule as :class:`collector.rate_limit.RateLimiter` (a per-source and a global GCRA limit,
both checked before either is charged, a batch of ``n`` events charged as ``n`` cells), but the
theoretical arrival times live in Redis and one Lua script checks and charges both on the
server's clock: N collector replicas, REST workers and gRPC servers that ingest telemetry
enforce the configured rate together. One round trip per batch (an OTLP request, a REST
telemetry post), not per event.

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

__all__ = ["SharedRateLimiter"]

_log = logging.getLogger(__name__)

# KEYS: source TAT, global TAT. ARGV: source interval µs, source burst, global interval µs,
# global burst, n. Returns 0 when admitted (both charged), else µs until the batch would conform.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[5])
local function wait(key, interval, burst)
  if interval <= 0 then return 0, now end
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  return (tat - now) + (n - burst) * interval, tat
end
local si, sb = tonumber(ARGV[1]), tonumber(ARGV[2])
local gi, gb = tonumber(ARGV[3]), tonumber(ARGV[4])
local sw, stat = wait(KEYS[1], si, sb)
local gw, gtat = wait(KEYS[2], gi, gb)
local w = math.max(sw, gw)
if w >= 1 then return math.ceil(w) end
if si > 0 then
  local new = stat + n * si
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
end
if gi > 0 then
  local new = gtat + n * gi
  redis.call('SET', KEYS[2], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
end
return 0
"""


def _interval_us(rate: float) -> float:
    return 1e6 / rate if rate > 0 else 0.0


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
        self._script = self._redis.register_script(_ACQUIRE)
        self._prefix = f"{prefix}:collector"
        self._local = fallback
        self._on_fallback = on_fallback
        self._failing = False
        self._set(source_rate, source_burst, global_rate, global_burst)

    def _set(self, source_rate: float, source_burst: int, global_rate: float, burst: int) -> None:
        self._args = (
            _interval_us(source_rate),
            max(1, source_burst),
            _interval_us(global_rate),
            max(1, burst),
        )

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
        s_interval, s_burst, g_interval, g_burst = self._args
        if n <= 0 or (s_interval == 0.0 and g_interval == 0.0):
            return 0.0
        if (s_interval and n > s_burst) or (g_interval and n > g_burst):
            return math.inf
        keys = [f"{self._prefix}:src:{source}", f"{self._prefix}:all"]
        try:
            wait_us = await self._script(keys=keys, args=[*self._args, n])
        except (RedisError, OSError) as exc:
            if not self._failing:
                _log.warning("shared rate limit unavailable, limiting in process: %s", exc)
            self._failing = True
            self._on_fallback()
            return self._local.acquire(source, n)
        if self._failing:
            _log.info("shared rate limit available again")
            self._failing = False
        return int(wait_us) / 1e6

    async def close(self) -> None:
        """Release the connection pool."""
        await self._redis.aclose()
