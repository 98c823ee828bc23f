"""Storage against the real PostgreSQL and Redis: migrations, upserts, API keys, cache, pub/sub."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from redis.asyncio import Redis
from sqlalchemy import inspect

from core.events import LlmCall
from core.stats import WindowKey
from operators.window_stats import summarize
from storage.api_keys import ApiKeyRepository
from storage.cache import RedisCache
from storage.database import create_db_engine, migrate
from storage.models import Base
from storage.windows import WindowRepository

pytestmark = pytest.mark.integration
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _window(count: int, latency: float) -> object:
    calls = [
        LlmCall(
            event_id=f"{i}",
            timestamp=T0 + timedelta(seconds=i),
            app="app",
            task="t",
            model="m",
            latency_ms=latency,
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.0,
        )
        for i in range(count)
    ]
    return summarize(
        "tumbling", T0, T0 + timedelta(minutes=1), WindowKey("app", "t", "m", "baseline"), calls
    )


def test_migration_creates_exactly_the_models_schema(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert {"window_stats", "api_keys", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_window_upsert_replaces_and_round_trips_aware_utc(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    migrate(engine)
    repo = WindowRepository(engine)
    first = _window(3, 10.0)
    repo.upsert([first])  # type: ignore[list-item]
    repo.upsert([_window(5, 20.0)])  # type: ignore[list-item]  # same key: a correction
    stored = list(repo.query(app="app", task="t"))
    assert len(stored) == 1
    assert stored[0].count == 5
    assert stored[0].latency_ms.p50 == 20.0
    assert stored[0].window_start == T0
    assert stored[0].window_start.tzinfo is not None
    assert repo.query(app="app", since=T0 + timedelta(minutes=1)) == []
    engine.dispose()


def test_api_keys_are_hashed_checked_and_bootstrapped(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    migrate(engine)
    keys = ApiKeyRepository(engine)
    key = keys.create("ci", "viewer")
    assert keys.role_of(key) == "viewer"
    assert keys.role_of(key + "x") is None
    with engine.connect() as conn:
        stored = [r[0] for r in conn.exec_driver_sql("SELECT key_hash FROM api_keys")]
    assert key not in stored
    assert all(len(h) == 64 for h in stored)
    keys.ensure("boot", "admin", "boot-key")
    keys.ensure("boot", "admin", "boot-key")
    assert keys.role_of("boot-key") == "admin"
    engine.dispose()


def test_redis_cache_values_expiry_and_pubsub(redis_url: str) -> None:
    async def scenario() -> list[bytes]:
        cache = RedisCache(redis_url)
        await cache.ping()
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"
        await cache.set("short", b"x", ttl_s=0.2)
        await asyncio.sleep(0.4)
        assert await cache.get("short") is None
        received: list[bytes] = []
        channel = f"config-{uuid.uuid4().hex[:8]}"  # the Redis server is shared
        stream = cache.subscribe(channel)

        async def listen() -> None:
            async for message in stream:
                received.append(message)
                if len(received) == 2:
                    return

        task = asyncio.create_task(listen())
        probe = Redis.from_url(redis_url)
        while dict(await probe.pubsub_numsub(channel)).get(channel.encode(), 0) < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # until the subscription reached Redis
        await probe.aclose()
        await cache.publish(channel, b"one")
        await cache.publish(channel, b"two")
        await asyncio.wait_for(task, 5)
        await cache.close()
        return received

    assert asyncio.run(scenario()) == [b"one", b"two"]
