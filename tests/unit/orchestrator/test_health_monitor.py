from __future__ import annotations

import asyncio
from datetime import timedelta

from orchestrator import HealthResult, HealthStatus, ServiceState

from .fakes import FakeService, SleepRecorder, make_manager

S = ServiceState
H = HealthStatus


def test_unhealthy_service_is_restarted_with_backoff_then_failed() -> None:
    journal: list[str] = []
    service = FakeService("a", journal)
    service.status = H.UNHEALTHY
    sleep = SleepRecorder()
    manager = make_manager([service], sleep=sleep)
    seen: list[ServiceState] = []

    async def scenario() -> None:
        await manager.start_all()
        for _ in range(12):
            await manager.check_health_once()
            seen.append(manager.states()["a"])

    asyncio.run(scenario())
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert manager.restarts() == {"a": 3}
    # Two failures degrade it, the third restarts it (back to running), four times over;
    # the fourth time there is no restart left.
    assert seen == [S.DEGRADED, S.DEGRADED, S.RUNNING] * 3 + [S.DEGRADED, S.DEGRADED, S.FAILED]
    assert journal == ["start:a"] + ["stop:a", "start:a"] * 3
    assert manager.health()["a"].status is H.UNHEALTHY

    # Failed for good: only probed (is what it needs back?), no restarts or waits.
    calls = service.health_calls
    asyncio.run(manager.check_health_once())
    assert service.health_calls == calls + 1
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert manager.states()["a"] is S.FAILED
    assert journal == ["start:a"] + ["stop:a", "start:a"] * 3

    journal.clear()
    asyncio.run(manager.stop_all())
    assert journal == ["stop:a"]
    assert manager.states()["a"] is S.STOPPED


def test_failures_must_be_consecutive_and_a_restart_resets_them() -> None:
    journal: list[str] = []
    service = FakeService("a", journal)
    service.script = [H.UNHEALTHY, H.UNHEALTHY, H.HEALTHY, H.UNHEALTHY, H.UNHEALTHY, H.DEGRADED]
    service.script += [H.UNHEALTHY] * 3 + [H.HEALTHY]
    sleep = SleepRecorder()
    manager = make_manager([service], sleep=sleep)

    async def scenario() -> list[ServiceState]:
        await manager.start_all()
        states = []
        for _ in range(10):
            await manager.check_health_once()
            states.append(manager.states()["a"])
        return states

    states = asyncio.run(scenario())
    assert sleep.delays == [1.0]
    assert manager.restarts() == {"a": 1}
    assert states[:6] == [S.DEGRADED, S.DEGRADED, S.RUNNING, S.DEGRADED, S.DEGRADED, S.DEGRADED]
    assert states[6:] == [S.DEGRADED, S.DEGRADED, S.RUNNING, S.RUNNING]


def test_health_check_that_raises_or_hangs_counts_as_unhealthy() -> None:
    journal: list[str] = []

    class Broken(FakeService):
        async def health_check(self) -> HealthResult:
            raise ConnectionError("refused")

    class Hanging(FakeService):
        async def health_check(self) -> HealthResult:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    manager = make_manager(
        [Broken("a", journal), Hanging("b", journal)], health_timeout=timedelta(milliseconds=20)
    )

    async def scenario() -> None:
        await manager.start_all()
        await manager.check_health_once()

    asyncio.run(scenario())
    health = manager.health()
    assert health["a"] == HealthResult(H.UNHEALTHY, "health check failed: ConnectionError: refused")
    assert health["b"] == HealthResult(H.UNHEALTHY, "health check failed: timed out after 0.02s")


def test_dependents_are_degraded_and_restored() -> None:
    journal: list[str] = []
    storage = FakeService("storage", journal)
    processor = FakeService("processor", journal, ("storage",))
    rest = FakeService("rest", journal, ("processor",))
    other = FakeService("other", journal)
    manager = make_manager([storage, processor, rest, other])
    storage.script = [H.UNHEALTHY, H.UNHEALTHY, H.HEALTHY]
    # The processor is sick too while storage is down; that must not count towards its restart.
    processor.script = [H.UNHEALTHY, H.UNHEALTHY, H.UNHEALTHY]
    rounds: list[dict[str, ServiceState]] = []

    async def scenario() -> None:
        await manager.start_all()
        for _ in range(4):
            await manager.check_health_once()
            rounds.append(manager.states())

    asyncio.run(scenario())
    down = {"storage": S.DEGRADED, "processor": S.DEGRADED, "rest": S.DEGRADED}
    # rest depends on a degraded (not down) processor only from round 3 on.
    assert rounds[0] == {**down, "other": S.RUNNING}
    assert rounds[1] == {**down, "other": S.RUNNING}
    assert rounds[2] == {
        "storage": S.RUNNING,
        "processor": S.DEGRADED,
        "rest": S.DEGRADED,
        "other": S.RUNNING,
    }
    assert rounds[3] == dict.fromkeys(["storage", "processor", "rest", "other"], S.RUNNING)
    assert manager.restarts() == dict.fromkeys(["storage", "processor", "rest", "other"], 0)


