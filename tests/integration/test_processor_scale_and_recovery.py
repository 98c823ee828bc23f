"""The real processor over a 4-partition topic: scale-out and crash recovery give the same rows.

Reference: one process, one worker, run to the end of the topic. Then the same topic with two
workers, with two processes (-i/-a), and with a run killed by SIGKILL mid-topic and resumed from
its recovery store: each must produce exactly the reference's window and stray rows.
"""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from collector.producer import TelemetryProducer
from core.settings import KafkaSettings, ProcessorSettings, Settings, StorageSettings
from storage.kafka import ensure_topics
from tests import processor_runs

pytestmark = pytest.mark.integration

EVENTS = 250_000


@pytest.fixture(scope="module")
def topic(kafka_bootstrap: str) -> str:
    name = f"llm.telemetry.scale.{int(time.time())}"
    ensure_topics(kafka_bootstrap, {name: 4, name + ".dlq": 1})
    report = TelemetryProducer(kafka_bootstrap, name).send_all(processor_runs.stream(EVENTS))
    assert report.failed == 0
    return name


def _settings(
    bootstrap: str, topic: str, database_url: str, tmp: Path, **processor: object
) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, telemetry_topic=topic, dlq_topic=topic + ".dlq", tail=False
        ),
        storage=StorageSettings(database_url=database_url, data_dir=str(tmp)),
        processor=dataclasses.replace(ProcessorSettings(), **processor),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def reference(
    kafka_bootstrap: str, topic: str, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    tmp = tmp_path_factory.mktemp("reference")
    processor_runs.emptied_database(postgres_url, "window_stats", "stray_events")
    processor_runs.run(_settings(kafka_bootstrap, topic, postgres_url, tmp, recovery=False))
    windows, strays = processor_runs.table_rows(postgres_url)
    kinds = {row[0] for row in windows}
    assert kinds == {"tumbling", "sliding"}
    assert sum(r[6] for r in windows if r[0] == "tumbling") == EVENTS  # the duplicate is dropped
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        corrected = conn.execute(text("SELECT count(*) FROM window_stats WHERE revision > 0"))
        assert corrected.scalar_one() > 0, "late calls and feedback must have corrected windows"
    engine.dispose()
    assert {s[0] for s in strays} == {"late"}
    assert all(s[5] for s in strays)  # every late call is reflected in its window
    return windows, strays


@pytest.mark.parametrize(("workers", "processes"), [(2, 1), (1, 2)])
def test_scaled_out_runs_match_one_worker(
    kafka_bootstrap: str,
    topic: str,
    reference: tuple[list[object], list[object]],
    fresh_database: Callable[[], str],
    tmp_path: Path,
    workers: int,
    processes: int,
) -> None:
    url = fresh_database()
    processor_runs.run(
        _settings(kafka_bootstrap, topic, url, tmp_path, workers=workers, processes=processes)
    )
    assert processor_runs.table_rows(url) == reference


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=["SIGKILL", "SIGINT", "SIGTERM"]
)
def test_stopped_mid_topic_then_resumed_matches_uninterrupted_run(
    kafka_bootstrap: str,
    topic: str,
    reference: tuple[list[object], list[object]],
    fresh_database: Callable[[], str],
    tmp_path: Path,
    sig: signal.Signals,
) -> None:
    """SIGKILL: a crash. SIGINT/SIGTERM: a graceful stop (exit 0, no traceback) that keeps the
    open windows in the snapshot: a stop that flushed them would close windows early, and the
    calls after the restart would come back as late strays the reference does not have."""
    from datetime import timedelta

    url = fresh_database()
    settings = _settings(
        kafka_bootstrap, topic, url, tmp_path, snapshot_interval=timedelta(seconds=1)
    )
    [proc] = processor_runs.start(settings, stderr=subprocess.PIPE)
    engine = create_engine(url)
    store = tmp_path / "recovery" / "part-0.sqlite3"
    deadline = time.monotonic() + 120
    written = snapshots = 0
    while time.monotonic() < deadline and proc.poll() is None:
        with engine.connect() as conn:
            written = conn.execute(text("SELECT count(*) FROM window_stats")).scalar_one()
        with sqlite3.connect(store) as db:
            snapshots = db.execute("SELECT count(*) FROM snaps").fetchone()[0]
        if written and snapshots:
            break
        time.sleep(0.05)
    engine.dispose()
    assert proc.poll() is None, "the processor finished before it could be killed: raise EVENTS"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 0, stderr.decode()[-2000:]
        assert b"Traceback" not in stderr, stderr.decode()[-2000:]
    assert 0 < written < len(reference[0])
    assert snapshots > 0

    processor_runs.run(settings)  # resumes from the recovery store
    assert processor_runs.table_rows(url) == reference


def _snapshots(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return int(db.execute("SELECT count(*) FROM snaps").fetchone()[0])


def test_sigint_at_random_moments_of_consume_always_stops_cleanly_and_resumes_exactly(
    kafka_bootstrap: str,
    topic: str,
    reference: tuple[list[object], list[object]],
    fresh_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    """The SIGINT race: a graceful stop lands anywhere in a poll (the batch source's consume and
    extraction included) and must neither crash (exit 0, no traceback) nor lose or double a
    record: stopped again and again at random moments, the run ends with the reference's rows."""
    import random
    from datetime import timedelta

    rng = random.Random(16)
    url = fresh_database()
    settings = _settings(
        kafka_bootstrap, topic, url, tmp_path, snapshot_interval=timedelta(milliseconds=300)
    )
    store = tmp_path / "recovery" / "part-0.sqlite3"
    stopped = 0
    for _ in range(6):
        [proc] = processor_runs.start(settings, stderr=subprocess.PIPE)
        before = _snapshots(store)
        deadline = time.monotonic() + 120
        while proc.poll() is None and _snapshots(store) <= before:  # it is consuming now
            assert time.monotonic() < deadline, "the processor never snapshotted"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))  # anywhere in the polls that follow
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            stopped += 1
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr.decode()[-3000:]
        assert b"Traceback" not in stderr, stderr.decode()[-3000:]
    assert stopped >= 3, "too few stops landed mid-topic: raise EVENTS or lower the delays"

    processor_runs.run(settings)  # to the end of the topic
    assert processor_runs.table_rows(url) == reference
