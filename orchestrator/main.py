"""The orchestrator's entry point: load settings once, start the services, wait for a signal."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Mapping

import structlog

from core.errors import ConfigurationError, ServiceStartError
from core.settings import Settings, load_settings
from orchestrator.manager import ServiceManager
from orchestrator.metrics import create_registry, serve_metrics
from orchestrator.service import Service
from orchestrator.services import (
    CollectorService,
    IntegrationsService,
    ProcessorService,
    RestService,
    StorageService,
)
from orchestrator.signals import install_signal_handlers

__all__ = ["build_services", "configure_logging", "main", "resolve_embedded"]

_log = structlog.get_logger(__name__)


def configure_logging(level: str) -> None:
    """Structured logs to stderr at ``level``."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    for noisy in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
    )


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
    settings: Settings, *, embedded_broker: bool, base_env: Mapping[str, str]
) -> list[Service]:
    """The services of this release, registered in start order."""
    collector = [CollectorService(settings)] if settings.collector.enabled else []
    return [
        StorageService(settings, embedded_broker=embedded_broker),
        *collector,
        IntegrationsService(settings),
        ProcessorService(settings, base_env, ephemeral_input=embedded_broker),
        RestService(settings),
    ]


async def _run(settings: Settings, embedded_broker: bool, base_env: Mapping[str, str]) -> int:
    manager = ServiceManager.from_settings(
        build_services(settings, embedded_broker=embedded_broker, base_env=base_env),
        settings.orchestrator,
    )
    stop = asyncio.Event()

    def reload() -> None:
        try:
            fresh = load_settings()
        except ConfigurationError as exc:
            _log.error("reload_rejected_keeping_old_settings", error=str(exc))
            return
        configure_logging(fresh.log_level)
        _log.info("settings_reloaded", log_level=fresh.log_level)

    remove_handlers = install_signal_handlers(stop, reload)
    try:
        await manager.start_all()
    except ServiceStartError as exc:
        _log.error("startup_failed", service=exc.service, reason=exc.reason)
        remove_handlers()
        return 1
    metrics = await serve_metrics(
        create_registry(manager), settings.api.host, settings.orchestrator.metrics_port
    )
    _log.info(
        "optimizer_running",
        rest=f"http://{settings.api.host}:{settings.api.port}",
        otlp=f"grpc {settings.collector.grpc_port}, http {settings.collector.http_port}",
        metrics=f"http://{settings.api.host}:{metrics.port}/metrics",
        kafka=settings.kafka.bootstrap_servers,
        database=settings.storage.resolved_database_url.split("@")[-1],
    )
    monitor = asyncio.create_task(manager.run_health_monitor(stop))
    await stop.wait()
    await monitor
    await manager.stop_all()
    await metrics.close()
    remove_handlers()
    for name, state in manager.states().items():
        result = manager.health().get(name)
        _log.info(
            "final_health", service=name, state=str(state), detail=result.detail if result else ""
        )
    return 0


def main() -> int:
    """Run the optimizer until SIGTERM/SIGINT; 2 on invalid settings, 1 on a failed start."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"llmopt: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    settings, embedded = resolve_embedded(settings)
    return asyncio.run(_run(settings, embedded, dict(os.environ)))
