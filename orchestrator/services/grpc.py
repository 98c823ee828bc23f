"""The gRPC service: the ``llmopt.v1`` API on ``grpc.aio``, in this process."""

from __future__ import annotations

import contextlib
from contextlib import AsyncExitStack
from typing import Protocol

from prometheus_client import CollectorRegistry

from api.grpc import GrpcServer, create_server, open_resources
from api.service import ReloadHook
from api.service.telemetry import IngestLike
from collector.pipeline import IngestResult, Source
from core.errors import StorageUnavailableError
from core.settings import Settings
from orchestrator.service import HealthResult, HealthStatus, ServiceBase

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
    ``registry``, which the orchestrator serves on ``orchestrator.metrics_port``.
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

    @property
    def port(self) -> int | None:
        """The bound port while running (``grpc.port`` 0 binds a free one)."""
        return self._server.port if self._server is not None else None

    async def start(self) -> None:
        """Open the service layer, bind, probe the dependencies and accept calls."""
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

    async def reload(self, settings: Settings) -> None:
        """Serve the next calls with reloaded settings (auth, rate limits, call limits).

        Open streams and in-flight calls keep going; the address and TLS files need a restart.
        """
        self._settings = settings
        if self._server is not None:
            self._server.reload(settings)

    async def stop(self) -> None:
        """Health ``NOT_SERVING``, finish in-flight calls within ``grpc.grace``, close."""
        stack, self._stack, self._server = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def health_check(self) -> HealthResult:
        """The same dependency probes the ``grpc.health.v1`` service publishes."""
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
