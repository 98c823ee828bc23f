"""Backpressure: a count of events waiting for Kafka, with high and low watermarks.

Events are admitted while the depth is below the high watermark; once it reaches it, new
batches are refused until the depth falls back to the low watermark (hysteresis, so a
saturated collector does not flap between accepting and refusing). The retry hint is the time
the observed drain rate needs to bring the depth down to the low watermark.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["Watermarks"]


class Watermarks:
    """Depth accounting with hysteresis.

    Args:
        high: Depth at which admission stops.
        low: Depth at which it resumes.
        clock: Monotonic seconds (for the drain rate).
    """

    def __init__(self, high: int, low: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= low < high:
            raise ValueError("need 0 <= low < high")
        self.high = high
        self.low = low
        self._clock = clock
        self._depth = 0
        self._saturated = False
        self._rate = 0.0  # EWMA of events drained per second
        self._last = clock()

    @property
    def depth(self) -> int:
        """Events admitted and not yet delivered or spilled."""
        return self._depth

    @property
    def saturated(self) -> bool:
        """True between reaching the high watermark and falling back to the low one."""
        return self._saturated

    def try_admit(self, n: int) -> float:
        """Admit ``n`` events, or return the seconds to wait (nothing admitted then)."""
        if self._saturated and self._depth > self.low:
            return self.retry_after()
        self._saturated = False
        if self._depth >= self.high:
            self._saturated = True
            return self.retry_after()
        self._depth += n
        if self._depth >= self.high:
            self._saturated = True
        return 0.0

    def release(self, n: int) -> None:
        """``n`` admitted events were delivered, spilled or given up."""
        self._depth = max(0, self._depth - n)
        now = self._clock()
        elapsed = max(now - self._last, 1e-3)
        self._last = now
        self._rate = 0.8 * self._rate + 0.2 * (n / elapsed)
        if self._depth <= self.low:
            self._saturated = False

    def retry_after(self) -> float:
        """Seconds the current drain rate needs to reach the low watermark (1 to 30)."""
        excess = max(0, self._depth - self.low)
        if self._rate <= 0:
            return 1.0
        return float(min(30, max(1, math.ceil(excess / self._rate))))