def test_dependents_are_degraded_while_a_dependency_restarts() -> None:
    journal: list[str] = []
    storage = FakeService("storage", journal)
    api = FakeService("api", journal, ("storage",))
    observed: list[dict[str, ServiceState]] = []
    manager = make_manager([storage, api])

    async def spy_sleep(delay: float) -> None:
        observed.append(manager.states())

    manager._sleep = spy_sleep  # the manager is built first, so swap the spy in
    storage.script = [H.UNHEALTHY] * 3

    async def scenario() -> None:
        await manager.start_all()
        for _ in range(3):
            await manager.check_health_once()

    asyncio.run(scenario())
    assert observed == [{"storage": S.INITIALIZING, "api": S.DEGRADED}]
    assert manager.states() == {"storage": S.RUNNING, "api": S.RUNNING}


def test_dependent_of_a_failed_non_required_service_stays_degraded() -> None:
    journal: list[str] = []
    cache = FakeService("cache", journal, required=False)
    cache.status = H.UNHEALTHY
    api = FakeService("api", journal, ("cache",))
    api.status = H.UNHEALTHY  # sick without its cache, but never restarted for it
    manager = make_manager([cache, api], max_restarts=0)

    async def scenario() -> None:
        await manager.start_all()
        for _ in range(6):
            await manager.check_health_once()

    asyncio.run(scenario())
    assert manager.states() == {"cache": S.FAILED, "api": S.DEGRADED}
    assert manager.restarts() == {"cache": 0, "api": 0}
    assert journal == ["start:cache", "start:api"]


def test_dependents_of_a_failed_required_service_are_stopped_and_fail() -> None:
    journal: list[str] = []
    storage = FakeService("storage", journal)
    storage.status = H.UNHEALTHY
    processor = FakeService("processor", journal, ("storage",))
    rest = FakeService("rest", journal, ("processor",))
    metrics = FakeService("metrics", journal, ("processor",), required=False)
    dashboard = FakeService("dashboard", journal, ("metrics",))
    manager = make_manager([storage, processor, rest, metrics, dashboard], max_restarts=0)

    async def scenario() -> None:
        await manager.start_all()
        journal.clear()
        for _ in range(3):
            await manager.check_health_once()

    asyncio.run(scenario())
    assert journal == ["stop:metrics", "stop:rest", "stop:processor"]
    assert manager.states() == {
        "storage": S.FAILED,
        "processor": S.FAILED,
        "rest": S.FAILED,
        "metrics": S.FAILED,
        "dashboard": S.DEGRADED,
    }
    journal.clear()
    asyncio.run(manager.stop_all())
    assert journal == ["stop:dashboard", "stop:storage"]


def test_failed_restart_is_retried_on_the_next_round() -> None:
    journal: list[str] = []
    service = FakeService("a", journal)
    service.status = H.UNHEALTHY
    sleep = SleepRecorder()
    manager = make_manager([service], sleep=sleep, failure_threshold=1, max_restarts=2)

    async def scenario() -> list[ServiceState]:
        await manager.start_all()
        service.start_error = RuntimeError("still down")
        states = []
        for _ in range(3):
            await manager.check_health_once()
            states.append(manager.states()["a"])
        return states

    assert asyncio.run(scenario()) == [S.FAILED, S.FAILED, S.FAILED]
    assert sleep.delays == [1.0, 2.0]
    assert manager.restarts() == {"a": 2}
    assert journal == ["start:a", "stop:a", "start:a", "stop:a", "start:a"]


