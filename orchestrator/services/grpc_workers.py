"""Supervises ``grpc.workers`` gRPC server processes sharing one port (``SO_REUSEPORT``).

A worker that dies is started again (after ``_RESPAWN_S``) with the latest settings; its
spill folder is claimed again by the new process (``collector.spill_owner``). The workers'
per-method metrics meet in one directory and :class:`WorkerMetrics` exports their sums on the
orchestrator's metrics port. With ``grpc.port`` 0 the pool reserves a free port first: a bound,
never listening socket with ``SO_REUSEPORT`` that keeps the number while the workers bind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from api.grpc.worker import WorkerPlan, serve_worker, worker_count
from core.settings import Settings

__all__ = ["GrpcWorkerPool", "WorkerMetrics"]

_log = structlog.get_logger(__name__)
_RESPAWN_S = 1.0  # between a worker's death and its replacement (a crash loop stays slow)
_WATCH_S = 0.2


class WorkerMetrics:
    """A Prometheus collector of the running pool's metrics, summed over its workers."""

    def __init__(self) -> None:
        self.directory = ""

    def collect(self) -> Iterator[Metric]:
        """Every worker's metric files, summed (nothing while no pool runs)."""
        if self.directory:
            yield from MultiProcessCollector(None, path=self.directory).collect()  # type: ignore[no-untyped-call]


def _reserve(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


class GrpcWorkerPool:
    """``grpc.workers`` server processes on ``grpc.host:grpc.port``, kept running."""

    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        *,
        reloads: Any = None,
        setup: Callable[[Settings], None] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._reloads = reloads  # the queue AdminService/Reload calls go up on, or None
        self._setup = setup
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[Any, Any]] = []  # (process, its settings queue)
        self._reserved: socket.socket | None = None
        self._watch: asyncio.Task[None] | None = None
        self.port = settings.grpc.port
        self.respawns = 0

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (alive or not yet replaced)."""
        return [int(p.pid) for p, _ in self._workers]

    @property
    def alive(self) -> int:
        """How many workers are running."""
        return sum(p.is_alive() for p, _ in self._workers)

    @property
    def size(self) -> int:
        """How many workers the pool keeps."""
        return len(self._workers)

    def _spawn(self) -> tuple[Any, Any, Any]:
        updates, ready = self._context.Queue(), self._context.Event()
        plan = WorkerPlan(
            self._settings,
            self.port,
            self._metrics.directory,
            self._reloads,
            updates,
            ready,
            self._setup,
        )
        process = self._context.Process(
            target=serve_worker, args=(plan,), name="llmopt-grpc", daemon=False
        )
        process.start()
        return process, updates, ready

    async def start(self) -> None:
        """Start every worker and wait until each accepts calls."""
        if not self.port:
            self._reserved = _reserve(self._settings.grpc.host)
            self.port = self._reserved.getsockname()[1]
        self._metrics.directory = tempfile.mkdtemp(prefix="llmopt-grpc-metrics-")
        started = [self._spawn() for _ in range(worker_count(self._settings))]
        self._workers = [(p, q) for p, q, _ in started]
        try:
            for process, _, ready in started:
                while not ready.is_set():
                    if not process.is_alive():
                        raise RuntimeError(
                            f"gRPC worker exited during start-up (code {process.exitcode})"
                        )
                    await asyncio.sleep(0.05)
        except BaseException:
            await self.stop()
            raise
        self._watch = asyncio.create_task(self._keep_running())

    async def _keep_running(self) -> None:
        while True:
            await asyncio.sleep(_WATCH_S)
            for i, (process, _) in enumerate(self._workers):
                if process.is_alive():
                    continue
                _log.warning("grpc_worker_died", pid=process.pid, code=process.exitcode)
                await asyncio.sleep(_RESPAWN_S)
                replacement, updates, _ = self._spawn()
                self._workers[i] = (replacement, updates)
                self.respawns += 1

    def reload(self, settings: Settings) -> None:
        """Every worker serves its next calls with ``settings``; replacements start with them."""
        self._settings = settings
        for _, updates in self._workers:
            updates.put(settings)

    async def stop(self) -> None:
        """SIGTERM to every worker (each finishes in-flight calls within ``grpc.grace``)."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        workers, self._workers = self._workers, []
        for process, updates in workers:
            updates.put(None)
            if process.is_alive():
                process.terminate()
        limit = self._settings.grpc.grace.total_seconds() + 10.0
        for process, _ in workers:
            await asyncio.to_thread(process.join, limit)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join, 5)
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        directory, self._metrics.directory = self._metrics.directory, ""
        if directory:
            shutil.rmtree(directory, ignore_errors=True)
