"""The orchestrator's entry point: load settings once, start the services, wait for a signal."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from collections.abc import Awaitable, Callable, Mapping

import structlog
from prometheus_client import CollectorRegistry

from core.errors import ConfigurationError, ServiceStartError
from core.settings import Settings, load_settings
from orchestrator.manager import ServiceManager
from orchestrator.metrics import create_registry, serve_metrics
from orchestrator.observability import configure_logging, configure_tracing, log_format_for
from orchestrator.pipeline_metrics import PipelineCollector, PipelineSampler
from orchestrator.reload import SettingsReloader
from orchestrator.service import Service
from orchestrator.services import (
    CollectorService,
    GrpcService,
    IntegrationsService,
    ProcessorService,
    RestService,
    StorageService,
)
from orchestrator.services.processor import recovery_dir
from orchestrator.signals import install_signal_handlers
from storage.database import create_db_engine

__all__ = ["build_services", "configure_logging", "main", "resolve_embedded"]

_log = structlog.get_logger(__name__)


def resolve_embedded(settings: Settings) -> tuple[Settings, bool]:
    """Point ``kafka.bootstrap_servers`` at the embedded broker when none is configured.

    Returns:
        The resolved settings and whether the embedded broker must be started.
    """
    kafka = settings.kafka
    if not kafka.embedded:
        return settings, False
    port = kafka.embedded_port
    if port == 0:
        from storage.kafka import free_port

        port = free_port()
    resolved = dataclasses.replace(kafka, bootstrap_servers=f"127.0.0.1:{port}", embedded_port=port)
    return settings.with_overrides(kafka=resolved), True


def build_services(
    settings: Settings,
    *,
    embedded_broker: bool,
    base_env: Mapping[str, str],
    on_reload: Callable[[], Awaitable[None]] | None = None,
    lag: Callable[[], int | None] | None = None,
    grpc_registry: CollectorRegistry | None = None,
) -> list[Service]:
    """The services of this release, registered in start order.

    Args:
        settings: Resolved settings.
        embedded_broker: Start the in-memory broker in the storage service.
        base_env: The environment the Bytewax processes inherit.
        on_reload: The settings reload that ``POST /api/v1/admin/reload`` (and gRPC
            ``AdminService/Reload``) calls.
        lag: Reads the processor's consumer lag, for its health detail.
        grpc_registry: Where the gRPC server records its per-method metrics (the
            orchestrator serves it on ``orchestrator.metrics_port``); a new one when omitted.
    """
    collector = [CollectorService(settings)] if settings.collector.enabled else []
    grpc = (
        [
            GrpcService(
                settings,
                collector=collector[0] if collector else None,
                on_reload=on_reload,
                registry=grpc_registry,
            )
        ]
        if settings.grpc.enabled
        else []
    )
    return [
        StorageService(settings, embedded_broker=embedded_broker),
        *collector,
        IntegrationsService(settings),
        ProcessorService(settings, base_env, ephemeral_input=embedded_broker, lag=lag),
        RestService(settings, on_reload=on_reload),
        *grpc,
    ]


async def _run(settings: Settings, embedded_broker: bool, base_env: Mapping[str, str]) -> int:
    tracing = configure_tracing(settings.orchestrator.otlp_endpoint)
    engine = create_db_engine(settings.storage.resolved_database_url)
    sampler = PipelineSampler(settings, engine, recovery_dir(settings))
    reloader: SettingsReloader | None = None
    grpc_registry = CollectorRegistry()

    async def reload_from_api() -> None:
        if reloader is None:
            raise ConfigurationError("reload is not available while starting")
        await reloader.reload_or_raise()

    manager = ServiceManager.from_settings(
        build_services(
            settings,
            embedded_broker=embedded_broker,
            base_env=base_env,
            on_reload=reload_from_api,
            lag=sampler.total_lag,
            grpc_registry=grpc_registry,
        ),
        settings.orchestrator,
    )
    reloader = SettingsReloader(settings, manager, load_settings)
    stop = asyncio.Event()
    remove_handlers = install_signal_handlers(stop, reloader.reload)
    registry = create_registry(manager, extra=[PipelineCollector(sampler, settings), grpc_registry])
    try:
        await manager.start_all()
    except ServiceStartError as exc:
        _log.error("startup_failed", service=exc.service, reason=exc.reason)
        remove_handlers()
        engine.dispose()
        tracing.shutdown()
        return 1
    metrics = await serve_metrics(registry, settings.api.host, settings.orchestrator.metrics_port)
    _log.info(
        "optimizer_running",
        rest=f"http://{settings.api.host}:{settings.api.port}",
        otlp=f"grpc {settings.collector.grpc_port}, http {settings.collector.http_port}",
        metrics=f"http://{settings.api.host}:{metrics.port}/metrics",
        kafka=settings.kafka.bootstrap_servers,
        database=settings.storage.resolved_database_url.split("@")[-1],
    )
    monitor = asyncio.create_task(manager.run_health_monitor(stop))
    sampling = asyncio.create_task(sampler.run(stop))
    await stop.wait()
    await monitor
    await sampling
    await manager.stop_all()
    await metrics.close()
    remove_handlers()
    engine.dispose()
    tracing.shutdown()
    for name, state in manager.states().items():
        result = manager.health().get(name)
        _log.info(
            "final_health",
            service=name,
            state=str(state),
            detail=result.detail if result else "",
            restarts=manager.restarts()[name],
        )
    return 0


def main() -> int:
    """Run the optimizer until SIGTERM/SIGINT; 2 on invalid settings, 1 on a failed start."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"llmopt: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level, log_format_for(settings.orchestrator.log_format, settings.env)
    )
    settings, embedded = resolve_embedded(settings)
    return asyncio.run(_run(settings, embedded, dict(os.environ)))
