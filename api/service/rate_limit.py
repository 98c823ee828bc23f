"""Rate limits by GCRA: one shared limit per identity across replicas (Redis) or in-process.

The generic cell rate algorithm keeps one number per key, the theoretical arrival time (TAT).
A request is allowed when ``TAT - burst·T <= now`` (``T = 1/rate``) and moves TAT to
``max(TAT, now) + T``. In Redis the check and the update are one Lua script run on the server's
clock (:mod:`storage.gcra`, the same one the collector's shared limit runs), so N replicas
enforce one limit, not N.

A busy key would cost one Redis round trip per request, more than the rest of a config read.
So a replica takes *leases*: the script grants up to ``n`` cells at once (moving TAT by
``n·T``, exactly as ``n`` single requests would), and the replica spends them locally for at
most ``lease_s`` (50 ms); cells left when the lease ends are forfeited, never handed out
twice. ``n`` follows the key's recent request rate on this replica, capped at ``rate·lease_s``
and :data:`MAX_LEASE`, and is 1 for a key that is new, quiet or limited to less than
``1/lease_s`` per second: such keys get one round trip per request and exact decisions, as
before. Tolerance: a cell may be spent up to ``lease_s`` after Redis granted it, so in any
interval the requests allowed over all replicas exceed GCRA's bound by at most
``rate·lease_s`` (5 % of one second's allowance); forfeited cells can only make the limit
stricter, by at most one lease per replica and lease period. A refusal is remembered until its
``Retry-After`` (TAT never moves back, so nothing is allowed earlier anyway): an over-limit
key does not cost a round trip per request either.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from storage.gcra import Limit, RedisGcra, gcra_wait

__all__ = [
    "LEASE_S",
    "MAX_LEASE",
    "MemoryRateLimiter",
    "RateDecision",
    "RateLimiter",
    "RedisRateLimiter",
    "open_limiter",
]

#: How long a replica may spend cells that Redis granted it in one lease.
LEASE_S = 0.05
#: The most cells one lease may take.
MAX_LEASE = 100

_log = logging.getLogger(__name__)


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
        interval = 1.0 / rate
        now = time.monotonic()
        tat = max(self._tat.get(key, now), now)
        wait = gcra_wait(tat, now, 1, burst, interval)
        if wait > 0.0:
            return _decision(False, burst, 0, wait * 1e6, (tat - now) * 1e6)
        if len(self._tat) > 100_000:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._tat[key] = new_tat = tat + interval
        remaining = math.floor(burst - 1 - (tat - now) / interval + 1e-9)
        return _decision(True, burst, remaining, 0, (new_tat - now) * 1e6)

    async def close(self) -> None:
        """See :class:`RateLimiter`."""


class _Lease:
    """Cells of one key that this replica may still spend, and what Redis said with them."""

    __slots__ = (
        "cells",
        "expires",
        "granted_at",
        "pending",
        "rate",
        "refused_until",
        "remaining",
        "reset_at",
        "size",
    )

    def __init__(self) -> None:
        self.cells = 0
        self.size = 0
        self.granted_at = 0.0
        self.expires = 0.0
        self.remaining = 0
        """Cells left in Redis when this lease was granted."""
        self.reset_at = 0.0
        self.refused_until = 0.0
        self.rate = 0.0
        """Requests per second of this key on this replica (moving average)."""
        self.pending: asyncio.Future[None] | None = None


class RedisRateLimiter:
    """GCRA state in Redis under ``prefix``, shared by every replica; fails open when down.

    Busy keys are served from short leases (see the module docstring for the tolerance).
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        lease_s: float = LEASE_S,
        max_lease: int = MAX_LEASE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._gcra = RedisGcra(self._redis)
        self._prefix = prefix
        self._lease_s = lease_s
        self._max_lease = max_lease
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self.round_trips = 0
        """Scripts run so far (for tests and benchmarks)."""

    async def hit(self, key: str, rate: float, burst: int) -> RateDecision:
        """See :class:`RateLimiter`."""
        while True:
            now = self._clock()
            lease = self._leases.get(key)
            if lease is None:
                if len(self._leases) > 100_000:
                    self._leases = {
                        k: v
                        for k, v in self._leases.items()
                        if v.pending or max(v.expires, v.refused_until) > now
                    }
                lease = self._leases[key] = _Lease()
            if now < lease.refused_until:
                wait_us = (lease.refused_until - now) * 1e6
                return _decision(False, burst, 0, wait_us, (lease.reset_at - now) * 1e6)
            if lease.cells > 0 and now < lease.expires:
                lease.cells -= 1
                remaining = lease.remaining + lease.cells
                return _decision(True, burst, remaining, 0, (lease.reset_at - now) * 1e6)
            if lease.pending is None:
                return await self._renew(key, lease, rate, burst, now)
            await asyncio.wait([lease.pending])  # another request is renewing this lease

    async def _renew(
        self, key: str, lease: _Lease, rate: float, burst: int, now: float
    ) -> RateDecision:
        if lease.size:  # how fast this replica spent the last lease's cells
            elapsed = max(now - lease.granted_at, self._lease_s / 10)
            lease.rate = 0.5 * lease.rate + 0.5 * (lease.size - lease.cells) / elapsed
        want = max(1, min(self._max_lease, math.ceil(min(lease.rate, rate) * self._lease_s)))
        pending = lease.pending = asyncio.get_running_loop().create_future()
        try:
            granted, remaining, retry_us, reset_us = await self._take(key, rate, burst, want)
        finally:
            lease.pending = None
            pending.set_result(None)
        at = self._clock()
        lease.granted_at = at
        lease.size = granted
        lease.cells = max(0, granted - 1)
        lease.expires = at + self._lease_s
        lease.remaining = remaining
        lease.reset_at = at + reset_us / 1e6
        if granted < 1:
            lease.refused_until = at + retry_us / 1e6
            return _decision(False, burst, 0, retry_us, reset_us)
        return _decision(True, burst, remaining + lease.cells, 0, reset_us)

    async def _take(
        self, key: str, rate: float, burst: int, want: int
    ) -> tuple[int, int, float, float]:
        """``want`` cells from Redis: (granted, remaining, retry_us, reset_us)."""
        self.round_trips += 1
        try:
            cells = await self._gcra.take(
                [Limit(f"{self._prefix}:{key}", rate, burst)], want=want, need=1
            )
        except RedisError as exc:
            # Availability over strictness: a Redis outage must not take the API down.
            _log.warning("rate limiter unavailable, allowing: %s", exc.__class__.__name__)
            return 1, burst, 0.0, 0.0
        return cells.granted, cells.remaining, cells.retry_us, cells.reset_us

    async def close(self) -> None:
        """See :class:`RateLimiter`."""
        await self._redis.aclose()


def open_limiter(redis_url: str, prefix: str) -> RateLimiter:
    """Redis when a URL is given, else in-process state."""
    return RedisRateLimiter(redis_url, prefix) if redis_url else MemoryRateLimiter()
