"""The circuit breaker's state machine on an injected clock."""

from __future__ import annotations

import pytest

from collector.breaker import BreakerState, CircuitBreaker

S = BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold: int = 3) -> tuple[CircuitBreaker, Clock, list[BreakerState]]:
    clock, moves = Clock(), []
    breaker = CircuitBreaker(threshold, 5.0, clock=clock, on_change=moves.append)
    return breaker, clock, moves


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _, moves = make()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert (breaker.state, breaker.consecutive_failures, breaker.allow()) == (S.CLOSED, 2, True)
    breaker.record_failure()
    assert (breaker.state, breaker.allow(), moves) == (S.OPEN, False, [S.OPEN])


def test_half_open_allows_one_probe_and_success_closes() -> None:
    breaker, clock, moves = make()
    breaker.trip()
    assert (breaker.state, breaker.retry_in()) == (S.OPEN, 5.0)
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state is S.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_success()
    assert (breaker.state, breaker.consecutive_failures, breaker.allow()) == (S.CLOSED, 0, True)
    assert moves == [S.OPEN, S.HALF_OPEN, S.CLOSED]


def test_failed_probe_opens_again_for_a_full_timeout() -> None:
    breaker, clock, moves = make()
    breaker.trip()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert (breaker.state, breaker.retry_in()) == (S.OPEN, 5.0)
    assert moves == [S.OPEN, S.HALF_OPEN, S.OPEN]
    assert (S.CLOSED.code, S.OPEN.code) == (0, 1)
    assert S.HALF_OPEN.code == 2


def test_late_failures_while_open_push_the_probe_back() -> None:
    breaker, clock, _ = make(threshold=1)
    breaker.record_failure()
    clock.now += 3
    breaker.record_failure()  # a delivery that was in flight when it opened
    assert breaker.retry_in() == 5.0


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(0, 1.0)
