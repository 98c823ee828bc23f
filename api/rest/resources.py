"""What the REST app opens in its lifespan and hands to controllers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar
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
    TelemetryService,
)
from api.service.rate_limit import RateLimiter, open_limiter
from core.settings import Settings
from sinks.config_manager import ConfigManager
from storage.api_keys import ApiKeyRepository
from storage.cache import Cache, open_cache
from storage.database import create_db_engine, ping
from storage.insights import InsightRepository
from storage.kafka import kafka_ping
from storage.strays import StrayRepository
from storage.windows import WindowRepository

__all__ = ["Resources", "lifespan", "resources_of"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resources:
    """Shared, thread-safe handles for request handlers: the service layer."""

    metrics: MetricsQueries
    api_keys: ApiKeyRepository
    health: HealthService
    cache: Cache
    auth: Authenticator
    limiter: RateLimiter
    configs: ConfigService
    recommendations: RecommendationService
    deployments: DeploymentQueries
    telemetry: TelemetryService
    integrations: IntegrationService
    admin: AdminService


def resources_of(app: Litestar) -> Resources:
    """The resources the lifespan put on ``app.state``."""
    found = app.state.resources
    assert isinstance(found, Resources)
    return found


async def _open_ingest(settings: Settings) -> Any:
    """The REST replica's own ingest pipeline (own spill folder), when Kafka is configured."""
    if not settings.kafka.bootstrap_servers:
        return None
    from collector.pipeline import TelemetryIngest

    spill = Path(settings.storage.data_dir) / "rest-spill"
    collector = dataclasses.replace(settings.collector, spill_dir=str(spill))
    ingest = TelemetryIngest(settings.with_overrides(collector=collector))
    await ingest.start()
    return ingest


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the database, cache, limiter, ingest and health probes; create the bootstrap key."""
    settings: Settings = app.state.settings
    hooks: dict[str, Any] = app.state.hooks
    engine = create_db_engine(settings.storage.resolved_database_url)
    cache = open_cache(settings.storage.redis_url)
    limiter = open_limiter(settings.storage.redis_url, settings.api.rate_limit_prefix)
    keys = ApiKeyRepository(engine)
    if settings.api.bootstrap_admin_key:
        try:  # best effort: the key also works from settings alone (see api.service.auth)
            await asyncio.to_thread(
                keys.ensure, "bootstrap-admin", "admin", settings.api.bootstrap_admin_key
            )
        except SQLAlchemyError as exc:
            _log.warning("bootstrap admin key not stored, database unavailable: %s", type(exc))
    checks = [DependencyCheck("database", True, lambda: asyncio.to_thread(ping, engine))]
    if settings.kafka.bootstrap_servers:
        bootstrap = settings.kafka.bootstrap_servers
        checks.append(
            DependencyCheck("kafka", False, lambda: asyncio.to_thread(kafka_ping, bootstrap, 2.0))
        )
    checks.append(DependencyCheck("cache", bool(settings.storage.redis_url), cache.ping))
    own_ingest = hooks.get("ingest") is None
    ingest = hooks.get("ingest") or await _open_ingest(settings)
    auth = Authenticator(keys, settings.api)
    # Publishing is the config service's (async, on the shared cache), not the manager's.
    manager = hooks.get("config_manager") or ConfigManager(engine)
    app.state.resources = Resources(
        metrics=MetricsQueries(
            WindowRepository(engine), StrayRepository(engine), InsightRepository(engine)
        ),
        api_keys=keys,
        health=HealthService(checks),
        cache=cache,
        auth=auth,
        limiter=limiter,
        configs=ConfigService(
            engine, cache, ttl_s=settings.api.config_cache_ttl.total_seconds(), manager=manager
        ),
        recommendations=RecommendationService(engine, settings),
        deployments=DeploymentQueries(engine),
        telemetry=TelemetryService(ingest, max_events=settings.api.max_batch_events),
        integrations=IntegrationService(engine),
        admin=AdminService(engine, keys, auth, on_reload=hooks.get("on_reload")),
    )
    try:
        yield
    finally:
        if own_ingest and ingest is not None:
            await ingest.stop()
        await limiter.close()
        await cache.close()
        engine.dispose()
