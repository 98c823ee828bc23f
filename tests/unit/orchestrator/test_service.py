from __future__ import annotations

import itertools

import pytest

from core.errors import OptimizerError
from orchestrator import (
    LEGAL_TRANSITIONS,
    HealthResult,
    HealthStatus,
    IllegalTransitionError,
    Service,
    ServiceState,
    check_transition,
    is_legal_transition,
    restart_delay,
)

from .fakes import FakeService

S = ServiceState
EXPECTED = {
    S.INITIALIZING: {S.RUNNING, S.FAILED, S.SHUTTING_DOWN, S.STOPPED},
    S.RUNNING: {S.DEGRADED, S.SHUTTING_DOWN, S.FAILED, S.INITIALIZING},
    S.DEGRADED: {S.RUNNING, S.SHUTTING_DOWN, S.FAILED, S.INITIALIZING},
    S.SHUTTING_DOWN: {S.STOPPED, S.FAILED},
    S.STOPPED: {S.INITIALIZING},
    S.FAILED: {S.INITIALIZING, S.SHUTTING_DOWN, S.STOPPED},
}


def test_state_values_are_lowercase_names() -> None:
    assert [s.value for s in ServiceState] == [
        "initializing",
        "running",
        "degraded",
        "shutting_down",
        "stopped",
        "failed",
    ]
    assert [h.value for h in HealthStatus] == ["healthy", "degraded", "unhealthy"]


def test_table_matches_the_specification() -> None:
    assert {k: set(v) for k, v in LEGAL_TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair_of_states(current: ServiceState, target: ServiceState) -> None:
    legal = target in EXPECTED[current]
    assert is_legal_transition(current, target) is legal
    if legal:
        check_transition(current, target, "svc")
    else:
        with pytest.raises(IllegalTransitionError) as caught:
            check_transition(current, target, "svc")
        assert isinstance(caught.value, OptimizerError)
        assert caught.value.current == current.value
        assert caught.value.target == target.value
        assert str(caught.value) == f"service 'svc': illegal transition {current} -> {target}"


def test_health_result_defaults() -> None:
    result = HealthResult(HealthStatus.DEGRADED)
    assert (result.detail, dict(result.checks)) == ("", {})
    assert HealthResult(HealthStatus.HEALTHY, checks={"db": "ok"}).checks == {"db": "ok"}


def test_fake_service_satisfies_the_protocol() -> None:
    assert isinstance(FakeService("a", []), Service)


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 32.0), (6, 60.0), (7, 60.0)],
)
def test_restart_delay_doubles_up_to_the_cap(attempt: int, delay: float) -> None:
    assert restart_delay(attempt) == delay


def test_restart_delay_custom_base_cap_and_huge_attempts() -> None:
    assert restart_delay(3, base=0.5, cap=3.0) == 3.0
    assert restart_delay(2, base=0.5, cap=3.0) == 2.0
    assert restart_delay(10_000) == 60.0
    with pytest.raises(ValueError, match="attempt"):
        restart_delay(-1)
