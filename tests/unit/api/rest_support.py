"""Helpers for REST tests: settings for a test app, keys per role, a real Hypercorn server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config

from core.settings import ApiSettings, KafkaSettings, Settings, StorageSettings, updated
from storage.api_keys import ROLES, ApiKeyRepository
from storage.database import create_db_engine
from storage.kafka import free_port

ADMIN_KEY = "integration-admin-key-0123456789"
JWT_SECRET = "a-test-secret-that-is-long-enough-0123456789"


def rest_settings(
    database_url: str,
    redis_url: str = "",
    *,
    kafka_bootstrap: str = "",
    topics: dict[str, str] | None = None,
    **api: Any,
) -> Settings:
    """Settings of a test app: a unique rate-limit prefix (Redis db 15 is shared).

    ``api`` are ``ApiSettings`` values, ``__`` reaching into a table (``rate_limit__burst``).
    """
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap)
    if topics:
        kafka = replace(kafka, telemetry_topic=topics["telemetry"], dlq_topic=topics["dlq"])
    defaults: dict[str, Any] = {
        "bootstrap_admin_key": ADMIN_KEY,
        "jwt_secret": JWT_SECRET,
        "rate_limit__prefix": f"llmopt:test:{uuid.uuid4().hex[:12]}",
        "rate_limit__per_s": 10_000.0,
        "rate_limit__burst": 10_000,
        "rate_limit__anonymous_per_s": 10_000.0,
        "rate_limit__anonymous_burst": 10_000,
    }
    defaults.update(api)
    return Settings(
        kafka=kafka,
        storage=StorageSettings(database_url=database_url, redis_url=redis_url),
        api=updated(ApiSettings(), **defaults),
    )


def role_keys(database_url: str) -> dict[str, str]:
    """One fresh API key per role (and the bootstrap admin key as ``admin``)."""
    engine = create_db_engine(database_url)
    keys = ApiKeyRepository(engine)
    out = {role: keys.create(f"{role}-test", role) for role in ROLES if role != "admin"}
    engine.dispose()
    out["admin"] = ADMIN_KEY
    return out


@contextmanager
def running_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with Hypercorn (HTTP/1.1 and h2c) in a thread; yields its base URL."""
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 2.0
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(base + "/health/live", timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        threading.Event().wait(0.05)
    else:
        raise RuntimeError("test server did not start")
    try:
        yield base
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@contextmanager
def migrated_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (for module-scoped fixtures), dropped after."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from storage.database import migrate
    from tests.conftest import PG_ADMIN_URL

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"llmopt_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
