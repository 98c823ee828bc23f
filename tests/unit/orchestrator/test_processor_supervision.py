"""The processor service's own supervision (restart watcher) and its settings reload.

The Bytewax command is replaced by small Python processes (the same ``asyncio`` subprocesses,
signals and exit codes as the real ``bytewax.run``), and the backoff delays are recorded and
shortened, so every test runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from orchestrator.backoff import MAX_DELAY_S, restart_delay
from orchestrator.service import HealthStatus
from orchestrator.services import processor as processor_module
from orchestrator.services.processor import CRASH_LOOP_ATTEMPT, ProcessorService

SLEEP_FOREVER = (
    "import signal, time; signal.signal(signal.SIGINT, lambda *a: exit(0)); time.sleep(600)"
)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (the suite has no async plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def _settings(**sections: dict[str, Any]) -> Settings:
    base = Settings()
    base = base.with_overrides(
        processor=dataclasses.replace(base.processor, recovery=False),
        orchestrator=dataclasses.replace(
            base.orchestrator, shutdown_timeout=timedelta(seconds=3), max_restarts=3
        ),
    )
    return base.with_overrides(
        **{
            name: dataclasses.replace(getattr(base, name), **values)
            for name, values in sections.items()
        }
    )


class Fake:
    """Replaces ``bytewax_commands`` and ``restart_delay``; records both."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.commands: list[list[list[str]]] = []
        self.delays: list[int] = []

    def commands_for(self, settings: Settings) -> list[list[str]]:
        p = settings.processor
        cmds = [
            [sys.executable, "-c", self.script, "-w", str(p.workers), "-i", str(i)]
            for i in range(p.processes)
        ]
        self.commands.append(cmds)
        return cmds

    def delay(self, attempt: int) -> float:
        self.delays.append(attempt)
        return 0.05


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Fake]]:
    def make(script: str) -> Fake:
        f = Fake(script)
        monkeypatch.setattr(processor_module, "bytewax_commands", f.commands_for)
        monkeypatch.setattr(processor_module, "restart_delay", f.delay)
        return f

    return make


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@sync
async def test_a_killed_process_is_restarted_with_backoff(fake: Callable[[str], Fake]) -> None:
    f = fake(SLEEP_FOREVER)
    service = ProcessorService(_settings(), {"PATH": os.environ["PATH"]})
    await service.start()
    try:
        [first] = service.pids
        os.kill(first, signal.SIGKILL)
        await _until(lambda: service.restarts == 1 and len(service.pids) == 1)
        assert service.pids != [first]
        assert f.delays == [0]  # the first restart waits restart_delay(0) = 1 s
        assert len(f.commands) == 2
        os.kill(service.pids[0], signal.SIGKILL)
        await _until(lambda: service.restarts == 2 and len(service.pids) == 1)
        assert f.delays == [0, 1]  # the next one backs off further
    finally:
        await service.stop()
    assert service.pids == []


@sync
async def test_a_cluster_restarts_as_a_whole(fake: Callable[[str], Fake]) -> None:
    f = fake(SLEEP_FOREVER)
    service = ProcessorService(_settings(processor={"processes": 2}), {"PATH": os.environ["PATH"]})
    await service.start()
    try:
        before = service.pids
        assert len(before) == 2
        assert len(service.endpoints) == 2
        os.kill(before[1], signal.SIGKILL)
        await _until(lambda: service.restarts == 1 and len(service.pids) == 2)
        assert not set(service.pids) & set(before)  # both processes are new
        assert [c[-1] for c in f.commands[-1]] == ["0", "1"]
    finally:
        await service.stop()


REPO = str(Path(__file__).resolve().parents[3])


def _crashing(data_dir: Path) -> str:
    """A process that reads a batch, runs a while, then dies of an exception (crash report)."""
    return (
        f"import sys; sys.path.insert(0, {REPO!r}); from pathlib import Path; "
        "from core.crash_report import install_crash_report, note_batch; "
        f"install_crash_report(Path({str(data_dir)!r})); "
        "note_batch('llm.telemetry', 1, 40, 41); import time; time.sleep(0.7); "
        "raise OverflowError('date value out of range')"
    )


