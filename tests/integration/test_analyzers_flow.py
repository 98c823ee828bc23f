"""The five real analyzers inside the dataflow: tansu Kafka → Bytewax → insights in PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from bytewax.testing import run_main

from collector.producer import TelemetryProducer
from core.settings import Settings
from flows.pipeline import build_flow
from storage.database import create_db_engine

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
SLOW, QUIET = 25, 27  # the minute whose calls are slow, the minute with few calls


@pytest.fixture
def settings(flow_settings: Settings) -> Settings:
    return flow_settings


def _records() -> list[bytes]:
    out = []
    for minute in range(40):
        calls = 5 if minute == QUIET else 40
        for k in range(calls):
            latency = 3000.0 if minute == SLOW else 200.0 + (k % 7) * 10.0
            event = {
                "event_id": f"shop-{minute}-{k}",
                "timestamp": int((T0 + timedelta(minutes=minute, seconds=k)).timestamp() * 1000),
                "app": "shop",
                "task": "chat",
                "model": "flow-test-model",
                "latency_ms": latency,
                "input_tokens": 100,
                "output_tokens": 20,
                "cost_usd": 0.001,
            }
            out.append(json.dumps(event).encode())
    return out


def test_real_analyzers_store_insights_with_evidence_once(settings: Settings) -> None:
    from storage.insights import InsightRepository

    TelemetryProducer(settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic).send_all(
        _records()
    )
    for _ in range(2):  # the replay stores nothing twice
        run_main(build_flow(settings, strategies=[]))
    engine = create_db_engine(settings.storage.database_url)
    stored = InsightRepository(engine).list(app="shop")
    engine.dispose()
    got = {(i.analyzer, i.kind, i.severity, i.metric, i.window_start) for i in stored}
    slow, quiet = T0 + timedelta(minutes=SLOW), T0 + timedelta(minutes=QUIET)
    assert {
        ("performance", "latency_slo", "warning", "latency_ms.p95", slow),
        ("performance", "latency_regression", "critical", "latency_ms.p95", slow),
        ("anomaly", "anomaly_start", "critical", "latency_ms.p95", slow),
        ("performance", "throughput_drop", "warning", "calls", quiet),
    } <= got
    assert len(got) == len(stored)  # one row per finding after two runs
    drop = next(i for i in stored if i.kind == "throughput_drop")
    assert (drop.value, drop.baseline) == (5.0, 40.0)
    for i in stored:
        assert i.evidence["metric"] == i.metric
        assert i.evidence["value"] == i.value
        assert i.evidence["window_start"] == i.window_start.isoformat()
        assert "statistic" in i.evidence
