"""A circuit breaker around the Kafka broker: closed → open → half-open → closed.

Closed: deliveries go to Kafka; ``failure_threshold`` consecutive failures open it. Open:
nothing is tried until ``reset_timeout`` has passed; then it is half-open and lets exactly one
probe through. A successful probe closes it, a failed one opens it again for another
``reset_timeout``. Time is injected (a monotonic clock in seconds).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    """Where the breaker is; the metric value is :attr:`code`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def code(self) -> int:
        """0 closed, 1 open, 2 half-open (the ``collector_breaker_state`` gauge)."""
        return {"closed": 0, "open": 1, "half_open": 2}[self.value]


class CircuitBreaker:
    """Counts consecutive delivery failures and decides whether to try the broker.

    Args:
        failure_threshold: Consecutive failures that open a closed breaker.
        reset_timeout: Seconds an open breaker waits before it allows one probe.
        clock: Monotonic seconds.
        on_change: Called with the new state on every transition.
    """

    def __init__(
        self,
        failure_threshold: int,
        reset_timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or reset_timeout < 0:
            raise ValueError("need failure_threshold >= 1 and reset_timeout >= 0")
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose timeout passed reads as half-open)."""
        if self._state is BreakerState.OPEN and self.retry_in() == 0.0:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def retry_in(self) -> float:
        """Seconds until an open breaker allows a probe (0 when it is not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._reset_timeout - self._clock())

    def allow(self) -> bool:
        """Whether a delivery may be tried now; in half-open, only the one probe may."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self.retry_in() > 0.0:
                return False
            self._move(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        """A delivery succeeded: close (from any state) and forget the failures."""
        self._failures = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A delivery failed: a failed probe or the threshold-th failure opens the breaker."""
        self._failures += 1
        self._probing = False
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self._threshold
        ):
            self._open()
        elif self._state is BreakerState.OPEN:
            self._opened_at = self._clock()

    def trip(self) -> None:
        """Open now, whatever the count (the client library reported every broker down)."""
        self._failures = max(self._failures, self._threshold)
        self._probing = False
        if self._state is not BreakerState.OPEN:
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
