"""The simulator against the REST API: config read and seeded over HTTP, telemetry posted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from litestar.testing import TestClient

from api.rest.app import create_app
from core.app_config import TaskConfig
from core.decisions import Decision, ExpectedImpact
from core.settings import CanarySettings
from rollout.canary_controller import start_canary
from simulator import (
    SCENARIOS,
    Fleet,
    RestConfigSource,
    RestSink,
    Simulation,
    rollouts_from_rest,
)
from storage.database import create_db_engine, session_scope
from tests.unit.api.rest_support import ADMIN_KEY, migrated_database, rest_settings

pytestmark = pytest.mark.integration
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)


@pytest.fixture
def api(
    redis_url: str, kafka_bootstrap: str, topics: dict[str, str]
) -> Iterator[tuple[TestClient[Any], str]]:
    with migrated_database() as url:
        settings = rest_settings(url, redis_url, kafka_bootstrap=kafka_bootstrap, topics=topics)
        with TestClient(create_app(settings)) as client:
            yield client, url


def _topic_size(bootstrap: str, topic: str) -> int:
    """Records in the topic, read to the end (tansu's high watermarks count batches oddly)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "sim-test", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    count = ends = 0
    try:
        while ends < 3:
            msg = consumer.poll(10)
            assert msg is not None, "the topic did not reach its end"
            if msg.error() is not None:
                ends += 1
            else:
                count += 1
        return count
    finally:
        consumer.close()


def test_fleet_reads_seeds_and_follows_the_config_over_rest(
    api: tuple[TestClient[Any], str], kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    client, url = api
    source = RestConfigSource("", ADMIN_KEY, poll_interval=0.0, client=client)
    sink = RestSink("", ADMIN_KEY, batch=500, client=client)
    fleet = Fleet(SCENARIOS["cheaper-good"](), start=T0, seed=3)
    sim = Simulation(fleet, source, sink)
    assert source.config("shop") is None
    sim.seed_configs()
    seeded = source.config("shop")
    assert seeded is not None
    assert seeded.tasks == {"classify": TaskConfig(model="gpt-4o")}
    sim.seed_configs()  # an app with a config is left alone
    again = source.config("shop")
    assert again is not None
    assert again.version == seeded.version

    engine = create_db_engine(url)
    decision = Decision(
        id="d-sim",
        created_at=T0,
        app="shop",
        task="classify",
        strategy="model_selection",
        action={"model": "gpt-4o-mini", "provider": "openai"},
        rationale="cheaper",
        expected_impact=ExpectedImpact(cost_change_pct=-90.0),
        confidence=0.9,
    )
    with session_scope(engine) as s:
        start_canary(s, decision, settings=CanarySettings(stages=(0.25, 1.0)), now=T0)
    engine.dispose()

    client.headers["x-api-key"] = ADMIN_KEY  # rollouts_from_rest takes a ready client
    # The API caches configs for api.config_cache_ttl: wait until it serves the canary.
    for _ in range(100):
        found = source.config("shop")
        if found is not None and found.tasks["classify"].canary is not None:
            break
        time.sleep(0.1)
    sim.run_for(timedelta(minutes=2))
    canary = [m for m, n in fleet.ledgers[("shop", "classify")].by_model.items() if n]
    assert sorted(canary) == ["gpt-4o", "gpt-4o-mini"]
    ledger = fleet.ledgers[("shop", "classify")]
    assert ledger.canary_calls / ledger.calls == pytest.approx(0.25, abs=0.05)
    assert sink.delivered == sim.events
    assert (sink.rejected, sink.errors) == (0, [])
    deadline = time.monotonic() + 30  # 202 Accepted: the API delivers to Kafka behind it
    while _topic_size(kafka_bootstrap, topics["telemetry"]) < sim.events:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _topic_size(kafka_bootstrap, topics["telemetry"]) == sim.events

    pairs, decisions = rollouts_from_rest(client, ["shop"])
    assert [(dep.status, d.id) for dep, d in pairs] == [("running", "d-sim")]
    assert [d.status for d in decisions] == ["canary"]