def test_monitor_checks_every_interval_until_stopped() -> None:
    journal: list[str] = []
    sleep = SleepRecorder()
    service = FakeService("a", journal)
    manager = make_manager([service], sleep=sleep, health_interval=timedelta(seconds=15))

    async def scenario() -> None:
        await manager.start_all()
        stop = asyncio.Event()
        original = service.health_check

        async def check() -> HealthResult:
            if service.health_calls == 1:
                stop.set()
            return await original()

        service.health_check = check  # type: ignore[method-assign]
        await asyncio.wait_for(manager.run_health_monitor(stop), 5)

    asyncio.run(scenario())
    assert sleep.delays == [15.0, 15.0]
    assert service.health_calls == 2


def test_stop_event_cuts_a_backoff_wait_short() -> None:
    journal: list[str] = []
    service = FakeService("a", journal)
    service.status = H.UNHEALTHY
    stop = asyncio.Event()

    async def sleep(delay: float) -> None:
        if delay == 1.0:  # the first backoff: stop now, and never wake up by itself
            stop.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)

    manager = make_manager([service], sleep=sleep, failure_threshold=1)

    async def scenario() -> None:
        await manager.start_all()
        await asyncio.wait_for(manager.run_health_monitor(stop), 5)
        assert manager.states()["a"] is S.INITIALIZING
        await manager.stop_all()

    asyncio.run(scenario())
    assert journal == ["start:a", "stop:a"]
    assert manager.states()["a"] is S.STOPPED


def test_a_failed_service_whose_health_returns_is_revived_with_fresh_restarts() -> None:
    journal: list[str] = []
    storage = FakeService("storage", journal, required=False)
    rest = FakeService("rest", journal, ("storage",))
    storage.status = H.UNHEALTHY
    sleep = SleepRecorder()
    manager = make_manager([storage, rest], sleep=sleep, max_restarts=1)

    async def scenario() -> list[tuple[ServiceState, ServiceState]]:
        await manager.start_all()
        seen = []
        for _ in range(7):
            await manager.check_health_once()
            seen.append((manager.states()["storage"], manager.states()["rest"]))
        storage.status = H.HEALTHY  # e.g. PostgreSQL is back
        for _ in range(2):
            await manager.check_health_once()
            seen.append((manager.states()["storage"], manager.states()["rest"]))
        return seen

    seen = asyncio.run(scenario())
    # Not required: REST keeps running, degraded, while storage is restarted and then Failed.
    assert seen[:6] == [(S.DEGRADED, S.DEGRADED)] * 2 + [(S.RUNNING, S.RUNNING)] + [
        (S.DEGRADED, S.DEGRADED)
    ] * 2 + [(S.FAILED, S.DEGRADED)]
    assert seen[6] == (S.FAILED, S.DEGRADED)  # probed, still unhealthy: stays failed
    assert seen[7:] == [(S.RUNNING, S.RUNNING)] * 2  # healthy again: one restart, all running
    assert sleep.delays == [1.0, 1.0]  # the revival starts a new backoff series
    # A counter: the revival's fresh budget does not forget the restart before it.
    assert manager.restarts() == {"storage": 2, "rest": 0}
    assert journal == ["start:storage", "start:rest"] + ["stop:storage", "start:storage"] * 2


class SelfRestartingService(FakeService):
    """A fake of the processor's kind: restarts its own processes and must never be given up."""

    retry_forever = True

    def __init__(self, name: str, journal: list[str]) -> None:
        super().__init__(name, journal, required=False)
        self.restarts = 0  # restarts it did itself (its own supervision)


def test_a_service_that_retries_forever_is_restarted_at_the_longest_backoff_never_given_up() -> (
    None
):
    journal: list[str] = []
    processor = SelfRestartingService("processor", journal)
    processor.status = H.UNHEALTHY
    processor.restarts = 5  # e.g. its own crash-loop restarts
    sleep = SleepRecorder()
    manager = make_manager([processor], sleep=sleep)

    async def scenario() -> None:
        await manager.start_all()
        for _ in range(15):
            await manager.check_health_once()

    asyncio.run(scenario())
    # The budget (3 restarts at 1, 2, 4 s), then every 60 s instead of Failed for good.
    assert sleep.delays == [1.0, 2.0, 4.0, 60.0, 60.0]
    assert journal == ["start:processor"] + ["stop:processor", "start:processor"] * 5
    assert manager.states()["processor"] is not S.FAILED
    # Every restart counts: the manager's five and the service's own five.
    assert manager.restarts() == {"processor": 10}

    processor.status = H.HEALTHY
    asyncio.run(manager.check_health_once())
    assert manager.states()["processor"] is S.RUNNING
