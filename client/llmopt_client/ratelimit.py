"""The rate limit a task's ``rate_limit`` override sets: a token bucket with a burst.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; a call takes
one (or its token count, for ``tokens_per_min``). :meth:`TokenBucket.try_acquire` answers at
once; :meth:`TokenBucket.delay` says how long to wait, so the app can sleep or shed the call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """A token bucket; see the module docstring.

    Args:
        rate: Tokens added per second (> 0).
        burst: Capacity, and the tokens available at start (>= 1).
        clock: Monotonic seconds (injected in tests).
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if the bucket has them now."""
        with self._lock:
            self._refill()
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True
            return False

    def delay(self, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` are available (0: now); takes nothing."""
        with self._lock:
            self._refill()
            return max(0.0, (tokens - self._tokens) / self.rate)

    def acquire(self, tokens: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> float:
        """Take ``tokens``, sleeping until the bucket has them; returns the seconds waited."""
        waited = 0.0
        while not self.try_acquire(tokens):
            pause = max(self.delay(tokens), 1e-4)
            sleep(pause)
            waited += pause
        return waited

    async def acquire_async(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, awaiting until the bucket has them; returns the seconds waited."""
        waited = 0.0
        while not self.try_acquire(tokens):
            pause = max(self.delay(tokens), 1e-4)
            await asyncio.sleep(pause)
            waited += pause
        return waited
