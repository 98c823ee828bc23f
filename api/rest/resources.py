"""What the REST app opens in its lifespan and hands to controllers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar
from sqlalchemy.exc import SQLAlchemyError

from api.service import DependencyCheck, HealthService, MetricsQueries
from core.settings import Settings
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
    """Shared, thread-safe handles for request handlers."""

    metrics: MetricsQueries
    api_keys: ApiKeyRepository
    health: HealthService
    cache: Cache


def resources_of(app: Litestar) -> Resources:
    """The resources the lifespan put on ``app.state``."""
    found = app.state.resources
    assert isinstance(found, Resources)
    return found


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the database, cache and health probes; create the bootstrap admin key."""
    settings: Settings = app.state.settings
    engine = create_db_engine(settings.storage.resolved_database_url)
    cache = open_cache(settings.storage.redis_url)
    keys = ApiKeyRepository(engine)
    if settings.api.bootstrap_admin_key:
        try:  # best effort: the key also works from settings alone (see api.rest.auth)
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
    app.state.resources = Resources(
        metrics=MetricsQueries(
            WindowRepository(engine), StrayRepository(engine), InsightRepository(engine)
        ),
        api_keys=keys,
        health=HealthService(checks),
        cache=cache,
    )
    try:
        yield
    finally:
        await cache.close()
        engine.dispose()
