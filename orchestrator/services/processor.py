"""The processor service: supervises the Bytewax dataflow ``flows.main`` as child processes."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import structlog
from bytewax.recovery import init_db_dir

from core.settings import Settings
from orchestrator.service import HealthResult, HealthStatus, ServiceBase
from storage.kafka import free_port

__all__ = [
    "ProcessorService",
    "bytewax_commands",
    "discard_recovery_store",
    "ensure_recovery_store",
    "recovery_dir",
]

_log = structlog.get_logger(__name__)


def recovery_dir(settings: Settings) -> Path | None:
    """Where the recovery store lives (``processor.recovery_dir``, else under the data dir)."""
    p = settings.processor
    if not p.recovery:
        return None
    return Path(p.recovery_dir or Path(settings.storage.data_dir) / "recovery")


def ensure_recovery_store(settings: Settings) -> None:
    """Create the recovery partitions on first start (``python -m bytewax.recovery``)."""
    path = recovery_dir(settings)
    if path is None or (path.is_dir() and any(path.glob("part-*.sqlite3"))):
        return
    path.mkdir(parents=True, exist_ok=True)
    init_db_dir(path, settings.processor.recovery_partitions)  # type: ignore[no-untyped-call]
    _log.info("recovery_store_created", path=str(path))


def discard_recovery_store(settings: Settings) -> None:
    """Remove the recovery store (its offsets belong to a topic that no longer exists)."""
    path = recovery_dir(settings)
    if path is not None and path.is_dir():
        shutil.rmtree(path)
        _log.info("recovery_store_discarded", path=str(path), reason="embedded broker restarted")


def bytewax_commands(settings: Settings) -> list[list[str]]:
    """One ``python -m bytewax.run flows.main`` command line per process.

    With ``processor.processes`` > 1 the processes form one cluster (``-a`` addresses, ``-i``
    index); each runs ``processor.workers`` workers. With ``processor.recovery`` (the default)
    they snapshot state every ``processor.snapshot_interval`` into the recovery store and resume
    from it after a crash.
    """
    p = settings.processor
    base = [sys.executable, "-m", "bytewax.run", "flows.main", "-w", str(p.workers)]
    store = recovery_dir(settings)
    if store is not None:
        # bytewax.run takes whole seconds.
        interval = str(max(1, round(p.snapshot_interval.total_seconds())))
        base += ["-r", str(store), "-s", interval, "-b", interval]
    if p.processes == 1:
        return [base]
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(p.processes))
    return [[*base, "-i", str(i), "-a", addresses] for i in range(p.processes)]


class ProcessorService(ServiceBase):
    """Runs the dataflow processes with the resolved settings passed as ``LLMOPT_*`` variables.

    Args:
        settings: Resolved settings.
        base_env: The environment the children inherit (PATH and the like), from the entry point.
    """

    name = "processor"
    depends_on = ("storage",)
    required = False  # REST keeps answering from stored windows while the processor restarts.

    def __init__(
        self, settings: Settings, base_env: Mapping[str, str], *, ephemeral_input: bool = False
    ) -> None:
        self._settings = settings
        self._env = {**base_env, **settings.as_env()}
        self._procs: list[asyncio.subprocess.Process] = []
        # The embedded broker keeps its topics in memory: offsets recovered from an earlier run
        # would point past the end of the new, empty topic, so such a run starts fresh.
        self._ephemeral_input = ephemeral_input
        self._started_once = False

    async def start(self) -> None:
        """Spawn the processes; fail when one exits at once."""
        if self._ephemeral_input and not self._started_once:
            await asyncio.to_thread(discard_recovery_store, self._settings)
        self._started_once = True
        await asyncio.to_thread(ensure_recovery_store, self._settings)
        self._procs = [
            await asyncio.create_subprocess_exec(
                *cmd, env=self._env, stdin=asyncio.subprocess.DEVNULL
            )
            for cmd in bytewax_commands(self._settings)
        ]
        await asyncio.sleep(0.5)
        for proc in self._procs:
            if proc.returncode not in (None, 0):
                raise RuntimeError(f"bytewax process {proc.pid} exited with {proc.returncode}")
        _log.info("processor_started", pids=[p.pid for p in self._procs])

    async def stop(self) -> None:
        """SIGINT (Bytewax stops at the next epoch), then SIGKILL after the shutdown timeout."""
        timeout = self._settings.orchestrator.shutdown_timeout.total_seconds()
        for proc in self._procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                _log.warning("processor_kill", pid=proc.pid)
                proc.kill()
                await proc.wait()
        if self._ephemeral_input and not self._started_once:
            await asyncio.to_thread(discard_recovery_store, self._settings)
        self._started_once = True
        await asyncio.to_thread(ensure_recovery_store, self._settings)
        self._procs = []

    async def health_check(self) -> HealthResult:
        """Healthy while every process runs (or all finished cleanly with ``kafka.tail=false``)."""
        codes = [p.returncode for p in self._procs]
        if not codes:
            return HealthResult(HealthStatus.UNHEALTHY, "not started")
        if all(c is None for c in codes):
            return HealthResult(HealthStatus.HEALTHY, f"{len(codes)} process(es) running")
        if not self._settings.kafka.tail and all(c == 0 for c in codes):
            return HealthResult(HealthStatus.HEALTHY, "finished: reached the end of the topic")
        return HealthResult(HealthStatus.UNHEALTHY, f"bytewax exit codes {codes}")
