"""A database that refuses an item's data: the item is quarantined, the rest of its batch stored."""

from __future__ import annotations

import pytest
from bytewax.testing import run_main
from confluent_kafka import Consumer, TopicPartition

from collector.producer import TelemetryProducer
from core.insights import Insight, WindowGroup, insight_id
from core.settings import Settings
from flows.pipeline import build_flow
from storage.database import create_db_engine
from storage.insights import InsightRepository
from tests.analyzer_doubles import BusyTaskAnalyzer
from tests.telemetry_samples import expected_windows, make_sample

pytestmark = pytest.mark.integration


class OverflowingAnalyzer:
    """A real analyzer whose message carries a NUL for one app (PostgreSQL text cannot hold it).

    (Non-finite evidence no longer serves: the storage layer writes it as null.)
    """

    name = "cost"

    def initial_state(self) -> None:
        return None

    def analyze(self, state: None, group: WindowGroup) -> tuple[None, list[Insight]]:
        if group.app != "search":
            return None, []
        start = group.window_start
        return None, [
            Insight(
                id=insight_id(group.app, "rank", self.name, "spend", start, "cost_usd"),
                app=group.app,
                task="rank",
                analyzer="cost",
                kind="spend",
                severity="info",
                window_start=start,
                window_end=group.window_end,
                metric="cost_usd",
                value=1.0,
                baseline=1.0,
                score=1.0,
                message="cost per call overflowed\x00",
                evidence={"per_call": 1.0},
            )
        ]


def _quarantined(bootstrap: str, topic: str) -> list[dict[str, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "assert", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    while True:
        msg = consumer.poll(10.0)
        assert msg is not None, f"timed out reading {topic}"
        if msg.error():
            break
        headers = dict(msg.headers() or [])
        if "stage" in headers:
            out.append(headers | {"value": msg.value()})
    consumer.close()
    return out


def test_an_insight_the_database_refuses_is_quarantined_and_the_others_are_stored(
    flow_settings: Settings,
) -> None:
    sample = make_sample(seed=17)
    TelemetryProducer(
        flow_settings.kafka.bootstrap_servers, flow_settings.kafka.telemetry_topic
    ).send_all(sample.records())
    run_main(build_flow(flow_settings, analyzers=[OverflowingAnalyzer(), BusyTaskAnalyzer(50)]))

    engine = create_db_engine(flow_settings.storage.database_url)
    repo = InsightRepository(engine)
    stored = [i for app in ("support", "search") for i in repo.list(app=app)]
    engine.dispose()
    expected = expected_windows(sample)
    busy = sorted((a, s) for (a, s), w in expected.items() if w["count"] > 50)
    assert (
        sorted((i.app, i.window_start.strftime("%Y-%m-%dT%H:%M:%SZ")) for i in stored) == busy
    )  # every insight the database takes, even those written with a refused one
    assert all(i.analyzer == "performance" for i in stored)

    dead = _quarantined(flow_settings.kafka.bootstrap_servers, flow_settings.kafka.dlq_topic)
    search = [s for (a, s) in expected if a == "search"]
    assert len(dead) == len(search)
    for d in dead:
        assert (d["stage"], d["app"]) == (b"insights", b"search")
        assert b"nul" in d["reason"].lower()
        assert b'"message":"cost per call overflowed' in d["value"]
