"""The gRPC service: the ``llmopt.v1`` API on ``grpc.aio``.

With ``grpc.workers`` 1 (the default) the server runs in this process and ``RecordTelemetry``
goes through the collector's pipeline. With more, :class:`GrpcWorkerPool` runs that many server
processes on the port (``SO_REUSEPORT``), each with its own service layer and ingest pipeline,
as REST has ``api.workers``: one grpc.aio process costs about twice a whole REST read per call
(bench/README.md), so one process cannot keep up with the REST workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from contextlib import AsyncExitStack
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from api.grpc import GrpcServer, create_server, open_resources
from api.grpc.worker import worker_count
from api.service import ReloadHook
from api.service.telemetry import IngestLike
from collector.pipeline import IngestResult, Source
from core.errors import StorageUnavailableError
from core.settings import Settings
from orchestrator.service import HealthResult, HealthStatus, ServiceBase
from orchestrator.services.grpc_workers import GrpcWorkerPool, WorkerMetrics
from orchestrator.services.reload_relay import relay_reloads
from orchestrator.services.rest import configure_worker

__all__ = ["GrpcService", "IngestOwner"]


class IngestOwner(Protocol):
    """A service that owns the running ingest pipeline (the collector service)."""

    @property
    def ingest(self) -> IngestLike | None:
        """The started :class:`collector.pipeline.TelemetryIngest`, ``None`` while stopped."""
        ...


class _SharedIngest:
    """The collector's ingest pipeline, looked up per call (it is new after a restart)."""

    def __init__(self, owner: IngestOwner) -> None:
        self._owner = owner

    async def submit(self, events: list[bytes], source: Source) -> IngestResult:
        ingest = self._owner.ingest
        if ingest is None:
            raise StorageUnavailableError("telemetry ingest is not running (collector stopped)")
        return await ingest.submit(events, source)


class GrpcService(ServiceBase):
    """Serves the gRPC API on ``grpc.host:grpc.port`` (TLS when configured).

    Telemetry sent to ``MetricsService/RecordTelemetry`` goes through the collector's ingest
    pipeline when a collector runs (one spill folder, one set of limits); without one the server
    starts its own when Kafka is configured. Per-method metrics (``llmopt_grpc_*``) go to
    ``registry``, which the orchestrator serves on ``orchestrator.metrics_port``; with several
    worker processes, their sums do.
    """

    name = "grpc"
    depends_on = ("storage", "processor")

    def __init__(
        self,
        settings: Settings,
        *,
        collector: IngestOwner | None = None,
        on_reload: ReloadHook | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry if registry is not None else CollectorRegistry()
        self._collector = collector
        self._on_reload = on_reload
        self._stack: AsyncExitStack | None = None
        self._server: GrpcServer | None = None
        self._pool: GrpcWorkerPool | None = None
        self._relay: tuple[Any, asyncio.Task[None]] | None = None
        self._worker_metrics = WorkerMetrics()
        self._registry.register(self._worker_metrics)

    @property
    def port(self) -> int | None:
        """The bound port while running (``grpc.port`` 0 binds a free one)."""
        if self._pool is not None:
            return self._pool.port
        return self._server.port if self._server is not None else None

    @property
    def pool(self) -> GrpcWorkerPool | None:
        """The worker processes, with ``grpc.workers`` > 1 while running."""
        return self._pool

    async def start(self) -> None:
        """Open the service layer, bind, probe the dependencies and accept calls.

        With ``grpc.workers`` > 1: start the worker processes and wait until each accepts calls.
        """
        if worker_count(self._settings) > 1:
            await self._start_pool()
            return
        stack = AsyncExitStack()
        try:
            shared = _SharedIngest(self._collector) if self._collector is not None else None
            resources = await stack.enter_async_context(
                open_resources(
                    self._settings,
                    ingest=shared,
                    own_ingest=shared is None,
                    on_reload=self._on_reload,
                )
            )
            server = create_server(self._settings, resources, registry=self._registry)
            await server.start()
            stack.push_async_callback(server.stop)
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._server = stack, server

    async def _start_pool(self) -> None:
        reloads: Any = None
        if self._on_reload is not None:
            reloads = multiprocessing.get_context("spawn").Queue()
            self._relay = (reloads, asyncio.create_task(relay_reloads(reloads, self._on_reload)))
        pool = GrpcWorkerPool(
            self._settings, self._worker_metrics, reloads=reloads, setup=configure_worker
        )
        try:
            await pool.start()
        except BaseException:
            await self._stop_relay()
            raise
        self._pool = pool

    async def _stop_relay(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            relay[0].put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await relay[1]

    async def reload(self, settings: Settings) -> None:
        """Serve the next calls with reloaded settings (auth, rate limits, call limits).

        Open streams and in-flight calls keep going; the address and TLS files need a restart.
        """
        self._settings = settings
        if self._server is not None:
            self._server.reload(settings)
        if self._pool is not None:
            self._pool.reload(settings)

    async def stop(self) -> None:
        """Health ``NOT_SERVING``, finish in-flight calls within ``grpc.grace``, close."""
        stack, self._stack, self._server = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.stop()
        await self._stop_relay()

    async def health_check(self) -> HealthResult:
        """The same dependency probes the ``grpc.health.v1`` service publishes."""
        if self._pool is not None:
            return await self._pool_health(self._pool)
        server = self._server
        if server is None:
            return HealthResult(HealthStatus.UNHEALTHY, "server not running")
        report = await server.health.check()
        checks: dict[str, str] = {n: d.status for n, d in report.dependencies.items()}
        checks["port"] = str(server.port)
        if report.status == "down":
            return HealthResult(HealthStatus.UNHEALTHY, "a required dependency is down", checks)
        if report.status == "degraded":
            return HealthResult(HealthStatus.DEGRADED, "a dependency is down", checks)
        return HealthResult(HealthStatus.HEALTHY, "", checks)

    async def _pool_health(self, pool: GrpcWorkerPool) -> HealthResult:
        """Workers running, and the ``grpc.health.v1`` answer of whichever worker takes it.

        Over TLS only the workers' liveness counts (the orchestrator holds no client
        certificate for a server that requires one).
        """
        checks = {"port": str(pool.port), "workers": f"{pool.alive}/{pool.size}"}
        if not pool.alive:
            return HealthResult(HealthStatus.UNHEALTHY, "no gRPC worker running", checks)
        if not self._settings.grpc.tls_cert_path:
            host = self._settings.grpc.host
            if host in ("0.0.0.0", "::"):  # noqa: S104
                host = "127.0.0.1"
            async with grpc.aio.insecure_channel(f"{host}:{pool.port}") as channel:
                try:
                    answer = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5.0
                    )
                except grpc.aio.AioRpcError as exc:
                    return HealthResult(HealthStatus.UNHEALTHY, f"no answer: {exc.code()}", checks)
            if answer.status != health_pb2.HealthCheckResponse.SERVING:
                return HealthResult(HealthStatus.UNHEALTHY, "a required dependency is down", checks)
        if pool.alive < pool.size:
            return HealthResult(HealthStatus.DEGRADED, "a gRPC worker is being replaced", checks)
        return HealthResult(HealthStatus.HEALTHY, "", checks)
