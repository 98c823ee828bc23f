"""The dataflow run by hand (``python -m bytewax.run flows.main``) needs nothing done first.

No orchestrator, no ``ensure_topics``, no migration: each test starts the dataflow alone on a
database nobody migrated (the embedded SQLite file, then a PostgreSQL database just created)
and topics nobody created. The dataflow creates the topics, migrates the schema and turns the
telemetry produced afterwards into windows. A 2-process cluster (``-i/-a``) starting at once on
a fresh PostgreSQL database migrates it once, and both processes run; several ``llmopt
migrate`` racing on fresh databases all succeed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from collector.producer import TelemetryProducer
from core.settings import KafkaSettings, ProcessorSettings, Settings, StorageSettings
from storage.database import create_db_engine, head_revision, schema_revision
from storage.kafka import free_port
from storage.migration_lock import MIGRATION_LOCK_KEY
from storage.models import WindowRow
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.integration
T = TypeVar("T")

START = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
SECONDS = 150  # events one per second: minutes 0 and 1 close (lateness 1 s), minute 2 stays open


@pytest.fixture
def unmigrated_database() -> Iterator[Callable[[], str]]:
    """A factory of empty PostgreSQL databases (nothing migrated), dropped after the test."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"llmopt_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _settings(bootstrap: str, tmp: Path, database_url: str = "") -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap,
            telemetry_topic=f"llm.telemetry.solo.{suffix}",
            dlq_topic=f"llm.telemetry.solo.dlq.{suffix}",
            partitions=2,
            tail=True,
        ),
        storage=StorageSettings(database_url=database_url, data_dir=str(tmp / "var")),
        processor=ProcessorSettings(allowed_lateness=timedelta(seconds=1), recovery=False),
    )


