from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.errors import ConfigurationError, DependencyCycleError, ServiceStartError
from core.settings import OrchestratorSettings
from orchestrator import ServiceManager, ServiceState, UnknownDependencyError

from .fakes import FakeClock, FakeService, make_manager

S = ServiceState


def chain(journal: list[str]) -> list[FakeService]:
    """d depends on c and a; c on b; b on a, registered out of order."""
    return [
        FakeService("c", journal, ("b",)),
        FakeService("a", journal),
        FakeService("d", journal, ("c", "a")),
        FakeService("b", journal, ("a",)),
    ]


def test_start_all_in_dependency_order_then_stop_all_in_reverse() -> None:
    journal: list[str] = []
    clock = FakeClock(100.0)
    manager = make_manager(chain(journal), clock=clock)
    assert manager.order == ["a", "b", "c", "d"]
    assert set(manager.states().values()) == {S.INITIALIZING}

    asyncio.run(manager.start_all())
    assert journal == ["start:a", "start:b", "start:c", "start:d"]
    assert manager.states() == dict.fromkeys("abcd", S.RUNNING)
    clock.now = 107.5
    assert manager.uptime_seconds("a") == 7.5

    journal.clear()
    asyncio.run(manager.stop_all())
    assert journal == ["stop:d", "stop:c", "stop:b", "stop:a"]
    assert manager.states() == dict.fromkeys("abcd", S.STOPPED)
    assert manager.uptime_seconds("a") == 0.0


def test_start_failure_stops_the_started_ones_in_reverse_and_raises() -> None:
    journal: list[str] = []
    services = chain(journal)
    services[0].start_error = RuntimeError("boom")  # "c"
    manager = make_manager(services)

    with pytest.raises(ServiceStartError) as caught:
        asyncio.run(manager.start_all())

    assert caught.value.service == "c"
    assert caught.value.reason == "RuntimeError: boom"
    assert journal == ["start:a", "start:b", "start:c", "stop:b", "stop:a"]
    assert manager.states() == {"a": S.STOPPED, "b": S.STOPPED, "c": S.FAILED, "d": S.STOPPED}


def test_start_timeout_is_a_start_failure() -> None:
    journal: list[str] = []
    services = [FakeService("a", journal), FakeService("b", journal, ("a",), hang_start=True)]
    manager = make_manager(services, start_timeout=timedelta(milliseconds=50))

    with pytest.raises(ServiceStartError) as caught:
        asyncio.run(manager.start_all())

    assert caught.value.service == "b"
    assert caught.value.reason == "timed out after 0.05s"
    assert journal == ["start:a", "start:b", "stop:a"]


def test_a_failing_or_hanging_stop_does_not_keep_the_others_running() -> None:
    journal: list[str] = []
    services = [
        FakeService("a", journal),
        FakeService("b", journal, ("a",), stop_error=RuntimeError("stuck")),
        FakeService("c", journal, ("b",), hang_stop=True),
        FakeService("d", journal, ("c",)),
    ]
    manager = make_manager(services, shutdown_timeout=timedelta(milliseconds=50))

    async def scenario() -> None:
        await manager.start_all()
        journal.clear()
        await manager.stop_all()

    asyncio.run(scenario())
    assert journal == ["stop:d", "stop:c", "stop:b", "stop:a"]
    assert manager.states() == {"a": S.STOPPED, "b": S.FAILED, "c": S.FAILED, "d": S.STOPPED}


def test_stop_all_twice_stops_each_service_once() -> None:
    journal: list[str] = []
    manager = make_manager([FakeService("a", journal)])

    async def scenario() -> None:
        await manager.start_all()
        await manager.stop_all()
        await manager.stop_all()

    asyncio.run(scenario())
    assert journal == ["start:a", "stop:a"]


def test_bad_registrations_are_rejected() -> None:
    journal: list[str] = []
    with pytest.raises(ConfigurationError, match="'a'"):
        make_manager([FakeService("a", journal), FakeService("a", journal)])
    with pytest.raises(UnknownDependencyError, match="'nope'"):
        make_manager([FakeService("a", journal, ("nope",))])
    with pytest.raises(DependencyCycleError):
        make_manager([FakeService("a", journal, ("b",)), FakeService("b", journal, ("a",))])
    with pytest.raises(ConfigurationError, match="failure_threshold"):
        make_manager([FakeService("a", journal)], failure_threshold=0)


def test_from_settings_uses_the_settings_timeouts() -> None:
    journal: list[str] = []
    settings = OrchestratorSettings(start_timeout=timedelta(milliseconds=20))
    service = FakeService("a", journal, hang_start=True)
    manager = ServiceManager.from_settings([service], settings)

    with pytest.raises(ServiceStartError, match=r"timed out after 0\.02s"):
        asyncio.run(manager.start_all())
