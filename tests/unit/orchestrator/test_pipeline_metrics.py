"""Pipeline metrics read from a real database, the tansu broker and a Bytewax recovery store;
every metrics endpoint of the orchestrator passes ``promtool check metrics``."""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bytewax.recovery import init_db_dir
from confluent_kafka import Producer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from core.settings import BudgetSettings, KafkaSettings, Settings, StorageSettings
from orchestrator.metrics import create_registry
from orchestrator.pipeline_metrics import (
    PIPELINE_METRICS,
    PipelineCollector,
    PipelineSampler,
    recovered_offsets,
)
from storage.database import create_db_engine, migrate
from storage.models import DeploymentRow, StrayEventRow, WindowRow

from .fakes import FakeService, make_manager

pytestmark = pytest.mark.integration

PROMTOOL = Path(__file__).parents[3] / ".tools" / "bin" / "promtool"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on ``text`` (installed by scripts/install-promtool.sh)."""
    if not PROMTOOL.exists():
        pytest.fail("promtool is missing: run `bash scripts/install-promtool.sh` (make test does)")
    return subprocess.run(
        [str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )


def _window(
    app: str, model: str, start: datetime, count: int, cost: float, p95: float
) -> WindowRow:
    values: dict[str, Any] = {
        "kind": "tumbling", "window_start": start, "window_end": start + timedelta(minutes=1),
        "app": app, "task": "t", "model": model, "variant": "baseline", "count": count,
        "ok_count": count - 1, "error_count": 1, "errors_by_type": {"timeout": 1},
        "latency_p50": p95 / 2, "latency_p90": p95, "latency_p95": p95, "latency_p99": p95 * 2,
        "latency_max": p95 * 3, "input_tokens": 1, "output_tokens": 1, "cache_read_tokens": 0,
        "cost_usd": cost, "quality_count": 0, "distinct_prompts": 1, "repeat_ratio": 0.0,
        "rate_per_s": 1.0, "peak_rate_per_s": 1.0, "first_event_at": start,
        "last_event_at": start, "updated_at": start,
    }  # fmt: skip
    return WindowRow(**values)


def _position(offset: int, resets: int, reread: int) -> object:
    return {"offset": offset, "mark": None, "partitions": 3, "resets": resets, "reread": reread}


def _recovery_store(path: Path, topic: str) -> None:
    path.mkdir()
    init_db_dir(path, 1)  # type: ignore[no-untyped-call]
    with sqlite3.connect(path / "part-0.sqlite3") as db:
        rows = [
            ("flow.telemetry", f"0-{topic}", 1, pickle.dumps(2)),
            ("flow.telemetry", f"0-{topic}", 2, pickle.dumps(4)),  # the latest snapshot wins
            ("flow.telemetry", f"1-{topic}", 2, pickle.dumps(-2)),  # OFFSET_BEGINNING: 0
            # today's snapshots: a dict (flows.partition_position), here after one topic reset
            ("flow.telemetry", f"2-{topic}", 2, pickle.dumps(_position(0, resets=1, reread=3))),
            ("flow.windows", "app-a", 2, pickle.dumps({"state": 1})),
        ]
        db.executemany(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)",
            rows,
        )


def test_sampler_reads_database_kafka_and_recovery_store(
    tmp_path: Path, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        session.add_all(
            [
                _window("a", "m1", T0, 10, 0.5, 200.0),
                _window("a", "m1", T0 + timedelta(minutes=1), 5, 0.25, 400.0),
                _window("b", "m2", T0, 3, 1.0, 100.0),
                StrayEventRow(
                    kind="late", event_id="e1", app="a", task="t", event_time=T0, watermark=T0,
                    in_window=False, detail="", recorded_at=T0,
                ),
            ]
        )  # fmt: skip
        session.commit()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for partition, n in ((0, 5), (1, 2)):
        for i in range(n):
            producer.produce(topics["telemetry"], value=b"{}", key=str(i), partition=partition)
            producer.flush(15)  # one record per batch: tansu's watermarks count batches
    producer.produce(topics["dlq"], value=b"bad", partition=0)
    assert producer.flush(15) == 0
    _recovery_store(tmp_path / "recovery", topics["telemetry"])
    assert recovered_offsets(tmp_path / "recovery", topics["telemetry"]) == {0: 4, 1: 0, 2: 0}

    settings = Settings(
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap,
            telemetry_topic=topics["telemetry"],
            dlq_topic=topics["dlq"],
        ),
        storage=StorageSettings(data_dir=str(tmp_path)),
        budgets=BudgetSettings(daily_usd=50.0),
    )
    sampler = PipelineSampler(settings, engine, tmp_path / "recovery", clock=lambda: 100.0)
    sample = sampler.sample_once()
    assert sample.events_in == {("0",): 5.0, ("1",): 2.0, ("2",): 0.0}
    assert sample.dlq == {("0",): 1.0}
    assert sample.lag == {("0",): 1.0, ("1",): 2.0, ("2",): 0.0}
    assert sampler.total_lag() == 3
    assert sample.resets == {("0",): 0.0, ("1",): 0.0, ("2",): 1.0}
    assert sample.reread == {("0",): 0.0, ("1",): 0.0, ("2",): 3.0}
    assert sample.windows == {("tumbling",): 3}
    assert sample.calls == {("a", "m1"): 15.0, ("b", "m2"): 3.0}
    assert sample.errors == {("a", "m1"): 2.0, ("b", "m2"): 1.0}
    assert sample.cost == {("a", "m1"): 0.75, ("b", "m2"): 1.0}
    assert sample.latency == {  # the latest window of each (app, model)
        ("a", "m1", "p50"): 0.2, ("a", "m1", "p95"): 0.4, ("a", "m1", "p99"): 0.8,
        ("b", "m2", "p50"): 0.05, ("b", "m2", "p95"): 0.1, ("b", "m2", "p99"): 0.2,
    }  # fmt: skip
    assert sample.strays == {("late",): 1}
    assert sampler.errors == {"database": 0, "kafka": 0, "recovery": 0}

    manager = make_manager([FakeService("storage", []), FakeService("rest", [], ("storage",))])
    registry = create_registry(manager, extra=[PipelineCollector(sampler, settings)])
    asyncio.run(manager.start_all())
    asyncio.run(manager.check_health_once())
    text = generate_latest(registry).decode()
    checked = promtool_check(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in (
        *PIPELINE_METRICS,
        "service_status",
        "service_restarts",
        "request_duration_seconds",
    ):
        assert name in families, name
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert values[("llmopt_pipeline_consumer_lag", (("partition", "1"),))] == 2.0
    assert values[("llmopt_pipeline_topic_resets_total", (("partition", "2"),))] == 1.0
    assert values[("llmopt_pipeline_topic_reread_records_total", (("partition", "2"),))] == 3.0
    assert values[("llmopt_pipeline_cost_usd_total", (("app", "a"), ("model", "m1")))] == 0.75
    assert values[("llmopt_budget_usd", (("period", "daily"),))] == 50.0
    assert values[("llmopt_pipeline_sample_age_seconds", ())] == 0.0
    count = ("request_duration_seconds_count", (("operation", "start"), ("service", "rest")))
    assert values[count] == 1.0
    engine.dispose()


def test_a_failing_source_is_counted_and_the_rest_still_sampled(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    migrate(engine)
    with Session(engine) as session:
        session.add(
            DeploymentRow(
                id="d1", decision_id="x", app="a", task="t", status="rolled_back", stage=1,
                weight=0.05, baseline_version=1, canary_version=2, started_at=T0,
                stage_started_at=T0, updated_at=T0, reason="",
            )
        )  # fmt: skip
        session.commit()
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    sampler = PipelineSampler(settings, engine, None)
    sample = sampler.sample_once()
    assert sample.rollbacks == 1.0
    assert sample.deployments == {("rolled_back",): 1}
    assert sampler.errors["kafka"] == 1
    assert sample.lag == {}
    text = generate_latest(
        create_registry(make_manager([]), extra=[PipelineCollector(sampler, settings)])
    ).decode()
    assert promtool_check(text).returncode == 0
    engine.dispose()
