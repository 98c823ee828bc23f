"""What the gRPC server opens and hands to its servicers: the same service layer as REST."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.service import (
    AdminService,
    Authenticator,
    ConfigService,
    DependencyCheck,
    DeploymentQueries,
    HealthService,
    IntegrationService,
    MetricsQueries,
    RecommendationService,
    ReloadHook,
)
from api.service.rate_limit import RateLimiter, open_limiter
from api.service.telemetry import IngestLike
from core.settings import Settings
from sinks.config_manager import ConfigManager
from storage.api_keys import ApiKeyRepository
from storage.cache import Cache, open_cache
from storage.database import create_db_engine, ping
from storage.insights import InsightRepository
from storage.kafka import kafka_ping
from storage.strays import StrayRepository
from storage.windows import WindowRepository

__all__ = ["GrpcResources", "open_resources"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrpcResources:
    """Shared handles for the servicers and interceptors."""

    settings: Settings
    engine: Engine
    cache: Cache
    auth: Authenticator
    limiter: RateLimiter
    health: HealthService
    configs: ConfigService
    recommendations: RecommendationService
    deployments: DeploymentQueries
    metrics: MetricsQueries
    integrations: IntegrationService
    admin: AdminService
    ingest: IngestLike | None


async def _own_ingest(settings: Settings) -> Any:
    """This server's own ingest pipeline (own spill folder), when Kafka is configured."""
    from collector.pipeline import TelemetryIngest

    spill = Path(settings.storage.data_dir) / "grpc-spill"
    collector = dataclasses.replace(settings.collector, spill_dir=str(spill))
    ingest = TelemetryIngest(settings.with_overrides(collector=collector))
    await ingest.start()
    return ingest


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    ingest: IngestLike | None = None,
    own_ingest: bool = True,
    on_reload: ReloadHook | None = None,
    config_manager: Any = None,
) -> AsyncIterator[GrpcResources]:
    """Open the database, cache, limiter and health probes; close them on exit.

    Args:
        settings: The frozen settings.
        ingest: A started :class:`collector.pipeline.TelemetryIngest` to share (the
            orchestrator's collector); without one and with ``own_ingest``, this server starts
            its own when Kafka is configured.
        own_ingest: Whether to start an own ingest pipeline when none is given.
        on_reload: What ``AdminService/Reload`` calls (the orchestrator's SIGHUP handler).
        config_manager: A :class:`sinks.config_manager.ConfigManager` to use instead of a new one.
    """
    engine = create_db_engine(settings.storage.resolved_database_url)
    cache = open_cache(settings.storage.redis_url)
    limiter = open_limiter(settings.storage.redis_url, settings.api.rate_limit_prefix)
    keys = ApiKeyRepository(engine)
    if settings.api.bootstrap_admin_key:
        try:  # best effort: the key also works from settings alone
            await asyncio.to_thread(
                keys.ensure, "bootstrap-admin", "admin", settings.api.bootstrap_admin_key
            )
        except SQLAlchemyError as exc:
            _log.warning("bootstrap admin key not stored, database unavailable: %s", type(exc))
    checks = [DependencyCheck("database", True, lambda: asyncio.to_thread(ping, engine))]
    bootstrap = settings.kafka.bootstrap_servers
    if bootstrap:
        checks.append(
            DependencyCheck("kafka", False, lambda: asyncio.to_thread(kafka_ping, bootstrap, 2.0))
        )
    checks.append(DependencyCheck("cache", bool(settings.storage.redis_url), cache.ping))
    started = None
    if ingest is None and own_ingest and bootstrap:
        ingest = started = await _own_ingest(settings)
    auth = Authenticator(keys, settings.api)
    resources = GrpcResources(
        settings=settings,
        engine=engine,
        cache=cache,
        auth=auth,
        limiter=limiter,
        health=HealthService(checks),
        configs=ConfigService(
            engine,
            cache,
            ttl_s=settings.api.config_cache_ttl.total_seconds(),
            manager=config_manager or ConfigManager(engine),
        ),
        recommendations=RecommendationService(engine, settings),
        deployments=DeploymentQueries(engine),
        metrics=MetricsQueries(
            WindowRepository(engine), StrayRepository(engine), InsightRepository(engine)
        ),
        integrations=IntegrationService(engine),
        admin=AdminService(engine, keys, auth, on_reload=on_reload),
        ingest=ingest,
    )
    try:
        yield resources
    finally:
        if started is not None:
            await started.stop()
        await limiter.close()
        await cache.close()
        engine.dispose()
