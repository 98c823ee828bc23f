"""GCRA, the one rate-limit algorithm: in this process and on Redis for every replica.

GCRA (the generic cell rate algorithm) keeps one number per key, the theoretical arrival time
(TAT): ``n`` cells at time ``now`` conform when ``TAT + n·T - burst·T <= now``
(``T = 1/rate``), and then move TAT to ``max(TAT, now) + n·T``.

Two users, one rule:

- the collector charges a batch of ``n`` events against a per-source and a global limit, all
  or nothing (``need = want = n``);
- the API takes *leases* of up to ``want`` cells of one key and accepts any number from 1
  (``need = 1``).

:class:`Gcra` holds TATs in this process; :class:`RedisGcra` runs :data:`TAKE_SCRIPT` on the
Redis server's clock, checking every limit before charging any, so N replicas enforce one
limit, not N.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TAKE_SCRIPT", "Cells", "Gcra", "Limit", "RedisGcra", "gcra_wait"]

_EPSILON_S = 1e-9


def gcra_wait(tat: float, now: float, n: int, burst: int, interval: float) -> float:
    """Seconds until ``n`` events conform under GCRA, 0 when they do now.

    ``(TAT - now) + (n - burst)·T`` with TAT no earlier than now, in this order; exactly at the
    limit the sum rounds to a few ns either side of 0, and within a nanosecond of 0 it is 0
    (``now + n·T - burst·T - now`` refused a fresh key its whole burst at some clock readings).
    """
    wait = (max(tat, now) - now) + (n - burst) * interval
    return wait if wait > _EPSILON_S else 0.0


class Gcra:
    """One GCRA limit over many keys (least recently used keys beyond ``max_keys`` forgotten).

    Args:
        rate: Events per second; 0 or less means unlimited.
        burst: Events that may arrive at once.
        max_keys: Keys remembered; a forgotten key starts with a full burst again.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._burst = max(1, burst)
        self._max_keys = max_keys
        self._tat: OrderedDict[str, float] = OrderedDict()

    @property
    def burst(self) -> int:
        """Events that may arrive at once."""
        return self._burst

    def reconfigure(self, rate: float, burst: int, now: float) -> None:
        """Take a new rate and burst; each key keeps the events it has used so far.

        A key's outstanding events (``(TAT - now) / T``) are carried over at the new emission
        interval, so a reload neither forgives a burst just sent nor punishes it twice.
        A limit turned off forgets every key; one turned on starts every key with a full burst.
        """
        interval = 1.0 / rate if rate > 0 else 0.0
        if interval == 0.0 or self._interval == 0.0:
            self._tat.clear()
        else:
            scale = interval / self._interval
            for key, tat in self._tat.items():
                self._tat[key] = now + max(0.0, tat - now) * scale
        self._interval = interval
        self._burst = max(1, burst)

    @property
    def unlimited(self) -> bool:
        """True when the rate is 0 (off)."""
        return self._interval == 0.0

    def wait(self, key: str, n: int, now: float) -> float:
        """Seconds until ``n`` events of ``key`` would conform; 0 when they do now."""
        if self.unlimited or n <= 0:
            return 0.0
        if n > self._burst:
            return float("inf")
        return gcra_wait(self._tat.get(key, now), now, n, self._burst, self._interval)

    def take(self, key: str, n: int, now: float) -> None:
        """Record ``n`` events of ``key`` (call after :meth:`wait` returned 0)."""
        if self.unlimited or n <= 0:
            return
        self._tat[key] = max(self._tat.get(key, now), now) + n * self._interval
        self._tat.move_to_end(key)
        while len(self._tat) > self._max_keys:
            self._tat.popitem(last=False)


# KEYS: one TAT key per limit. ARGV: want, need, then (interval µs, burst) per key.
# Grants g cells, need <= g <= want, when every limit has g cells now, and charges every key g;
# else charges nothing. Returns {granted, remaining, retry_us, reset_us}: the cells every limit
# still had after the grant, µs until `need` cells would conform (0 when granted) and µs until
# the fullest-used limit is full again.
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want, need = tonumber(ARGV[1]), tonumber(ARGV[2])
local avail, retry, reset = want, 0, 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tats[i] = tat
  avail = math.min(avail, math.floor(burst - (tat - now) / interval + 1e-9))
  retry = math.max(retry, (tat - now) + (need - burst) * interval)
  reset = math.max(reset, tat - now)
end
if avail < need then
  return {0, math.max(avail, 0), math.max(math.ceil(retry), 1), math.ceil(reset)}
end
local left = nil
for i, key in ipairs(KEYS) do
  local interval, burst = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local new = tats[i] + avail * interval
  redis.call('SET', key, string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1)
  reset = math.max(reset, new - now)
  local l = math.floor(burst - (new - now) / interval + 1e-9)
  if left == nil or l < left then left = l end
end
return {avail, math.max(left or 0, 0), 0, math.ceil(reset)}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit a take is checked against: its Redis key, rate (events/s, > 0) and burst."""

    key: str
    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Cells:
    """What Redis granted (times in µs)."""

    granted: int
    remaining: int
    retry_us: float
    reset_us: float


class RedisGcra:
    """GCRA over limits whose TATs are in Redis, checked and charged by one script.

    Args:
        redis: An asyncio Redis client (``redis.asyncio.Redis``); its errors reach the caller,
            which decides how to fail (the collector falls back to its in-process limits, the
            API lets the request through).
    """

    def __init__(self, redis: Any) -> None:
        self._script = redis.register_script(TAKE_SCRIPT)

    async def take(self, limits: Sequence[Limit], want: int, need: int) -> Cells:
        """Take between ``need`` and ``want`` cells from every limit at once, or none.

        Args:
            limits: The limits that are on (a limit with rate 0 is left out by the caller).
            want: The most cells to take.
            need: The fewest cells worth taking (``want`` for all or nothing).
        """
        if not limits:
            return Cells(granted=want, remaining=0, retry_us=0.0, reset_us=0.0)
        args: list[float | int] = [want, need]
        for limit in limits:
            args += [1e6 / limit.rate, max(1, limit.burst)]
        found = await self._script(keys=[limit.key for limit in limits], args=args)
        granted, remaining, retry_us, reset_us = (int(v) for v in found)
        return Cells(granted, remaining, float(retry_us), float(reset_us))
