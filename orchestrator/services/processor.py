"""The processor service: supervises the Bytewax dataflow ``flows.main`` as child processes."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Mapping

import structlog

from core.settings import Settings
from orchestrator.service import HealthResult, HealthStatus, ServiceBase
from storage.kafka import free_port

__all__ = ["ProcessorService", "bytewax_commands"]

_log = structlog.get_logger(__name__)


def bytewax_commands(settings: Settings) -> list[list[str]]:
    """One ``python -m bytewax.run flows.main`` command line per process.

    With ``processor.processes`` > 1 the processes form one cluster (``-a`` addresses, ``-i``
    index); each runs ``processor.workers`` workers; ``processor.recovery_dir`` enables recovery.
    """
    p = settings.processor
    base = [sys.executable, "-m", "bytewax.run", "flows.main", "-w", str(p.workers)]
    if p.recovery_dir:
        base += ["-r", p.recovery_dir]
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

    def __init__(self, settings: Settings, base_env: Mapping[str, str]) -> None:
        self._settings = settings
        self._env = {**base_env, **settings.as_env()}
        self._procs: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        """Spawn the processes; fail when one exits at once."""
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
