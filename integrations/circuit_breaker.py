"""A circuit breaker per outside service: closed, open, half-open, on an injected clock.

Closed: requests pass; ``failure_threshold`` consecutive failures open the breaker. Open: requests
are refused at once (no connection is tried) until ``reset_timeout`` seconds have passed, then the
breaker is half-open. Half-open: up to ``half_open_max`` probe requests pass; a success closes the
breaker, a failure opens it again for another ``reset_timeout``.

A *failure* is a service that did not answer usefully: no response, a 5xx, a 429 after the retries.
A 4xx such as 400 or 404 is the service working, so it counts as a success here.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

import structlog

from integrations.errors import IntegrationError

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError"]

_log = structlog.get_logger(__name__)


class BreakerState(enum.StrEnum):
    """Where a :class:`CircuitBreaker` is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(IntegrationError):
    """The breaker of ``target`` is open: no request was made.

    Attributes:
        retry_after: Seconds until the breaker lets a probe through.
    """

    def __init__(self, target: str, retry_after: float) -> None:
        super().__init__(target, "circuit_open", attempts=0, retry_after=retry_after)


class CircuitBreaker:
    """Counts consecutive failures of one service and stops calling it while it is down.

    Args:
        name: The service, in logs and errors.
        failure_threshold: Consecutive failures that open the breaker (at least 1).
        reset_timeout: Seconds the breaker stays open before a probe may pass.
        half_open_max: Probes allowed at once while half-open (at least 1).
        clock: Monotonic seconds (``time.monotonic``; a fake in tests).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        half_open_max: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_max < 1:
            raise ValueError("failure_threshold and half_open_max must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")
        self.name = name
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._half_open_max = half_open_max
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self.times_opened = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state.value!r})"

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose timeout passed reads as half-open."""
        with self._lock:
            return self._current()

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def _current(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self._reset_timeout
        ):
            self._state = BreakerState.HALF_OPEN
            self._probes = 0
            _log.info("breaker.half_open", breaker=self.name)
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        with self._lock:
            if self._current() is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._reset_timeout - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Take permission for one request: always when closed, as a probe when half-open.

        Returns:
            False while open, or while half-open with every probe slot taken.
        """
        with self._lock:
            state = self._current()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and self._probes < self._half_open_max:
                self._probes += 1
                return True
            return False

    def check(self) -> None:
        """Like :meth:`allow`, but raise instead of returning False.

        Raises:
            CircuitOpenError: The breaker refuses the request.
        """
        if not self.allow():
            raise CircuitOpenError(self.name, self.retry_after())

    def record_success(self) -> None:
        """A request got a useful answer: reset the count, close a half-open breaker."""
        with self._lock:
            if self._state is not BreakerState.CLOSED:
                _log.info("breaker.closed", breaker=self.name)
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probes = 0

    def record_failure(self) -> None:
        """A request failed: count it; open the breaker at the threshold or after a probe."""
        with self._lock:
            state = self._current()
            self._failures += 1
            if state is BreakerState.HALF_OPEN or (
                state is BreakerState.CLOSED and self._failures >= self._threshold
            ):
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
                self._probes = 0
                self.times_opened += 1
                _log.warning("breaker.opened", breaker=self.name, failures=self._failures)
