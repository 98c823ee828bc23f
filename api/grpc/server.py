"""The gRPC server factory: servicers, interceptors, health, reflection, TLS and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry

from api.grpc.chain import ChainedInterceptor
from api.grpc.health import HealthMonitor
from api.grpc.interceptors import (
    AuthInterceptor,
    ErrorInterceptor,
    GrpcMetrics,
    LoggingInterceptor,
    MetricsInterceptor,
)
from api.grpc.live_layer import LiveLayer
from api.grpc.permissions import PACKAGE
from api.grpc.servicers import (
    AdminServicer,
    ConfigServicer,
    IntegrationServicer,
    MetricsServicer,
    OptimizationServicer,
)
from api.service.layer import ServiceLayer
from core.errors import ConfigurationError
from core.settings import GrpcSettings, Settings
from proto.llmopt.v1 import (
    admin_pb2_grpc,
    config_pb2_grpc,
    integrations_pb2_grpc,
    metrics_pb2_grpc,
    optimization_pb2_grpc,
)

__all__ = ["SERVICE_NAMES", "GrpcServer", "create_server", "server_credentials"]

SERVICE_NAMES = tuple(
    f"{PACKAGE}.{name}"
    for name in (
        "OptimizationService",
        "ConfigService",
        "MetricsService",
        "IntegrationService",
        "AdminService",
    )
)


def _read(path: str, key: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"invalid settings: {key} {path!r} cannot be read: {exc}") from exc


def server_credentials(settings: GrpcSettings) -> Any:
    """TLS credentials from the settings, or ``None`` for plaintext.

    grpcio's Python API has no minimum-TLS-version option: its BoringSSL negotiates TLS 1.3
    whenever the client offers it (and TLS 1.2 at least, never older).
    """
    cert, key, ca = settings.tls_cert_path, settings.tls_key_path, settings.tls_client_ca_path
    if not cert and not key:
        if ca:
            raise ConfigurationError(
                "invalid settings: grpc.tls_client_ca_path needs grpc.tls_cert_path and "
                "grpc.tls_key_path"
            )
        return None
    if not cert or not key:
        missing = "grpc.tls_key_path" if cert else "grpc.tls_cert_path"
        raise ConfigurationError(f"invalid settings: TLS needs both files; {missing} is empty")
    pair = (_read(key, "grpc.tls_key_path"), _read(cert, "grpc.tls_cert_path"))
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=_read(ca, "grpc.tls_client_ca_path") if ca else None,
        require_client_auth=bool(ca),
    )


class GrpcServer:
    """A created (not yet started) ``grpc.aio`` server and its health monitor."""

    def __init__(
        self,
        server: Any,
        monitor: HealthMonitor,
        port: int,
        grace_s: float,
        tls: bool,
        layer: LiveLayer,
    ) -> None:
        self.server = server
        self.health = monitor
        self.port = port
        self.tls = tls
        self._grace = grace_s
        self._layer = layer

    def reload(self, settings: Settings) -> None:
        """Serve the next calls with ``settings`` (SIGHUP, admin reload); no call is dropped.

        Auth, rate limits, call limits and the services take the new values; the address,
        TLS files, message sizes and ``grpc.grace`` are read when the server is created (a
        reload that changes them is logged as needing a restart by the orchestrator).
        """
        self._layer.reload(settings)
        self._grace = settings.grpc.grace.total_seconds()

    async def start(self) -> None:
        """Probe the dependencies, then accept calls."""
        await self.server.start()
        await self.health.start()

    async def stop(self, grace: float | None = None) -> None:
        """Health ``NOT_SERVING`` first, then ``stop(grace)``: in-flight calls may finish."""
        await self.health.shutdown()
        await self.server.stop(self._grace if grace is None else grace)

    async def wait(self) -> None:
        """Until the server stops."""
        await self.server.wait_for_termination()


def create_server(
    settings: Settings,
    resources: ServiceLayer,
    *,
    host: str | None = None,
    port: int | None = None,
    registry: CollectorRegistry = REGISTRY,
    reuse_port: bool = False,
) -> GrpcServer:
    """A server for the five ``llmopt.v1`` services, health and reflection, bound and ready.

    Args:
        settings: The frozen settings (``grpc`` section: address, TLS, limits; ``api``: auth
            and rate limits shared with REST).
        resources: The opened service layer (:func:`api.grpc.resources.open_resources`).
        host: Overrides ``grpc.host``.
        port: Overrides ``grpc.port``; 0 binds a free port (see :attr:`GrpcServer.port`).
        registry: Where the per-method Prometheus metrics live.
        reuse_port: Bind with ``SO_REUSEPORT``: several server processes share the port and the
            kernel spreads new connections over them (``grpc.workers``).

    Raises:
        ConfigurationError: TLS files missing or unreadable, or the address cannot be bound.
    """
    grpc_settings = settings.grpc
    live = LiveLayer(resources)
    # Outermost first; one chained interceptor wraps each method once (see api.grpc.chain).
    interceptors = ChainedInterceptor(
        [
            MetricsInterceptor(GrpcMetrics.of(registry)),
            LoggingInterceptor(),
            AuthInterceptor(live),
            ErrorInterceptor(lambda: live.current.settings.grpc.unary_timeout.total_seconds()),
        ]
    )
    server = grpc.aio.server(
        interceptors=[interceptors],
        options=[
            ("grpc.max_receive_message_length", grpc_settings.max_receive_message_bytes),
            ("grpc.max_send_message_length", grpc_settings.max_send_message_bytes),
            ("grpc.so_reuseport", int(reuse_port)),
        ],
    )
    optimization_pb2_grpc.add_OptimizationServiceServicer_to_server(
        OptimizationServicer(live), server
    )
    config_pb2_grpc.add_ConfigServiceServicer_to_server(ConfigServicer(live), server)
    metrics_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsServicer(live), server)
    integrations_pb2_grpc.add_IntegrationServiceServicer_to_server(
        IntegrationServicer(live), server
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(live), server)
    monitor = HealthMonitor(
        resources.health, SERVICE_NAMES, grpc_settings.health_interval.total_seconds()
    )
    health_pb2_grpc.add_HealthServicer_to_server(monitor.servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{host or grpc_settings.host}:{grpc_settings.port if port is None else port}"
    credentials = server_credentials(grpc_settings)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ConfigurationError(f"invalid settings: cannot bind gRPC to {address}: {exc}") from exc
    if bound == 0:
        raise ConfigurationError(f"invalid settings: cannot bind gRPC to {address}")
    return GrpcServer(
        server, monitor, bound, grpc_settings.grace.total_seconds(), credentials is not None, live
    )
