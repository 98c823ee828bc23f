"""Scale-out equality past the windows: insights, decisions, rollouts, verdicts, config versions.

The input is a recorded closed loop: three simulated apps (two cheaper candidates as good as
their incumbent, one worse) served by the in-process optimizer, every call they made recorded,
canary-tagged calls included. That recording, on a 4-partition topic, is replayed by the real
processor to the end of the topic (``kafka.tail=false``) into fresh databases seeded with the
same first configs: one worker, two workers (``-w 2``) and two processes (``-i/-a``) must write
exactly the same windows, strays, insights, decisions, deployments, verdicts and config
versions (ids and wall-clock write times aside).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from collector.producer import TelemetryProducer
from core.settings import (
    CanarySettings,
    DecisionSettings,
    KafkaSettings,
    ProcessorSettings,
    Settings,
    StorageSettings,
)
from rollout.config_manager import ConfigManager
from simulator import (
    CallbackSink,
    Fleet,
    InProcessOptimizer,
    ListSink,
    ManagerConfigSource,
    ModelProfile,
    Scenario,
    Simulation,
    TaskProfile,
)
from storage.database import create_db_engine, migrate
from storage.kafka import ensure_topics
from tests import processor_runs

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
BIG, SMALL = "gpt-4o", "gpt-4o-mini"
DURATION = timedelta(minutes=25)


def _scenario() -> Scenario:
    def pair(app: str, small: ModelProfile, rate: float) -> TaskProfile:
        return TaskProfile(
            app=app,
            task="classify",
            model=BIG,
            models={BIG: ModelProfile(), SMALL: small},
            rate_per_s=rate,
        )

    return Scenario(
        "scale-decisions",
        (
            pair("shop", ModelProfile(latency_median_ms=450.0), 30.0),
            pair("mall", ModelProfile(quality_mean=0.75), 30.0),
            pair("desk", ModelProfile(latency_median_ms=450.0), 15.0),
        ),
        duration=DURATION,
        start=T0,
    )


def _decided(settings: Settings) -> Settings:
    return settings.with_overrides(
        canary=dataclasses.replace(CanarySettings(), min_stage_duration=timedelta(minutes=2)),
        decisions=dataclasses.replace(DecisionSettings(), candidates=(SMALL,)),
    )


def _seed(engine: Any) -> None:
    """The fleet's first configs, as the recorded run had them."""
    manager = ConfigManager(engine, clock=lambda: T0)
    Simulation(
        Fleet(_scenario(), start=T0), ManagerConfigSource(manager), ListSink()
    ).seed_configs()


