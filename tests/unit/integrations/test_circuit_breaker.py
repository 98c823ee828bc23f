"""CircuitBreaker: closed → open → half-open → closed/open, on a fake clock."""

from __future__ import annotations

import pytest

from integrations import BreakerState, CircuitBreaker, CircuitOpenError, IntegrationError

from .fakes import FakeClock


def make(**kwargs: object) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    options = {"failure_threshold": 3, "reset_timeout": 30.0, **kwargs}
    return CircuitBreaker("jira", clock=clock, **options), clock  # type: ignore[arg-type]


def test_opens_after_consecutive_failures_only() -> None:
    breaker, _ = make()
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.times_opened == 1


def test_open_refuses_until_the_timeout_then_lets_one_probe() -> None:
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(29.0)
    assert breaker.retry_after() == 1.0
    with pytest.raises(CircuitOpenError) as info:
        breaker.check()
    assert isinstance(info.value, IntegrationError)
    assert (info.value.reason, info.value.attempts, info.value.retry_after) == (
        "circuit_open",
        0,
        1.0,
    )
    clock.advance(1.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.retry_after() == 0.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time


def test_a_successful_probe_closes() -> None:
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.allow()
    assert breaker.allow()


def test_a_failed_probe_opens_again_for_a_full_timeout() -> None:
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(31.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.times_opened == 2
    clock.advance(29.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN


def test_several_probes_when_configured() -> None:
    breaker, clock = make(half_open_max=2)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(30.0)
    assert [breaker.allow() for _ in range(3)] == [True, True, False]
    assert repr(breaker) == "CircuitBreaker(name='jira', state='half_open')"


@pytest.mark.parametrize(
    "kwargs", [{"failure_threshold": 0}, {"half_open_max": 0}, {"reset_timeout": -1.0}]
)
def test_rejects_bad_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        CircuitBreaker("x", **kwargs)  # type: ignore[arg-type]
