"""Running the real processor (``python -m bytewax.run flows.main``) as subprocesses in tests."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import create_engine, text

from core.settings import Settings
from orchestrator.services.processor import bytewax_commands, ensure_recovery_store
from tests.telemetry_samples import T0


def emptied_database(database_url: str, *tables: str) -> None:
    """Migrate the database at ``database_url`` and delete every row of ``tables``."""
    from storage.database import create_db_engine, migrate

    engine = create_db_engine(database_url)
    migrate(engine)
    with engine.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(f"DELETE FROM {table}")
    engine.dispose()


def stream(n: int, per_second: int = 500, seed: int = 3) -> Iterator[bytes]:
    """``n`` records of 6 apps with late calls (100 s behind) and feedback for some calls."""
    rng = random.Random(seed)
    feedback: list[bytes] = []
    for i in range(n):
        at = T0 + timedelta(seconds=i / per_second)
        if i % 997 == 0 and i:
            at -= timedelta(seconds=100)  # late: beyond the 30 s allowed lateness
        app = f"app-{i % 6}"
        event: dict[str, Any] = {
            "event_id": f"e{i}",
            "timestamp": int(at.timestamp() * 1000),
            "app": app,
            "task": f"t{i % 2}",
            "model": "gpt-4o-mini" if i % 3 else "claude-3-5-haiku-latest",
            "latency_ms": round(rng.uniform(50, 3000), 2),
            "input_tokens": rng.randint(10, 900),
            "output_tokens": rng.randint(1, 300),
            "status": "error" if i % 41 == 0 else "ok",
        }
        if i % 101 == 0:
            event["request_id"] = f"r{i}"
            feedback.append(
                json.dumps(
                    {
                        "kind": "feedback",
                        "event_id": f"f{i}",
                        "app": app,
                        "request_id": f"r{i}",
                        "timestamp": int((at + timedelta(seconds=5)).timestamp() * 1000),
                        "quality": round(rng.random(), 3),
                    }
                ).encode()
            )
        yield json.dumps(event).encode()
        if len(feedback) > 3:  # feedback follows its call a little later in the stream
            yield feedback.pop(0)
    yield from feedback
    yield b"{broken"
    yield json.dumps(
        {
            "event_id": "e1",
            "timestamp": 0,
            "app": "app-1",
            "model": "m",
            "latency_ms": 1,
            "input_tokens": 1,
            "output_tokens": 1,
        }
    ).encode()


def start(
    settings: Settings, extra_env: dict[str, str] | None = None, **popen: Any
) -> list[subprocess.Popen[bytes]]:
    """Spawn the processor exactly as the orchestrator does (recovery store included)."""
    ensure_recovery_store(settings)
    env = {**os.environ, **settings.as_env(), **(extra_env or {})}
    return [subprocess.Popen(cmd, env=env, **popen) for cmd in bytewax_commands(settings)]


def run(settings: Settings, timeout: float = 300) -> None:
    """Run the processor to the end of the topic (``kafka.tail`` must be false)."""
    procs = start(settings)
    codes = [p.wait(timeout) for p in procs]
    assert codes == [0] * len(procs), f"processor exit codes {codes}"


_WINDOW_COLUMNS = (
    "kind, window_start, app, task, model, variant, count, ok_count, error_count, "
    "errors_by_type, latency_p50, latency_p90, latency_p95, latency_p99, latency_max, "
    "input_tokens, output_tokens, cost_usd, quality_count, quality_mean, config_version, shadow"
)
# Not compared: revision (how many corrections a window took depends on how the stream was cut
# into batches; its final content does not), ids and write times.


def table_rows(database_url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every window row and stray row, without ids and write times, in a stable order."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        windows = [
            tuple(r)
            for r in conn.execute(
                text(
                    f"SELECT {_WINDOW_COLUMNS} FROM window_stats ORDER BY "
                    "kind, window_start, app, task, model, variant, coalesce(config_version, -1)"
                )
            )
        ]
        strays = [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT kind, event_id, app, task, event_time, in_window FROM stray_events "
                    "ORDER BY kind, event_id"
                )
            )
        ]
    engine.dispose()
    return windows, strays
