"""The dataflow's config publisher (``sinks.actuator.redis_publisher``) on the real Redis.

A canary the actuator starts is published on the app's channel as the wire config (what
``WatchConfig`` and the REST cache of every other process hear); a change that leaves the
config alone publishes nothing; an unreachable Redis loses the message, not the change, and
never raises into the dataflow.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
import redis
from sqlalchemy import Engine

from core.app_config import AppConfig, TaskConfig
from core.decisions import Decision, ExpectedImpact, stable_id
from core.settings import Settings
from rollout.config_manager import ConfigManager, config_channel
from sinks.actuator import Actuator, PeriodWork, redis_publisher
from storage.database import create_db_engine
from storage.kafka import free_port

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(fresh_database: Callable[[], str]) -> Iterator[Engine]:
    engine = create_db_engine(fresh_database())
    yield engine
    engine.dispose()


def _seed(engine: Engine, app: str) -> ConfigManager:
    manager = ConfigManager(engine, clock=lambda: T0 - timedelta(hours=1))
    manager.update(app, {"classify": TaskConfig(model="big")}, author="alice", reason="initial")
    return manager


def _work(app: str, *proposals: Decision) -> PeriodWork:
    return PeriodWork(
        app=app,
        window_start=T0 - timedelta(minutes=1),
        window_end=T0,
        proposals=list(proposals),
        windows={"classify": []},
    )


def _model_selection(app: str) -> Decision:
    return Decision(
        id=stable_id("model_selection", app, "classify"),
        created_at=T0,
        app=app,
        task="classify",
        strategy="model_selection",
        action={"model": "small"},
        rationale="test",
        expected_impact=ExpectedImpact(cost_change_pct=-30.0),
        confidence=0.95,
    )


def _subscribed(client: redis.Redis, channel: str) -> redis.client.PubSub:
    pubsub: redis.client.PubSub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel)
    confirmation = pubsub.get_message(timeout=30)  # the subscription is live once confirmed
    assert confirmation is not None
    assert confirmation["type"] == "subscribe"
    return pubsub


def _next_message(pubsub: redis.client.PubSub, timeout: float) -> bytes | None:
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
    return None if message is None else bytes(message["data"])


def test_a_started_canary_is_published_on_the_apps_channel(engine: Engine, redis_url: str) -> None:
    app = f"shop-{uuid.uuid4().hex[:8]}"
    manager = _seed(engine, app)
    client = redis.Redis.from_url(redis_url)  # kept: the subscription lives on its pool
    pubsub = _subscribed(client, config_channel(app))
    try:
        actuator = Actuator(engine, Settings(), redis_publisher(redis_url))
        started = actuator.apply(_work(app, _model_selection(app)))
        assert len(started) == 1
        raw = _next_message(pubsub, timeout=30)
        assert raw is not None, "nothing was published"
        published = msgspec.json.decode(raw, type=AppConfig)
        active = manager.active(app).as_config()
        assert published == active  # exactly what the config manager serves
        assert published.version == 2
        canary = published.tasks["classify"].canary
        assert canary is not None
        assert canary.overrides["model"] == "small"
        # The same period again changes nothing: nothing more is published.
        actuator.apply(_work(app))
        assert _next_message(pubsub, timeout=1.0) is None
    finally:
        pubsub.close()
        client.close()


def test_an_unreachable_redis_loses_the_message_not_the_change(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    app = f"shop-{uuid.uuid4().hex[:8]}"
    manager = _seed(engine, app)
    publish = redis_publisher(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    actuator = Actuator(engine, Settings(), publish)
    with caplog.at_level(logging.WARNING, logger="sinks.actuator"):
        started = actuator.apply(_work(app, _model_selection(app)))
    assert len(started) == 1
    assert manager.active(app).version == 2  # the canary is stored; watchers re-read the DB
    assert any(f"could not publish config of {app}" in r.getMessage() for r in caplog.records)