@sync
async def test_a_crash_loop_is_reported_with_its_offsets_and_retried_at_the_longest_backoff(
    fake: Callable[[str], Fake], tmp_path: Path
) -> None:
    f = fake(_crashing(tmp_path))
    service = ProcessorService(
        _settings(orchestrator={"max_restarts": 2}, storage={"data_dir": str(tmp_path)}),
        {"PATH": os.environ["PATH"]},
    )
    await service.start()
    try:
        await _until(lambda: service.restarts >= 4, within=30)
        # 1 s, 2 s, then never given up: the longest backoff (restart_delay's cap, 60 s).
        assert f.delays[:4] == [0, 1, CRASH_LOOP_ATTEMPT, CRASH_LOOP_ATTEMPT]
        assert restart_delay(CRASH_LOOP_ATTEMPT) == MAX_DELAY_S == 60.0
        assert service._watcher is not None
        assert not service._watcher.done()
        health = await service.health_check()
        assert health.status is HealthStatus.DEGRADED
        assert health.detail.startswith("crash loop: ")
        assert "OverflowError: date value out of range" in health.detail
        assert "llm.telemetry[1]@40-41" in health.detail  # the offsets it keeps dying on
        assert int(health.checks["restarts"]) >= 4
        left = await asyncio.to_thread(lambda: list(tmp_path.glob("processor-crash-*.json")))
        assert not left  # each report read once
        # The health monitor's recover() (stop + start) begins a fresh series of restarts.
        await service.recover()
        assert service._attempt == 0
        assert len(service.pids) == 1
    finally:
        await service.stop()


@sync
async def test_a_run_that_stays_up_starts_its_backoff_again(
    fake: Callable[[str], Fake], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processor_module, "STABLE_AFTER_S", 0.3)
    f = fake(SLEEP_FOREVER)
    service = ProcessorService(_settings(), {"PATH": os.environ["PATH"]})
    await service.start()
    try:
        for expected in (1, 2):
            await asyncio.sleep(0.5)  # longer than STABLE_AFTER_S
            os.kill(service.pids[0], signal.SIGKILL)
            await _until(lambda e=expected: service.restarts == e and len(service.pids) == 1)  # type: ignore[misc]
        assert f.delays == [0, 0]
    finally:
        await service.stop()


@sync
async def test_a_clean_end_of_topic_is_not_restarted(fake: Callable[[str], Fake]) -> None:
    f = fake("import time; time.sleep(0.7)")  # exits 0, as bytewax does with kafka.tail=false
    service = ProcessorService(_settings(kafka={"tail": False}), {"PATH": os.environ["PATH"]})
    await service.start()
    try:
        assert service._watcher is not None
        await asyncio.wait_for(service._watcher, 10)
        assert f.delays == []
        assert service.restarts == 0
        health = await service.health_check()
        assert health.status is HealthStatus.HEALTHY
        assert health.detail == "finished: reached the end of the topic"
    finally:
        await service.stop()


@sync
async def test_reload_restarts_only_when_a_section_the_dataflow_reads_changed(
    fake: Callable[[str], Fake],
) -> None:
    f = fake(SLEEP_FOREVER)
    settings = _settings()
    service = ProcessorService(settings, {"PATH": os.environ["PATH"]})
    await service.start()
    try:
        pids = service.pids
        quieter = dataclasses.replace(settings, log_level="WARNING")
        await service.reload(quieter.with_overrides(api=dataclasses.replace(settings.api, port=1)))
        assert service.pids == pids
        assert len(f.commands) == 1
        wider = quieter.with_overrides(processor=dataclasses.replace(settings.processor, workers=3))
        await service.reload(wider)
        assert len(service.pids) == 1
        assert service.pids != pids
        assert f.commands[-1][0][3:5] == ["-w", "3"]
        assert service.restarts == 0  # a reload is not a crash
        pids = service.pids
        await service.reload(
            wider.with_overrides(kafka=dataclasses.replace(wider.kafka, tail=False))
        )
        assert service.pids != pids
        assert len(f.commands) == 3
        assert service._watcher is not None
        assert not service._watcher.done()
    finally:
        await service.stop()


@sync
async def test_reload_without_supervision_or_before_start_only_keeps_the_settings(
    fake: Callable[[str], Fake],
) -> None:
    f = fake(SLEEP_FOREVER)
    external = _settings(
        orchestrator={"supervise_processor": False, "processor_endpoints": ("127.0.0.1:9",)}
    )
    service = ProcessorService(external, {})
    await service.start()
    changed = external.with_overrides(processor=dataclasses.replace(external.processor, workers=4))
    await service.reload(changed)
    assert f.commands == []
    assert service.pids == []
    assert service.endpoints == ["127.0.0.1:9"]
    health = await service.health_check()
    assert health.status is HealthStatus.UNHEALTHY
    assert health.detail == "no Bytewax process answers"
    idle = ProcessorService(_settings(), {})
    await idle.reload(_settings(processor={"workers": 2}))
    assert f.commands == []
    assert (await idle.health_check()).detail == "not started"
