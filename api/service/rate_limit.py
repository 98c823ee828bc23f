"""Rate limits by GCRA: one shared limit per identity across replicas (Redis) or in-process.

The generic cell rate algorithm keeps one number per key, the theoretical arrival time (TAT).
A request is allowed when ``TAT - burst·T <= now`` (``T = 1/rate``) and moves TAT to
``max(TAT, now) + T``. In Redis the check and the update are one Lua script run on the server's
clock, so N replicas enforce one limit, not N.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Protocol

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["MemoryRateLimiter", "RateDecision", "RateLimiter", "RedisRateLimiter", "open_limiter"]

_log = logging.getLogger(__name__)

_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return {1, math.floor((now - allow_at) / interval), 0, new_tat - now}
"""


class RateDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one request against a limit (times in seconds)."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    """Until the bucket is full again."""
    retry_after_s: float
    """Until the next request would be allowed (0 when this one was)."""


class RateLimiter(Protocol):
    """Counts one request of ``key`` against ``rate`` per second with ``burst``."""

    async def hit(self, key: str, rate: float, burst: int) -> RateDecision:
        """Allow or refuse one request of ``key``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _decision(
    allowed: bool, burst: int, remaining: int, retry_us: float, reset_us: float
) -> RateDecision:
    return RateDecision(
        allowed=allowed,
        limit=burst,
        remaining=max(0, min(burst, remaining)),
        reset_s=max(0.0, reset_us / 1e6),
        retry_after_s=max(0.0, retry_us / 1e6),
    )


class MemoryRateLimiter:
    """GCRA in this process (``make run``: one replica, nothing outside)."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def hit(self, key: str, rate: float, burst: int) -> RateDecision:
        """See :class:`RateLimiter`."""
        interval = 1e6 / rate
        now = time.monotonic() * 1e6
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + interval
        allow_at = new_tat - burst * interval
        if now < allow_at:
            return _decision(False, burst, 0, allow_at - now, tat - now)
        if len(self._tat) > 100_000:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._tat[key] = new_tat
        return _decision(True, burst, math.floor((now - allow_at) / interval), 0, new_tat - now)

    async def close(self) -> None:
        """See :class:`RateLimiter`."""


class RedisRateLimiter:
    """GCRA state in Redis under ``prefix``, shared by every replica; fails open when down."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_GCRA)
        self._prefix = prefix

    async def hit(self, key: str, rate: float, burst: int) -> RateDecision:
        """See :class:`RateLimiter`."""
        try:
            found = await self._script(keys=[f"{self._prefix}:{key}"], args=[1e6 / rate, burst])
        except RedisError as exc:
            # Availability over strictness: a Redis outage must not take the API down.
            _log.warning("rate limiter unavailable, allowing: %s", exc.__class__.__name__)
            return _decision(True, burst, burst, 0, 0)
        allowed, remaining, retry_us, reset_us = (int(v) for v in found)
        return _decision(bool(allowed), burst, remaining, retry_us, reset_us)

    async def close(self) -> None:
        """See :class:`RateLimiter`."""
        await self._redis.aclose()


def open_limiter(redis_url: str, prefix: str) -> RateLimiter:
    """Redis when a URL is given, else in-process state."""
    return RedisRateLimiter(redis_url, prefix) if redis_url else MemoryRateLimiter()
