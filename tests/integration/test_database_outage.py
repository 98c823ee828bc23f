"""The processor outlives its database: stopped mid-run, it waits, resumes and loses nothing.

Reference: the same topic run to its end into the session's PostgreSQL. Then the real processor
(``python -m bytewax.run flows.main``, as the orchestrator spawns it) writes into a throwaway
server of this test's own. The test holds a row lock on the last window the run will write, so
the run is caught mid-write, deterministically; then the server is stopped (``-m fast``: every
session ends, as in an outage), the processor must wait (not exit) and say so, the server is
started again, and the run must end with exactly the reference's windows and strays, each once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from collector.producer import TelemetryProducer
from core.settings import KafkaSettings, ProcessorSettings, Settings, StorageSettings
from orchestrator.services.processor import bytewax_env
from orchestrator.services.processor_probe import probe_endpoints
from storage.database import create_db_engine, migrate
from storage.kafka import ensure_topics, free_port
from storage.windows import WindowRepository
from tests import processor_runs
from tests.pg_cluster import PgCluster

pytestmark = pytest.mark.integration

EVENTS = 6_000
WAIT_S = 240.0  # the longest any condition may take on a loaded machine (not a timing claim)


def _until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)


class _Lines:
    """Collects a child's stderr lines in a thread (and echoes them for the test log)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        stream = proc.stderr
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            self.lines.append(raw.decode("utf-8", "replace").rstrip())

    def seen(self, needle: str) -> bool:
        return any(needle in line for line in self.lines)


def _settings(bootstrap: str, topic: str, database_url: str, tmp: Path) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, telemetry_topic=topic, dlq_topic=topic + ".dlq", tail=False
        ),
        storage=StorageSettings(database_url=database_url, data_dir=str(tmp)),
        processor=dataclasses.replace(
            ProcessorSettings(),
            recovery_dir=str(tmp / "recovery"),
            database_retry_max_delay=ProcessorSettings().snapshot_interval / 10,  # 1 s
        ),
    )


def test_processor_waits_for_a_stopped_database_and_resumes_with_every_window_once(
    kafka_bootstrap: str, postgres_url: str, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    topic = f"llm.telemetry.outage.{tmp_path.name[-12:]}.{time.monotonic_ns()}"
    ensure_topics(kafka_bootstrap, {topic: 3, topic + ".dlq": 1})
    sent = TelemetryProducer(kafka_bootstrap, topic).send_all(
        processor_runs.stream(EVENTS, per_second=20)
    )
    assert sent.failed == 0

    processor_runs.emptied_database(postgres_url, "window_stats", "stray_events", "insights")
    processor_runs.run(_settings(kafka_bootstrap, topic, postgres_url, tmp_path / "ref"))
    want_windows, want_strays = processor_runs.table_rows(postgres_url)
    assert len(want_windows) > 50
    assert want_strays

    # The throwaway database: migrated, holding the run's last window, locked by the test.
    url = pg_cluster.url
    engine = create_db_engine(url)
    migrate(engine)
    ref = create_db_engine(postgres_url)
    last = max(
        (w for app in {r[2] for r in want_windows} for w in WindowRepository(ref).query(app=app)),
        key=lambda w: (w.window_end, w.kind, w.app, w.task, w.model),
    )
    ref.dispose()
    WindowRepository(engine).upsert([last])
    engine.dispose()
    locker = create_engine(url).connect()
    locker.execute(
        text(
            "SELECT id FROM window_stats WHERE kind = :k AND window_start = :s AND app = :a "
            "AND task = :t AND model = :m AND variant = :v FOR UPDATE"
        ),
        {"k": last.kind, "s": last.window_start, "a": last.app, "t": last.task,
         "m": last.model, "v": last.variant},
    )  # fmt: skip

    settings = _settings(kafka_bootstrap, topic, url, tmp_path / "run")
    (tmp_path / "run").mkdir()
    port = free_port()  # the process's metrics API, as the orchestrator enables it
    (proc,) = processor_runs.start(settings, bytewax_env(settings, port), stderr=subprocess.PIPE)
    endpoint = f"127.0.0.1:{port}"
    log = _Lines(proc)
    try:
        probe = create_engine(url)

        def blocked() -> bool:
            with probe.connect() as conn:
                return bool(
                    conn.execute(
                        text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    ).scalar_one()
                )

        _until("the processor's write waits on the locked window", blocked)
        with probe.connect() as conn:
            written = conn.execute(text("SELECT count(*) FROM window_stats")).scalar_one()
        probe.dispose()
        assert 1 < written < len(want_windows)  # mid-run: some windows in, not all

        pg_cluster.stop()  # the outage: the lock holder and the blocked write both end
        _until(
            "the processor waits for the database, or exits",
            lambda: log.seen("waiting_for_database") or proc.poll() is not None,
        )
        assert proc.poll() is None, "the processor exited instead of waiting:\n" + "\n".join(
            log.lines
        )
        # What the orchestrator's health check reads: alive, waiting (the windows sink's gauge).
        probe_state = asyncio.run(probe_endpoints([endpoint]))[endpoint]
        assert probe_state == "waiting for the database (windows)"
        pg_cluster.start()
        assert proc.wait(WAIT_S) == 0, "\n".join(log.lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        locker.invalidate()

    assert log.seen("database_back")
    got_windows, got_strays = processor_runs.table_rows(url)
    assert got_windows == want_windows  # every window, its final content, once (keys are unique)
    assert got_strays == want_strays
    check = create_engine(url)
    with check.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM window_stats")).scalar_one()
    check.dispose()
    assert rows == len(want_windows)
