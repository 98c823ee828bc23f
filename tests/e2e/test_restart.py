"""Restarting ``make run``'s optimizer: the embedded broker comes back empty, nothing is skipped."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.kafka import free_port
from tests.e2e.optimizer_process import Optimizer, base_env, produce

pytestmark = pytest.mark.e2e

KEY = "restart-admin-key"


def _events(app: str, minute: datetime, n: int) -> list[dict[str, Any]]:
    lines = [
        {
            "event_id": f"{app}-{i}",
            "timestamp": (minute + timedelta(seconds=i)).isoformat(),
            "app": app,
            "model": "gpt-4o-mini",
            "latency_ms": 50.0 + i,
            "input_tokens": 5,
            "output_tokens": 5,
        }
        for i in range(n)
    ]
    lines.append(
        {
            "event_id": f"{app}-push",
            "timestamp": (minute + timedelta(minutes=2)).isoformat(),
            "app": app,
            "model": "gpt-4o-mini",
            "latency_ms": 1.0,
            "input_tokens": 1,
            "output_tokens": 1,
        }
    )
    return lines


def _run_once(tmp_path: Path, env: dict[str, str], app: str, n: int, name: str) -> None:
    opt = Optimizer(tmp_path, env, name)
    try:
        opt.poll("health", lambda: httpx.get(opt.base + "/health", timeout=2).status_code == 200)
        minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=4)
        bootstrap = f"127.0.0.1:{env['LLMOPT_KAFKA__EMBEDDED_PORT']}"
        produce(opt, bootstrap, tmp_path, app, _events(app, minute, n))

        def window() -> int | None:
            body = httpx.get(
                opt.base + "/api/v1/metrics/summary",
                params={"app": app},
                headers={"x-api-key": KEY},
                timeout=5,
            ).json()
            return body["windows"][0]["count"] if body["windows"] else None

        assert opt.poll(f"the window of {app}", window) == n
        time.sleep(2.5)  # let the processor snapshot its offsets (snapshot interval 1 s)
    finally:
        assert opt.stop() == 0


def test_a_restarted_optimizer_reads_the_new_embedded_topic_from_its_start(tmp_path: Path) -> None:
    env = base_env(tmp_path, KEY)
    env["LLMOPT_KAFKA__EMBEDDED_PORT"] = str(free_port())
    _run_once(tmp_path, env, "first-app", 40, "first")
    # Same data dir (database, recovery store), new in-memory broker: offsets start at 0 again.
    _run_once(tmp_path, env, "second-app", 10, "second")
