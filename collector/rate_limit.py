"""Rate limits per source and over all sources: GCRA, in-process state.

This limiter keeps its state in this process: N collector replicas enforce N times the limit.
The shared limiter (Redis, for every replica) belongs to ``api/``; the collector's is the
first line of defence of one process. Each source (an API key or a ``service.name``) gets
``source_rate`` events/s with bursts of ``source_burst``; all sources together
``global_rate`` with bursts of ``global_burst``. A rate of 0 turns that limit off.
:meth:`RateLimiter.reconfigure` changes the limits of a running limiter (settings reload) and
keeps what each key has already used.

GCRA (the generic cell rate algorithm) keeps one number per key, the theoretical arrival time
(TAT): a batch of ``n`` events at time ``now`` conforms when ``TAT + n·T - burst·T <= now``
(``T = 1/rate``), and then moves TAT to ``max(TAT, now) + n·T``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["Gcra", "RateLimiter", "gcra_wait"]

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


class RateLimiter:
    """A per-source limit and a global limit, both checked before either is charged.

    Args:
        source_rate: Events/s per source (0: off).
        source_burst: Burst per source.
        global_rate: Events/s over all sources (0: off).
        global_burst: Burst over all sources.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        source_rate: float,
        source_burst: int,
        global_rate: float,
        global_burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = Gcra(source_rate, source_burst)
        self._global = Gcra(global_rate, global_burst)
        self._clock = clock

    def reconfigure(
        self, source_rate: float, source_burst: int, global_rate: float, global_burst: int
    ) -> None:
        """Change both limits in place (see :meth:`Gcra.reconfigure`); no restart needed."""
        now = self._clock()
        self._source.reconfigure(source_rate, source_burst, now)
        self._global.reconfigure(global_rate, global_burst, now)

    @property
    def bursts(self) -> list[int]:
        """The bursts of the limits that are on (the largest batch each admits)."""
        return [g.burst for g in (self._source, self._global) if not g.unlimited]

    def acquire(self, source: str, n: int) -> float:
        """Charge ``n`` events to ``source`` when both limits allow them.

        Returns:
            0 when the events were admitted, else the seconds to wait before retrying (nothing
            is charged then; ``inf`` when ``n`` exceeds a burst and can never be admitted).
        """
        now = self._clock()
        wait = max(self._source.wait(source, n, now), self._global.wait("", n, now))
        if wait > 0.0:
            return wait
        self._source.take(source, n, now)
        self._global.take("", n, now)
        return 0.0
