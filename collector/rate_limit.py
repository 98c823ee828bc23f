"""Rate limits per source and over all sources: GCRA, in-process state.

This limiter keeps its state in this process: N collector replicas enforce N times the limit
(:mod:`collector.shared_rate_limit` enforces one limit for all of them on Redis and falls back
to this one). Each source (an API key or a ``service.name``) gets
``source_rate`` events/s with bursts of ``source_burst``; all sources together
``global_rate`` with bursts of ``global_burst``. A rate of 0 turns that limit off.
:meth:`RateLimiter.reconfigure` changes the limits of a running limiter (settings reload) and
keeps what each key has already used.

The algorithm is GCRA (:mod:`storage.gcra`); a batch of ``n`` events is ``n`` cells.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.gcra import Gcra

__all__ = ["RateLimiter"]


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
