"""Restarting ``make run``'s optimizer: the embedded broker comes back empty, nothing is skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from storage.kafka import free_port

pytestmark = pytest.mark.e2e

KEY = "restart-admin-key"


def _start(tmp_path: Path, env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _poll(proc: subprocess.Popen[bytes], what: str, check, timeout: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"orchestrator exited while waiting for {what}"
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _events(app: str, minute: datetime, n: int) -> str:
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
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def _run_once(tmp_path: Path, env: dict[str, str], app: str, n: int, name: str) -> None:
    base = f"http://127.0.0.1:{env['LLMOPT_API__PORT']}"
    proc = _start(tmp_path, env, name)
    try:
        _poll(proc, "health", lambda: httpx.get(base + "/health", timeout=2).status_code == 200)
        minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=4)
        source = tmp_path / f"{app}.jsonl"
        source.write_text(_events(app, minute, n))
        produced = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "produce",
                str(source),
                "--bootstrap",
                f"127.0.0.1:{env['LLMOPT_KAFKA__EMBEDDED_PORT']}",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert produced.returncode == 0, produced.stderr

        def window() -> int | None:
            body = httpx.get(
                base + "/api/v1/metrics/summary",
                params={"app": app},
                headers={"x-api-key": KEY},
                timeout=5,
            ).json()
            return body["windows"][0]["count"] if body["windows"] else None

        assert _poll(proc, f"the window of {app}", window) == n
        time.sleep(2.5)  # let the processor snapshot its offsets (snapshot interval 1 s)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_a_restarted_optimizer_reads_the_new_embedded_topic_from_its_start(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMOPT_")},
        "LLMOPT_ENV": "development",
        "LLMOPT_STORAGE__DATA_DIR": str(tmp_path / "var"),
        "LLMOPT_API__PORT": str(free_port()),
        "LLMOPT_API__BOOTSTRAP_ADMIN_KEY": KEY,
        "LLMOPT_KAFKA__EMBEDDED_PORT": str(free_port()),
        "LLMOPT_ORCHESTRATOR__METRICS_PORT": str(free_port()),
        "LLMOPT_COLLECTOR__HTTP_PORT": "0",
        "LLMOPT_COLLECTOR__GRPC_PORT": "0",
        "LLMOPT_GRPC__PORT": "0",
        "LLMOPT_PROCESSOR__ALLOWED_LATENESS": "1s",
        "LLMOPT_PROCESSOR__SNAPSHOT_INTERVAL": "1s",
    }
    _run_once(tmp_path, env, "first-app", 40, "first")
    # Same data dir (database, recovery store), new in-memory broker: offsets start at 0 again.
    _run_once(tmp_path, env, "second-app", 10, "second")
