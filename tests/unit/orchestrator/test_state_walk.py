"""The state machine walked end to end by the manager, and the settings that drive it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.errors import ConfigurationError
from core.settings import OrchestratorSettings
from orchestrator import HealthStatus, ServiceManager, ServiceState, is_legal_transition

from .fakes import FakeService, SleepRecorder, make_manager

H = HealthStatus
IN, R, D = ServiceState.INITIALIZING, ServiceState.RUNNING, ServiceState.DEGRADED
SD, ST, F = ServiceState.SHUTTING_DOWN, ServiceState.STOPPED, ServiceState.FAILED


def test_manager_walks_the_state_machine_through_degrade_restart_fail_and_stop() -> None:
    journal: list[str] = []
    storage = FakeService("storage", journal)
    proc = FakeService("proc", journal, ("storage",), required=False)
    rest = FakeService("rest", journal, ("storage", "proc"))
    manager = make_manager([storage, proc, rest], failure_threshold=1, max_restarts=1)

    async def scenario() -> None:
        await manager.start_all()
        proc.status = H.UNHEALTHY
        await manager.check_health_once()  # degraded, then restarted (the one restart)
        await manager.check_health_once()  # degraded again, no restart left: failed
        assert manager.states() == {"storage": R, "proc": F, "rest": D}
        await manager.stop_all()

    asyncio.run(scenario())
    assert manager.transitions() == [
        ("storage", IN, R),
        ("proc", IN, R),
        ("rest", IN, R),
        ("proc", R, D),
        ("rest", R, D),  # its dependency is down: it keeps running, degraded
        ("proc", D, IN),  # restart
        ("proc", IN, R),
        ("rest", D, R),  # and recovers with it
        ("proc", R, D),
        ("rest", R, D),
        ("proc", D, F),  # out of restarts
        ("rest", D, SD),  # stop in reverse order
        ("rest", SD, ST),
        ("proc", F, SD),
        ("proc", SD, ST),
        ("storage", R, SD),
        ("storage", SD, ST),
    ]
    assert all(is_legal_transition(a, b) for _, a, b in manager.transitions())
    assert journal == [
        "start:storage",
        "start:proc",
        "start:rest",
        "stop:proc",
        "start:proc",
        "stop:rest",
        "stop:proc",
        "stop:storage",
    ]


def test_a_failed_start_walks_initializing_to_failed_and_stops_the_others() -> None:
    journal: list[str] = []
    a = FakeService("a", journal)
    b = FakeService("b", journal, ("a",), start_error=RuntimeError("port taken"))
    c = FakeService("c", journal, ("b",))
    manager = make_manager([a, b, c])
    with pytest.raises(Exception, match="port taken"):
        asyncio.run(manager.start_all())
    assert manager.transitions() == [
        ("a", IN, R),
        ("b", IN, F),
        ("c", IN, ST),
        ("a", R, SD),
        ("a", SD, ST),
    ]


def test_settings_choose_threshold_restarts_and_health_timeout() -> None:
    journal: list[str] = []
    service = FakeService("a", journal)
    service.status = H.UNHEALTHY
    sleep = SleepRecorder()
    settings = OrchestratorSettings(failure_threshold=2, max_restarts=2)
    manager = ServiceManager.from_settings([service], settings, sleep=sleep)

    async def scenario() -> list[ServiceState]:
        await manager.start_all()
        seen = []
        for _ in range(6):
            await manager.check_health_once()
            seen.append(manager.states()["a"])
        return seen

    assert asyncio.run(scenario()) == [D, R, D, R, D, F]
    assert sleep.delays == [1.0, 2.0]
    assert manager.restarts() == {"a": 2}


def test_apply_settings_changes_thresholds_or_nothing() -> None:
    journal: list[str] = []
    service = FakeService("a", journal)
    service.status = H.UNHEALTHY
    manager = make_manager([service], failure_threshold=5)
    with pytest.raises(ConfigurationError, match="failure_threshold >= 1"):
        manager.apply_settings(OrchestratorSettings(failure_threshold=0))
    manager.apply_settings(
        OrchestratorSettings(failure_threshold=1, max_restarts=0, health_interval=timedelta(1))
    )

    async def scenario() -> None:
        await manager.start_all()
        await manager.check_health_once()

    asyncio.run(scenario())
    assert manager.states() == {"a": F}
    assert journal == ["start:a"]
