"""The service layer opened once per server: what REST controllers and gRPC servicers share.

:func:`open_service_layer` opens the database, the cache, the shared rate limiter, the health
probes, the bootstrap admin key and (when none is handed over) an own ingest pipeline, builds
every service over them, and closes them on exit. The REST lifespan and the gRPC server both
call it, so the two transports are adapters over one layer opened the same way.
"""

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
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from api.service.admin import AdminService, ReloadHook
from api.service.auth import Authenticator
from api.service.configs import ConfigService
from api.service.deployments import DeploymentQueries
from api.service.health import DependencyCheck, HealthService
from api.service.integrations import IntegrationService
from api.service.metrics import MetricsQueries
from api.service.rate_limit import RateLimiter, open_limiter
from api.service.recommendations import RecommendationService
from api.service.telemetry import IngestLike, TelemetryService
from core.settings import Settings
from rollout.config_manager import ConfigManager
from storage.api_keys import ApiKeyRepository
from storage.cache import Cache, open_cache
from storage.database import create_db_engine, ping
from storage.insights import InsightRepository
from storage.kafka import kafka_ping
from storage.strays import StrayRepository
from storage.windows import WindowRepository

__all__ = ["ServiceLayer", "open_service_layer"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceLayer:
    """Shared, thread-safe handles: the services and what they run on."""

    settings: Settings
    engine: Engine
    cache: Cache
    api_keys: ApiKeyRepository
    auth: Authenticator
    limiter: RateLimiter
    health: HealthService
    configs: ConfigService
    recommendations: RecommendationService
    deployments: DeploymentQueries
    metrics: MetricsQueries
    telemetry: TelemetryService
    integrations: IntegrationService
    admin: AdminService
    ingest: IngestLike | None
    on_reload: ReloadHook | None = None

    def reconfigured(self, settings: Settings) -> ServiceLayer:
        """This layer's services rebuilt from reloaded ``settings``, on the same open handles.

        The database engine, cache, rate limiter, API-key repository and ingest pipeline stay
        (their addresses are restart-only settings, see ``orchestrator.reload``); everything
        that reads a setting at call time (auth, rate limits, batch limits, recommendations,
        the config cache's lifetime) takes the new values. The old layer stays usable for the
        calls that hold it; nothing is closed.
        """
        same_ttl = settings.api.config_cache_ttl == self.settings.api.config_cache_ttl
        return _build_layer(
            settings,
            engine=self.engine,
            cache=self.cache,
            keys=self.api_keys,
            limiter=self.limiter,
            ingest=self.ingest,
            configs=self.configs if same_ttl else None,
            config_manager=self.configs.manager,
            on_reload=self.on_reload,
        )


def _build_layer(
    settings: Settings,
    *,
    engine: Engine,
    cache: Cache,
    keys: ApiKeyRepository,
    limiter: RateLimiter,
    ingest: IngestLike | None,
    configs: ConfigService | None,
    config_manager: Any,
    on_reload: ReloadHook | None,
) -> ServiceLayer:
    """The services over opened handles (see :func:`open_service_layer`)."""
    auth = Authenticator(keys, settings.api)
    return ServiceLayer(
        settings=settings,
        engine=engine,
        cache=cache,
        api_keys=keys,
        auth=auth,
        limiter=limiter,
        health=HealthService(_checks(settings, engine, cache)),
        configs=configs
        or ConfigService(
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
        telemetry=TelemetryService(ingest, max_events=settings.api.max_batch_events),
        integrations=IntegrationService(engine),
        admin=AdminService(engine, keys, auth, on_reload=on_reload),
        ingest=ingest,
        on_reload=on_reload,
    )


async def _own_ingest(settings: Settings, spill_name: str) -> Any:
    """This server's own ingest pipeline; each process spills into its own folder under the root."""
    from collector.pipeline import TelemetryIngest

    spill = Path(settings.storage.data_dir) / spill_name
    collector = dataclasses.replace(settings.collector, spill_dir=str(spill))
    ingest = TelemetryIngest(settings.with_overrides(collector=collector))
    await ingest.start()
    return ingest


def _checks(settings: Settings, engine: Engine, cache: Cache) -> list[DependencyCheck]:
    checks = [DependencyCheck("database", True, lambda: asyncio.to_thread(ping, engine))]
    bootstrap = settings.kafka.bootstrap_servers
    if bootstrap:
        checks.append(
            DependencyCheck("kafka", False, lambda: asyncio.to_thread(kafka_ping, bootstrap, 2.0))
        )
    checks.append(DependencyCheck("cache", bool(settings.storage.redis_url), cache.ping))
    return checks


@asynccontextmanager
async def open_service_layer(
    settings: Settings,
    *,
    spill_name: str,
    ingest: IngestLike | None = None,
    own_ingest: bool = True,
    on_reload: ReloadHook | None = None,
    config_manager: Any = None,
) -> AsyncIterator[ServiceLayer]:
    """Open the service layer; close what it opened on exit.

    Args:
        settings: The frozen settings.
        spill_name: Folder under ``storage.data_dir`` for an own ingest pipeline's spill buffer.
        ingest: A started :class:`collector.pipeline.TelemetryIngest` to share (the
            orchestrator's collector); without one and with ``own_ingest``, an own one is
            started when Kafka is configured.
        own_ingest: Whether to start an own ingest pipeline when none is given.
        on_reload: What the admin reload calls (the orchestrator's SIGHUP handler).
        config_manager: A :class:`rollout.config_manager.ConfigManager` to use instead of a new
            one (publishing is the config service's, on the shared cache).
    """
    engine = create_db_engine(settings.storage.resolved_database_url)
    cache = open_cache(settings.storage.redis_url)
    limiter = open_limiter(settings.storage.redis_url, settings.api.rate_limit.prefix)
    keys = ApiKeyRepository(engine)
    if settings.api.bootstrap_admin_key:
        try:  # best effort: the key also works from settings alone (see api.service.auth)
            try:
                await asyncio.to_thread(
                    keys.ensure, "bootstrap-admin", "admin", settings.api.bootstrap_admin_key
                )
            except IntegrityError:  # another worker or replica stored it meanwhile: update it
                await asyncio.to_thread(
                    keys.ensure, "bootstrap-admin", "admin", settings.api.bootstrap_admin_key
                )
        except SQLAlchemyError as exc:
            _log.warning("bootstrap admin key not stored, database unavailable: %s", type(exc))
    started = None
    if ingest is None and own_ingest and settings.kafka.bootstrap_servers:
        ingest = started = await _own_ingest(settings, spill_name)
    layer = _build_layer(
        settings,
        engine=engine,
        cache=cache,
        keys=keys,
        limiter=limiter,
        ingest=ingest,
        configs=None,
        config_manager=config_manager,
        on_reload=on_reload,
    )
    try:
        yield layer
    finally:
        if started is not None:
            await started.stop()
        await limiter.close()
        await cache.close()
        engine.dispose()