@pytest.fixture(scope="module")
def topic(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The recorded closed loop on a fresh 4-partition topic."""
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('record') / 'loop.sqlite3'}")
    migrate(engine)
    optimizer = InProcessOptimizer(_decided(Settings()), engine)
    recorded: list[bytes] = []

    def take(events: list[bytes]) -> None:
        recorded.extend(events)
        optimizer.feed(events)

    clock = {"now": T0}
    sim = Simulation(
        Fleet(_scenario(), start=T0),
        ManagerConfigSource(ConfigManager(engine, clock=lambda: clock["now"])),
        CallbackSink(take),
    )
    sim.seed_configs()

    def tick(now: datetime) -> bool:
        clock["now"] = now
        return False

    sim.run_until(T0 + DURATION, stop=tick)
    optimizer.finish()
    engine.dispose()
    assert optimizer.counts.started >= 2  # canaries ran: the recording has canary-tagged calls
    name = f"llm.telemetry.scale-decisions.{int(time.time())}"
    ensure_topics(kafka_bootstrap, {name: 4, name + ".dlq": 1})
    report = TelemetryProducer(kafka_bootstrap, name).send_all(recorded)
    assert report.failed == 0, report.errors
    return name


def _settings(bootstrap: str, topic: str, url: str, tmp: Path, **processor: Any) -> Settings:
    return _decided(
        Settings(
            kafka=KafkaSettings(
                bootstrap_servers=bootstrap,
                telemetry_topic=topic,
                dlq_topic=topic + ".dlq",
                tail=False,
            ),
            storage=StorageSettings(database_url=url, data_dir=str(tmp)),
            processor=dataclasses.replace(ProcessorSettings(), recovery=False, **processor),
        )
    )


#: Each table's columns that a correct run determines (no ids of rows, no write times).
_COLUMNS = {
    "insights": "app, task, analyzer, kind, severity, window_start, window_end, metric, value, "
    "baseline, score, message, evidence",
    "decisions": "id, app, task, strategy, action, rationale, evidence, expected_impact, "
    "confidence, status, deployment_id, rollback_plan",
    "deployments": "id, decision_id, app, task, status, stage, weight, baseline_version, "
    "canary_version, started_at, stage_started_at, finished_at, reason",
    "verdicts": "deployment_id, stage, weight, outcome, window_start, window_end, checks, reason",
    "app_configs": "app, version, tasks, author, reason, decision_key, diff",
}
_ORDER = {
    "insights": "app, task, analyzer, window_start, metric, kind",
    "decisions": "id",
    "deployments": "id",
    "verdicts": "deployment_id, window_end, stage",
    "app_configs": "app, version",
}


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    windows, strays = processor_runs.table_rows(url)
    out: dict[str, list[tuple[Any, ...]]] = {"windows": windows, "strays": strays}
    engine = create_engine(url)
    with engine.connect() as conn:
        for table, columns in _COLUMNS.items():
            query = f"SELECT {columns} FROM {table} ORDER BY {_ORDER[table]}"
            out[table] = [tuple(r) for r in conn.execute(text(query))]
    engine.dispose()
    return out


def _run(
    bootstrap: str, topic: str, url: str, tmp: Path, **processor: Any
) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_db_engine(url)
    _seed(engine)
    engine.dispose()
    processor_runs.run(_settings(bootstrap, topic, url, tmp, **processor))
    return _rows(url)


@pytest.fixture(scope="module")
def reference(
    kafka_bootstrap: str, topic: str, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> dict[str, list[tuple[Any, ...]]]:
    processor_runs.emptied_database(
        postgres_url,
        "verdicts",
        "deployments",
        "decisions",
        "app_configs",
        "insights",
        "window_stats",
        "stray_events",
        "outbox",
        "audit_log",
    )
    rows = _run(kafka_bootstrap, topic, postgres_url, tmp_path_factory.mktemp("reference"))
    statuses = {d[9] for d in rows["decisions"]}
    assert len(rows["decisions"]) >= 2, rows["decisions"]
    assert "rolled_back" in statuses, statuses  # the worse candidate was judged
    assert len(rows["verdicts"]) >= 4
    assert len(rows["insights"]) > 0
    assert len(rows["app_configs"]) > 3 + 2  # seeds, then canary stages
    return rows


@pytest.mark.parametrize(("workers", "processes"), [(2, 1), (1, 2)])
def test_scaled_out_runs_decide_exactly_as_one_worker(
    kafka_bootstrap: str,
    topic: str,
    reference: dict[str, list[tuple[Any, ...]]],
    fresh_database: Callable[[], str],
    tmp_path: Path,
    workers: int,
    processes: int,
) -> None:
    got = _run(
        kafka_bootstrap, topic, fresh_database(), tmp_path, workers=workers, processes=processes
    )
    for table, rows in reference.items():
        assert got[table] == rows, (
            f"{table} differ with {workers} workers x {processes} processes: "
            f"{_summary(table, got[table])} vs one worker {_summary(table, rows)}"
        )


def _summary(table: str, rows: list[tuple[Any, ...]]) -> dict[str, int]:
    """Calls per (kind, app, variant) for windows; row counts otherwise (for failure messages)."""
    if table != "windows":
        return {table: len(rows)}
    out: dict[str, int] = {}
    for row in rows:
        key = f"{row[0]}/{row[2]}/{row[5]}"
        out[key] = out.get(key, 0) + int(row[6])
    return out
