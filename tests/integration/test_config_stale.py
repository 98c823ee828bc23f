"""Config reads survive the database being away: the last known config, marked stale.

A throwaway PostgreSQL cluster (stopped and started by the test) under the service layer, REST
(Hypercorn) and gRPC; Redis is the real one. Read, stop the cluster, read again (the last known
config with ``x-llmopt-config-stale``/``x-llmopt-config-age-s``), start it, read again (fresh).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from redis import Redis

from api.rest.app import create_app
from api.rest.resources import resources_of
from api.service import ConfigService
from api.service.config_known import AGE_HEADER, STALE_HEADER, known_key
from api.service.configs import cache_key
from core.app_config import decode_tasks
from core.errors import StorageUnavailableError
from proto.llmopt.v1 import config_pb2
from rollout.config_manager import ConfigManager
from storage.cache import RedisCache
from storage.database import create_db_engine, migrate
from tests.pg_cluster import PgCluster
from tests.unit.api.grpc.support import client, fast_grpc, grpc_server, key
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings, role_keys, running_server

pytestmark = pytest.mark.integration

TASKS = {"classify": {"model": "gpt-4o-mini"}}


@pytest.fixture
def cluster(pg_cluster: PgCluster) -> PgCluster:
    """A migrated throwaway cluster this test may stop and start."""
    engine = create_db_engine(pg_cluster.url)
    migrate(engine)
    engine.dispose()
    return pg_cluster


def _until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Wait for ``condition()`` to return something truthy (a condition, not a duration)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_service_serves_the_last_known_config_with_its_age(
    cluster: PgCluster, redis_url: str
) -> None:
    app = f"stale-{uuid.uuid4().hex[:8]}"
    now = [1_000.0]
    engine = create_db_engine(cluster.url)
    cache = RedisCache(redis_url)
    ConfigManager(engine).update(app, decode_tasks(TASKS), author="test", reason="first")
    service = ConfigService(engine, cache, ttl_s=0.001, clock=lambda: now[0])

    async def scenario() -> None:
        fresh = await service.read(app)
        assert not fresh.stale
        assert fresh.headers() == {}
        cluster.stop()
        now[0] += 75.4
        await asyncio.sleep(0.01)  # the 1 ms cache and local slot expire
        stale = await service.read(app)
        assert (stale.raw, stale.stale, stale.age_s) == (fresh.raw, True, pytest.approx(75.4))
        assert stale.headers() == {STALE_HEADER: "true", AGE_HEADER: "75"}
        with pytest.raises(StorageUnavailableError, match="no config of app 'never' is known"):
            await service.read("never")
        # A new replica knows nothing in memory: the shared cache's last known config serves.
        replica = ConfigService(engine, cache, ttl_s=0.001, clock=lambda: now[0] + 5)
        from_cache = await replica.read(app)
        assert (from_cache.raw, from_cache.stale, from_cache.age_s) == (
            fresh.raw,
            True,
            pytest.approx(80.4),
        )
        cluster.start()
        deadline = time.monotonic() + 30  # the local slot keeps a stale answer for 1 s
        again = await service.read(app)
        while again.stale and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            again = await service.read(app)
        assert (again.raw, again.stale) == (fresh.raw, False)
        await cache.close()

    try:
        asyncio.run(scenario())
    finally:
        engine.dispose()


def test_rest_and_grpc_serve_stale_configs_while_postgres_is_stopped(
    cluster: PgCluster, redis_url: str
) -> None:
    app = f"stale-{uuid.uuid4().hex[:8]}"
    settings = fast_grpc(rest_settings(cluster.url, redis_url))
    viewer = role_keys(cluster.url)["viewer"]
    redis = Redis.from_url(redis_url)
    rest = create_app(settings)
    with (
        running_server(rest) as base,
        grpc_server(settings) as running,
        client(running.target) as stubs,
        httpx.Client(base_url=base, headers={"x-api-key": viewer}) as http,
    ):
        put = httpx.put(
            f"{base}/api/v1/config/{app}",
            json={"tasks": TASKS, "reason": "first"},
            headers={"x-api-key": ADMIN_KEY},
        )
        assert put.status_code == 200, put.text
        fresh = http.get(f"/api/v1/config/{app}")
        assert fresh.status_code == 200
        assert STALE_HEADER not in fresh.headers
        got, call = stubs.config.GetConfig.with_call(
            config_pb2.GetConfigRequest(app=app), metadata=key(viewer)
        )
        assert got.version == fresh.json()["version"]
        assert STALE_HEADER not in dict(call.initial_metadata())

        cluster.stop()
        redis.delete(cache_key(app))  # the shared cache entry expired meanwhile
        resources_of(rest).auth.forget_keys()  # and the key must be checked again

        def stale_read() -> httpx.Response | None:
            answer = http.get(f"/api/v1/config/{app}")
            return answer if answer.headers.get(STALE_HEADER) == "true" else None

        stale = _until(stale_read, "a stale REST answer")
        assert stale.status_code == 200
        assert stale.json() == fresh.json()
        assert int(stale.headers[AGE_HEADER]) >= 0

        def stale_grpc() -> tuple[Any, dict[str, Any]] | None:
            # the gRPC server is another replica: its own memory slot may still be fresh
            got, call = stubs.config.GetConfig.with_call(
                config_pb2.GetConfigRequest(app=app), metadata=key(viewer)
            )
            metadata = dict(call.initial_metadata())
            return (got, metadata) if metadata.get(STALE_HEADER) == "true" else None

        got, metadata = _until(stale_grpc, "a stale gRPC answer")
        assert got.version == fresh.json()["version"]
        assert int(metadata[AGE_HEADER]) >= 0
        watch = stubs.config.WatchConfig(
            config_pb2.WatchConfigRequest(app=app), metadata=key(viewer), timeout=10
        )
        first = next(watch)
        assert first.version == fresh.json()["version"]
        assert dict(watch.initial_metadata())[STALE_HEADER] == "true"
        watch.cancel()
        unknown = http.get("/api/v1/config/never-known")
        assert unknown.status_code == 503
        with pytest.raises(grpc.RpcError) as err:
            stubs.config.GetConfig(config_pb2.GetConfigRequest(app="never"), metadata=key(viewer))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        cluster.start()
        back = _until(
            lambda: (
                (r := http.get(f"/api/v1/config/{app}")).status_code == 200
                and STALE_HEADER not in r.headers
                and r
            ),
            "a fresh REST answer after the restart",
        )
        assert back.json() == fresh.json()
    redis.delete(cache_key(app), known_key(app))
    redis.close()
