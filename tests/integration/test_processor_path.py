"""The walking skeleton on real services: tansu Kafka → Bytewax flow → PostgreSQL → REST/HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx
import pytest
from bytewax.testing import run_main
from confluent_kafka import Consumer, TopicPartition

from collector.producer import TelemetryProducer
from core.settings import ApiSettings, Settings
from flows.pipeline import build_flow
from orchestrator.services import RestService
from storage.database import create_db_engine
from storage.kafka import free_port
from storage.windows import WindowRepository
from tests.telemetry_samples import expected_windows, make_sample

pytestmark = pytest.mark.integration

ADMIN_KEY = "integration-admin-key"


def _read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "assert", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, eof = [], 0
    while eof < partitions:
        msg = consumer.poll(10.0)
        assert msg is not None, f"timed out reading {topic}"
        if msg.error():
            eof += 1
            continue
        out.append((msg.value(), dict(msg.headers() or [])))
    consumer.close()
    return out


@pytest.fixture
def settings(flow_settings: Settings) -> Settings:
    return dataclasses.replace(
        flow_settings, api=ApiSettings(port=free_port(), bootstrap_admin_key=ADMIN_KEY)
    )


def test_events_become_exact_windows_in_postgres_dlq_and_rest(settings: Settings) -> None:
    sample = make_sample()
    report = TelemetryProducer(
        settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic
    ).send_all(sample.records())
    assert (report.delivered, report.failed) == (len(sample.records()), 0)

    run_main(build_flow(settings))  # kafka.tail=false: returns at the end of the topic

    # Window rows in PostgreSQL: exactly the expected set, each with the exact stats.
    expected = expected_windows(sample)
    engine = create_db_engine(settings.storage.database_url)
    stored = {}
    for app in ("support", "search"):
        for w in WindowRepository(engine).query(app=app, kind="tumbling"):
            stored[(w.app, w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"))] = w
    engine.dispose()
    assert set(stored) == set(expected)
    for key, want in expected.items():
        got = stored[key]
        assert (got.task, got.model, got.variant, got.kind) == (
            want["task"],
            want["model"],
            "baseline",
            "tumbling",
        )
        assert (got.count, got.ok_count, got.error_count) == (
            want["count"],
            want["ok_count"],
            want["error_count"],
        )
        assert got.latency_ms.p50 == pytest.approx(want["p50"])
        assert got.latency_ms.p95 == pytest.approx(want["p95"])
        assert got.latency_ms.p99 == pytest.approx(want["p99"])
        assert got.latency_ms.max == want["max"]
        assert (got.input_tokens, got.output_tokens) == (
            want["input_tokens"],
            want["output_tokens"],
        )
        assert got.cost_usd == pytest.approx(want["cost_usd"], rel=1e-9)
        assert (got.window_end - got.window_start).total_seconds() == 60
    assert sum(w.count for w in stored.values()) == 200  # 20 duplicates dropped

    # Dead letters: exactly the malformed records, bytes unchanged, each with its reason.
    dead = _read_all(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, 1)
    assert sorted(v for v, _ in dead) == sorted(sample.malformed)
    for value, headers in dead:
        assert sample.malformed[value] in headers["reason"].decode()
        assert headers["source.topic"].decode() == settings.kafka.telemetry_topic

    # The REST answer over real HTTP.
    async def fetch() -> tuple[int, dict[str, object], int]:
        rest = RestService(settings)
        await rest.start()
        try:
            base = f"http://127.0.0.1:{settings.api.port}"
            async with httpx.AsyncClient(base_url=base) as client:
                ok = await client.get(
                    "/api/v1/metrics/summary",
                    params={"app": "support", "task": "classify"},
                    headers={"x-api-key": ADMIN_KEY},
                )
                anonymous = await client.get("/api/v1/metrics/summary", params={"app": "support"})
            return ok.status_code, ok.json(), anonymous.status_code
        finally:
            await rest.stop()

    status, body, anonymous_status = asyncio.run(fetch())
    assert status == 200
    assert anonymous_status == 401
    support = {k: v for k, v in expected.items() if k[0] == "support"}
    assert body["totals"]["count"] == sum(v["count"] for v in support.values()) == 120
    assert body["totals"]["error_count"] == 12
    assert body["strays"] == {"late": 0, "unmatched_feedback": 0}
    starts = [w["window_start"] for w in body["windows"]]
    assert starts == sorted(k[1] for k in support)
    first = body["windows"][0]
    want = support[("support", first["window_start"])]
    assert first["latency_ms"]["p95"] == pytest.approx(want["p95"])
    assert first["count"] == want["count"]
    assert json.dumps(body)  # plain JSON all the way down


def test_replaying_the_topic_does_not_double_windows(settings: Settings) -> None:
    sample = make_sample(seed=11)
    TelemetryProducer(settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic).send_all(
        sample.records()
    )
    run_main(build_flow(settings))
    run_main(build_flow(dataclasses.replace(settings)))  # a second full replay
    engine = create_db_engine(settings.storage.database_url)
    windows = list(WindowRepository(engine).query(app="support", kind="tumbling")) + list(
        WindowRepository(engine).query(app="search", kind="tumbling")
    )
    engine.dispose()
    assert len(windows) == len(expected_windows(sample))
    assert sum(w.count for w in windows) == 200


def test_analyzers_run_from_kafka_to_insights_in_postgres(settings: Settings) -> None:
    from storage.insights import InsightRepository
    from tests.analyzer_doubles import BusyTaskAnalyzer

    sample = make_sample(seed=13)
    TelemetryProducer(settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic).send_all(
        sample.records()
    )
    for _ in range(2):  # the replay stores nothing twice
        run_main(build_flow(settings, analyzers=[BusyTaskAnalyzer(limit=50)]))
    engine = create_db_engine(settings.storage.database_url)
    repo = InsightRepository(engine)
    stored = [i for app in ("support", "search") for i in repo.list(app=app)]
    engine.dispose()
    expected = sorted(
        (app, start, float(w["count"]))
        for (app, start), w in expected_windows(sample).items()
        if w["count"] > 50
    )
    got = sorted((i.app, i.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"), i.value) for i in stored)
    assert got == expected
    assert all(i.evidence == {"calls": i.value, "limit": 50.0} for i in stored)


def test_an_event_from_a_broken_clock_goes_to_the_dlq_and_does_not_poison_its_app(
    settings: Settings,
) -> None:
    import json as _json
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)

    def call(event_id: str, at: datetime) -> bytes:
        return _json.dumps(
            {
                "event_id": event_id,
                "timestamp": at.isoformat(),
                "app": "clock",
                "model": "m",
                "latency_ms": 5,
                "input_tokens": 1,
                "output_tokens": 1,
                "cost_usd": 0.0,
            }
        ).encode()

    broken = call("from-2099", datetime(2099, 1, 1, tzinfo=UTC))
    records = [call("a", now), broken, call("b", now + timedelta(seconds=5))]
    TelemetryProducer(settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic).send_all(
        records
    )
    run_main(build_flow(settings, analyzers=[]))
    dead = _read_all(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, 1)
    assert [v for v, _ in dead] == [broken]
    assert "clock skew" in dead[0][1]["reason"].decode()
    engine = create_db_engine(settings.storage.database_url)
    windows = list(WindowRepository(engine).query(app="clock", kind="tumbling"))
    engine.dispose()
    assert [w.count for w in windows] == [2]  # both real calls counted, none made late