def _start(settings: Settings, tmp: Path, processes: int = 1) -> list[subprocess.Popen[bytes]]:
    """``python -m bytewax.run flows.main`` as an operator types it, one per process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPT_")}
    env.update(settings.as_env())
    base = [sys.executable, "-m", "bytewax.run", "flows.main"]
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    commands = (
        [base]
        if processes == 1
        else [[*base, "-i", str(i), "-a", addresses] for i in range(processes)]
    )
    procs = []
    for i, command in enumerate(commands):
        log = (tmp / f"dataflow-{i}.log").open("wb")
        procs.append(
            subprocess.Popen(command, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    return procs


def _logs(tmp: Path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in sorted(tmp.glob("dataflow-*.log")))


def _wait(
    what: str, check: Callable[[], T | None], procs: list[subprocess.Popen[bytes]], tmp: Path
) -> T:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, (
                f"the dataflow exited while waiting for {what}\n{_logs(tmp)}"
            )
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{_logs(tmp)}")


def _topics(settings: Settings) -> dict[str, int] | None:
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    meta = admin.list_topics(timeout=10).topics
    names = (settings.kafka.telemetry_topic, settings.kafka.dlq_topic)
    if not all(name in meta for name in names):
        return None
    return {name: len(meta[name].partitions) for name in names}


def _events() -> list[bytes]:
    return [
        json.dumps(
            {
                "event_id": f"solo-{i}",
                "timestamp": int((START + timedelta(seconds=i)).timestamp() * 1000),
                "app": "solo",
                "task": "classify",
                "model": "gpt-4o-mini",
                "latency_ms": 100.0 + i,
                "input_tokens": 10,
                "output_tokens": 5,
            }
        ).encode()
        for i in range(SECONDS)
    ]


def _closed_windows(database_url: str) -> list[tuple[datetime, int]] | None:
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(WindowRow.window_start, WindowRow.count)
                .where(WindowRow.kind == "tumbling", WindowRow.app == "solo")
                .order_by(WindowRow.window_start)
            ).all()
    finally:
        engine.dispose()
    return [(r[0], int(r[1])) for r in rows] if len(rows) >= 2 else None


def _stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(120))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait(30))
    return codes


def _run_alone(settings: Settings, tmp: Path, processes: int = 1) -> None:
    """Start the dataflow alone, wait for its topics, feed events, wait for windows."""
    url = settings.storage.resolved_database_url
    assert _topics(settings) is None  # nobody created them
    procs = _start(settings, tmp, processes)
    try:
        created = _wait("the dataflow to create its topics", lambda: _topics(settings), procs, tmp)
        assert created == {settings.kafka.telemetry_topic: 2, settings.kafka.dlq_topic: 2}
        engine = create_db_engine(url)
        _wait(
            "the schema at head",
            lambda: schema_revision(engine) == head_revision() or None,
            procs,
            tmp,
        )
        engine.dispose()
        report = TelemetryProducer(
            settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic
        ).send_all(_events())
        assert report.failed == 0, report.errors
        windows = _wait("closed windows", lambda: _closed_windows(url), procs, tmp)
        # The first two minutes closed with exactly their events; minute 2 is still open.
        assert windows == [(START, 60), (START + timedelta(minutes=1), 60)]
    finally:
        codes = _stop(procs)
    assert codes == [0] * processes, f"exit codes {codes}\n{_logs(tmp)}"


def test_dataflow_alone_on_a_fresh_sqlite_file_and_fresh_topics(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = _settings(kafka_bootstrap, tmp_path)  # no database_url: <data_dir>/llmopt.sqlite3
    assert not (tmp_path / "var").exists()
    _run_alone(settings, tmp_path)


def test_dataflow_alone_on_a_fresh_postgres_database_and_fresh_topics(
    kafka_bootstrap: str, tmp_path: Path, unmigrated_database: Callable[[], str]
) -> None:
    url = unmigrated_database()
    engine = create_db_engine(url)
    assert schema_revision(engine) is None
    engine.dispose()
    _run_alone(_settings(kafka_bootstrap, tmp_path, url), tmp_path)


def test_two_process_cluster_starting_at_once_on_a_fresh_postgres_database(
    kafka_bootstrap: str, tmp_path: Path, unmigrated_database: Callable[[], str]
) -> None:
    _run_alone(_settings(kafka_bootstrap, tmp_path, unmigrated_database()), tmp_path, processes=2)


def _racing_migrations(
    database_url: str, tmp: Path, n: int = 4, gate: Callable[[int], None] | None = None
) -> None:
    """``n`` ``llmopt migrate`` at once; ``gate(n)`` returns once they all wait to migrate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPT_")}
    env["LLMOPT_STORAGE__DATABASE_URL"] = database_url
    env["LLMOPT_STORAGE__DATA_DIR"] = str(tmp / "var")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "migrate"],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(n)
    ]
    if gate is not None:
        gate(n)
    outputs = [p.communicate(timeout=180)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * n, "\n".join(outputs)
    migrated = [o for o in outputs if "migrated from nothing to" in o]
    assert len(migrated) == 1, outputs  # one did the work; the others found it done
    assert sum("already at" in o for o in outputs) == n - 1, outputs
    engine = create_db_engine(database_url)
    assert schema_revision(engine) == head_revision()
    engine.dispose()


def test_llmopt_migrate_racing_on_a_fresh_postgres_database(
    tmp_path: Path, unmigrated_database: Callable[[], str]
) -> None:
    """The test holds the migration lock until all of them wait for it, then lets them race."""
    url = unmigrated_database()
    engine = create_engine(url)
    holder = engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})

    def all_waiting(n: int) -> None:
        deadline = time.monotonic() + 180
        waiting = 0
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                waiting = conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                )
            if waiting == n:
                break
            time.sleep(0.1)
        assert waiting == n, f"{waiting} of {n} migrations wait for the lock"
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})

    try:
        _racing_migrations(url, tmp_path, gate=all_waiting)
    finally:
        holder.close()
        engine.dispose()


def test_llmopt_migrate_racing_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    _racing_migrations(f"sqlite:///{tmp_path / 'db' / 'llmopt.sqlite3'}", tmp_path)
