"""The processor service: supervises the Bytewax dataflow ``flows.main`` as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog
from bytewax.recovery import init_db_dir

from core.crash_report import CrashReport, read_crash_report
from core.lifetime import stopping_with_parent
from core.settings import Settings
from orchestrator.backoff import MAX_DELAY_S, restart_delay
from orchestrator.service import HealthResult, HealthStatus, ServiceBase
from orchestrator.services.processor_probe import OK, WAITING_FOR_DATABASE, probe_endpoints
from storage.kafka import free_port

__all__ = [
    "RESTART_SECTIONS",
    "ProcessorService",
    "api_ports",
    "bytewax_commands",
    "bytewax_env",
    "discard_recovery_store",
    "ensure_recovery_store",
    "probe_endpoints",
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


#: Sections the dataflow reads at start: a reload that changes one restarts the processes
#: (recovery resumes them where they were, so nothing is lost).
RESTART_SECTIONS = ("processor", "analyzers", "decisions", "canary", "budgets")

#: A process cluster that has run this long without exiting starts its backoff from 1 s again.
STABLE_AFTER_S = 60.0

#: The attempt number handed to ``restart_delay`` past the restart budget: its cap (60 s).
CRASH_LOOP_ATTEMPT = 64


def api_ports(settings: Settings) -> list[int]:
    """One Bytewax dataflow-API port per process (``orchestrator.bytewax_api_port`` upwards)."""
    first = settings.orchestrator.bytewax_api_port
    count = settings.processor.processes
    return [first + i for i in range(count)] if first else [free_port() for _ in range(count)]


def bytewax_env(settings: Settings, port: int) -> dict[str, str]:
    """Variables that make ``bytewax.run`` serve ``/metrics`` (Prometheus) on ``port``.

    The API also writes the rendered dataflow to ``dataflow.json`` in a directory (the working
    directory by default): the data directory instead, which must exist.
    """
    return {
        "BYTEWAX_DATAFLOW_API_ENABLED": "true",
        "BYTEWAX_DATAFLOW_API_PORT": str(port),
        "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(settings.storage.data_dir),
    }


class ProcessorService(ServiceBase):
    """Runs the dataflow processes with the resolved settings passed as ``LLMOPT_*`` variables.

    Every process serves Bytewax's own metrics API (``BYTEWAX_DATAFLOW_API_ENABLED``); health
    is liveness of the processes plus an answer from each ``/metrics``. A process that exits is
    restarted with the whole cluster (``-i/-a`` processes cannot run without each other) after
    ``min(1 s * 2^n, 60 s)``; after ``orchestrator.max_restarts`` restarts in a row it is in a
    *crash loop*: logged (``processor_crash_loop``, with the error and the offsets it read last,
    from :mod:`core.crash_report`) and restarted every 60 s for as long as it keeps crashing,
    never given up (ingest of every app depends on it). Health is degraded while it restarts
    or crash-loops, with the last crash in the detail; every restart counts in ``restarts``
    (``service_restarts_total{service="processor"}``).

    With ``orchestrator.supervise_processor = false`` the processes run elsewhere (Compose,
    a StatefulSet) and this service only probes ``orchestrator.processor_endpoints``.

    Args:
        settings: Resolved settings.
        base_env: The environment the children inherit (PATH and the like), from the entry point.
        ephemeral_input: The input topic lives in the embedded in-memory broker.
        lag: Reads the consumer lag (records) for the health detail; None when unknown.
    """

    name = "processor"
    depends_on = ("storage",)
    required = False  # REST keeps answering from stored windows while the processor restarts.
    retry_forever = True  # the manager never gives it up either (orchestrator.service)

    def __init__(
        self,
        settings: Settings,
        base_env: Mapping[str, str],
        *,
        ephemeral_input: bool = False,
        lag: Callable[[], int | None] | None = None,
    ) -> None:
        self._settings = settings
        self._base_env = dict(base_env)
        self._procs: list[asyncio.subprocess.Process] = []
        self._ports: list[int] = []
        # The embedded broker keeps its topics in memory: offsets recovered from an earlier run
        # would point past the end of the new, empty topic, so such a run starts fresh.
        self._ephemeral_input = ephemeral_input
        self._started_once = False
        self._lag = lag
        self._watcher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0  # cluster restarts done by this service's own supervision
        self._attempt = 0
        self._spawned_at = 0.0
        self._restarting = False  # between an exit and the restart that follows
        self._last_exit: tuple[list[int | None], list[CrashReport]] | None = None

    @property
    def supervised(self) -> bool:
        """Whether this service runs the processes itself."""
        return self._settings.orchestrator.supervise_processor

    @property
    def endpoints(self) -> list[str]:
        """``host:port`` of each process's Bytewax metrics API."""
        if not self.supervised:
            return list(self._settings.orchestrator.processor_endpoints)
        return [f"127.0.0.1:{port}" for port in self._ports]

    @property
    def pids(self) -> list[int]:
        """The running processes' ids."""
        return [p.pid for p in self._procs if p.returncode is None]

    async def start(self) -> None:
        """Spawn the processes and watch them; fail when one exits at once."""
        self._attempt = 0
        self._restarting = False
        if not self.supervised:
            _log.info("processor_external", endpoints=self.endpoints)
            return
        await self._spawn()
        self._watcher = asyncio.create_task(self._watch(), name="processor-watch")

    async def _spawn(self) -> None:
        if self._ephemeral_input and not self._started_once:
            await asyncio.to_thread(discard_recovery_store, self._settings)
        self._started_once = True
        await asyncio.to_thread(ensure_recovery_store, self._settings)
        data_dir = Path(self._settings.storage.data_dir)  # where bytewax writes dataflow.json
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        env = {**self._base_env, **self._settings.as_env()}
        self._ports = api_ports(self._settings)
        commands = bytewax_commands(self._settings)
        self._procs = []
        for cmd, port in zip(commands, self._ports, strict=True):
            self._procs.append(
                await asyncio.create_subprocess_exec(
                    *stopping_with_parent(cmd),  # SIGTERM (a graceful stop) if we are killed
                    env={**env, **bytewax_env(self._settings, port)},
                    stdin=asyncio.subprocess.DEVNULL,
                    # Its own session: a terminal's Ctrl+C (SIGINT to the foreground group)
                    # reaches the orchestrator, which stops the processor in its turn; the
                    # processes would otherwise stop first and look like a crash to _watch.
                    start_new_session=True,
                )
            )
        self._spawned_at = time.monotonic()
        await asyncio.sleep(0.5)
        for proc in self._procs:
            if proc.returncode not in (None, 0):
                await self._terminate()
                report = read_crash_report(data_dir, proc.pid, remove=False)
                why = f": {report.summary()}" if report else ""
                raise RuntimeError(f"bytewax process {proc.pid} exited with {proc.returncode}{why}")
        _log.info("processor_started", pids=self.pids, metrics=self.endpoints)

    async def _watch(self) -> None:
        """Restart the cluster when a process exits (not after a clean end with tail=false)."""
        while True:
            began = time.monotonic()
            waits = [asyncio.ensure_future(p.wait()) for p in self._procs]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            codes = [p.returncode for p in self._procs]
            if not self._settings.kafka.tail and all(c in (None, 0) for c in codes):
                await asyncio.gather(*(p.wait() for p in self._procs))
                if all(p.returncode == 0 for p in self._procs):
                    _log.info("processor_finished", reason="end of topic (kafka.tail=false)")
                    return
            if time.monotonic() - began >= STABLE_AFTER_S:
                self._attempt = 0
            self._restarting = True
            await self._exited(codes)
            await self._terminate()
            await asyncio.sleep(self._next_delay(codes))
            try:
                async with self._lock:
                    await self._spawn()
            except Exception as exc:
                _log.error("processor_restart_failed", error=str(exc))
                continue
            finally:
                self._restarting = False
                self.restarts += 1  # every attempt counts, also one whose processes die at once

    async def _exited(self, codes: list[int | None]) -> None:
        """Keep the exit codes and crash reports of the processes that just exited."""
        data_dir = Path(self._settings.storage.data_dir)
        reports = [
            r
            for p in self._procs
            if p.returncode not in (None, 0)
            and (r := await asyncio.to_thread(read_crash_report, data_dir, p.pid)) is not None
        ]
        self._last_exit = (codes, reports)

    def _crash_detail(self) -> str:
        if self._last_exit is None:
            return ""
        codes, reports = self._last_exit
        why = "; ".join(r.summary() for r in reports)
        return f"bytewax exit codes {codes}" + (f": {why}" if why else "")

    def _in_crash_loop(self) -> bool:
        return self._attempt > self._settings.orchestrator.max_restarts

    def _next_delay(self, codes: list[int | None]) -> float:
        """The wait before the next restart; past the budget, the longest one (crash loop)."""
        budget = self._settings.orchestrator.max_restarts
        crash = self._crash_detail()
        if self._attempt >= budget:
            self._attempt += 1
            delay = restart_delay(CRASH_LOOP_ATTEMPT)
            _log.error(
                "processor_crash_loop",
                exit_codes=codes,
                restarts_in_a_row=self._attempt,
                restarts_total=self.restarts,
                delay_s=delay,
                crash=crash,
            )
            return delay
        delay = restart_delay(self._attempt)
        self._attempt += 1
        _log.warning(
            "processor_exited_restarting",
            exit_codes=codes,
            attempt=self._attempt,
            delay_s=delay,
            crash=crash,
        )
        return delay

    async def _terminate(self) -> None:
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

    async def stop(self) -> None:
        """Stop watching, then stop the processes (SIGINT, SIGKILL after the timeout)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._terminate()
        self._procs = []

    async def reload(self, settings: Settings) -> None:
        """Take new settings; restart the processes when a section the dataflow reads changed."""
        old, self._settings = self._settings, settings
        changed = [s for s in RESTART_SECTIONS if getattr(old, s) != getattr(settings, s)]
        changed += ["kafka"] if old.kafka.tail != settings.kafka.tail else []
        if not changed or not self.supervised or not self._procs:
            return
        _log.info("processor_reloading", sections=changed)
        await self.stop()
        await self.start()

    async def health_check(self) -> HealthResult:
        """Processes alive and each Bytewax ``/metrics`` answering; lag in the checks."""
        checks: dict[str, str] = {}
        if self._lag is not None and (lag := self._lag()) is not None:
            checks["consumer_lag"] = str(lag)
        if self.supervised:
            codes = [p.returncode for p in self._procs]
            if not codes:
                return HealthResult(HealthStatus.UNHEALTHY, "not started", checks)
            if not self._settings.kafka.tail and all(c == 0 for c in codes):
                return HealthResult(
                    HealthStatus.HEALTHY, "finished: reached the end of the topic", checks
                )
            checks["restarts"] = str(self.restarts)
            watching = self._watcher is not None and not self._watcher.done()
            if any(c is not None for c in codes) and not (watching and self._restarting):
                return HealthResult(HealthStatus.UNHEALTHY, f"bytewax exit codes {codes}", checks)
            crash = self._crash_detail()
            if crash:
                checks["last_crash"] = crash
            stable = time.monotonic() - self._spawned_at >= STABLE_AFTER_S
            if self._in_crash_loop() and not stable:
                return HealthResult(
                    HealthStatus.DEGRADED,
                    f"crash loop: {self._attempt} restarts in a row, retrying every "
                    f"{MAX_DELAY_S:g} s; last: {crash}",
                    checks,
                )
            if self._restarting:
                return HealthResult(
                    HealthStatus.DEGRADED, f"restarting (attempt {self._attempt}): {crash}", checks
                )
        probes = await probe_endpoints(self.endpoints)
        checks.update({f"metrics.{k}": v for k, v in probes.items()})
        waiting = sorted(k for k, v in probes.items() if v.startswith(WAITING_FOR_DATABASE))
        silent = sorted(k for k, v in probes.items() if v != OK and k not in waiting)
        if not self.supervised and probes and len(silent) == len(probes):
            return HealthResult(HealthStatus.UNHEALTHY, "no Bytewax process answers", checks)
        if silent:
            return HealthResult(
                HealthStatus.DEGRADED, "metrics not answering: " + ", ".join(silent), checks
            )
        if waiting:  # alive, holding its input until the database is back (nothing lost)
            detail = "; ".join(f"{k}: {probes[k]}" for k in waiting)
            return HealthResult(HealthStatus.DEGRADED, detail, checks)
        return HealthResult(HealthStatus.HEALTHY, f"{len(probes)} process(es) live", checks)
