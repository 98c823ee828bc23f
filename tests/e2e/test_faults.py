"""Fault tests on real services: ``python -m orchestrator`` as a user runs it, then break things.

- The Bytewax process is SIGKILLed: the processor service restarts it (backoff), the recovery
  store resumes it, and every event produced before and after the kill is counted exactly once.
- PostgreSQL goes away (a private cluster of this test, never the machine's shared one): the
  storage service is restarted then Failed, REST stays up Degraded (``/health`` 503, cached
  config still served), and everything is Running again when PostgreSQL returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.kafka import free_port
from tests.e2e.optimizer_process import Optimizer, base_env, produce
from tests.pg_cluster import PgCluster
from tests.processes import running

pytestmark = pytest.mark.e2e

KEY = "faults-admin-key"


def _calls(app: str, ids: list[str], minute: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event_id": event_id,
            "timestamp": (minute + timedelta(seconds=i % 50)).isoformat(),
            "app": app,
            "model": "gpt-4o-mini",
            "latency_ms": 10.0 + i,
            "input_tokens": 5,
            "output_tokens": 5,
        }
        for i, event_id in enumerate(ids)
    ]


def _bytewax_pids(parent: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(parent), "-f", "bytewax.run"], capture_output=True)
    return [int(p) for p in found.stdout.split()]


def test_killed_bytewax_process_is_restarted_and_no_event_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    env = base_env(tmp_path, KEY)
    port = free_port()
    env["LLMOPT_KAFKA__EMBEDDED_PORT"] = str(port)  # make run's embedded broker
    bootstrap = f"127.0.0.1:{port}"
    opt = Optimizer(tmp_path, env)
    app = "kill-app"
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    try:
        opt.poll("health", lambda: httpx.get(opt.base + "/health", timeout=2).status_code == 200)
        [first] = opt.poll("the Bytewax process", lambda: _bytewax_pids(opt.proc.pid))
        before = [f"before-{i}" for i in range(25)]
        produce(opt, bootstrap, tmp_path, "before", _calls(app, before, minute))
        time.sleep(3)  # consumed and (snapshot interval 1 s) partly snapshotted
        os.kill(first, signal.SIGKILL)
        # Events produced while it is down, a replay of some earlier ones (at-least-once
        # producers resend), then one two minutes later that closes the window.
        after = [f"after-{i}" for i in range(15)]
        produce(opt, bootstrap, tmp_path, "after", _calls(app, after + before[:5], minute))
        produce(
            opt,
            bootstrap,
            tmp_path,
            "pusher",
            _calls(app, ["pusher"], minute + timedelta(minutes=2)),
        )
        [second] = opt.poll(
            "the restarted Bytewax process",
            lambda: [p for p in _bytewax_pids(opt.proc.pid) if p != first],
        )
        assert second != first

        def killed_minute() -> list[dict[str, Any]]:
            """The tumbling windows of the minute the kill happened in."""
            body = httpx.get(
                opt.base + "/api/v1/metrics/summary",
                params={"app": app},
                headers={"x-api-key": KEY},
                timeout=5,
            ).json()
            start = minute.strftime("%Y-%m-%dT%H:%M:%SZ")
            return [
                w for w in body["windows"] if w["window_start"] == start and w["kind"] == "tumbling"
            ]

        found = opt.poll("the window of the killed minute", killed_minute, timeout=60)[0]
        assert found["count"] == 40  # 25 before + 15 after, the 5 resent ones not again
        time.sleep(2)  # nothing arrives twice later on either
        assert [w["count"] for w in killed_minute()] == [40]
        log = opt.log()
        assert "processor_exited_restarting" in log
        assert "delay_s=1.0" in log
        assert opt.status("processor") in (1.0, 2.0)  # running (or degraded while probing)
    finally:
        code = opt.stop()
    assert code == 0


# ---- a private PostgreSQL cluster -----------------------------------------------------------


def test_children_stop_when_the_orchestrator_itself_is_killed(tmp_path: Path) -> None:
    """SIGKILL gives the orchestrator no chance to stop its services in order: the embedded
    broker, the Bytewax process and the REST server process get SIGTERM from the kernel
    instead of running on with the ports and the recovery store."""
    env = base_env(tmp_path, KEY)
    env["LLMOPT_KAFKA__EMBEDDED_PORT"] = str(free_port())
    opt = Optimizer(tmp_path, env)
    children: list[int] = []
    try:
        opt.poll("health", lambda: httpx.get(opt.base + "/health", timeout=2).status_code == 200)
        opt.poll("the Bytewax process", lambda: _bytewax_pids(opt.proc.pid))
        found = subprocess.run(["pgrep", "-P", str(opt.proc.pid)], capture_output=True)
        children = [int(p) for p in found.stdout.split()]
        commands = [Path(f"/proc/{p}/cmdline").read_bytes() for p in children]
        assert any(b"tansu" in c for c in commands), commands
        assert any(b"bytewax.run" in c for c in commands), commands
        opt.proc.kill()
        opt.proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(running(p) for p in children):
            time.sleep(0.1)
        assert [p for p in children if running(p)] == []
    finally:
        opt.stop()
        for pid in children:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_postgresql_outage_fails_storage_degrades_rest_and_recovers(
    tmp_path: Path,
    pg_cluster: PgCluster,
    kafka_bootstrap: str,
    topics: dict[str, str],
) -> None:
    env = base_env(tmp_path, KEY)
    env |= {
        "LLMOPT_STORAGE__DATABASE_URL": pg_cluster.url,
        "LLMOPT_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LLMOPT_KAFKA__TELEMETRY_TOPIC": topics["telemetry"],
        "LLMOPT_KAFKA__DLQ_TOPIC": topics["dlq"],
        "LLMOPT_ORCHESTRATOR__HEALTH_INTERVAL": "1s",
        "LLMOPT_ORCHESTRATOR__HEALTH_TIMEOUT": "1s",
        "LLMOPT_ORCHESTRATOR__FAILURE_THRESHOLD": "2",
        "LLMOPT_ORCHESTRATOR__MAX_RESTARTS": "2",
        "LLMOPT_API__CONFIG_CACHE_TTL": "10m",
    }
    opt = Optimizer(tmp_path, env)
    auth = {"x-api-key": KEY}
    try:
        opt.poll("health", lambda: httpx.get(opt.base + "/health", timeout=2).status_code == 200)
        put = httpx.put(
            opt.base + "/api/v1/config/fault-app",
            json={"tasks": {"answer": {"model": "gpt-4o-mini"}}, "reason": "before the outage"},
            headers=auth,
            timeout=10,
        )
        assert put.status_code == 200, put.text
        config = httpx.get(opt.base + "/api/v1/config/fault-app", headers=auth, timeout=5)
        assert config.status_code == 200
        assert config.json()["tasks"]["answer"]["model"] == "gpt-4o-mini"

        pg_cluster.stop()
        opt.poll(
            "storage to be Failed (restarts used up) and REST Degraded",
            lambda: (
                "service_failed" in opt.log()
                and opt.status("storage") == 5.0
                and opt.status("rest") == 2.0
            ),
            timeout=45,
        )
        restarts = [line for line in opt.log().splitlines() if "service_restarting" in line]
        assert len(restarts) == 2  # orchestrator.max_restarts
        assert all("service=storage" in line for line in restarts)
        assert "delay_s=1.0" in restarts[0]
        assert "delay_s=2.0" in restarts[1]
        health = httpx.get(opt.base + "/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["dependencies"]["database"]["status"] == "down"
        cached = httpx.get(opt.base + "/api/v1/config/fault-app", headers=auth, timeout=10)
        assert cached.status_code == 200, cached.text
        assert cached.json() == config.json()

        pg_cluster.start()
        opt.poll(
            "storage and REST to be Running again",
            lambda: opt.status("storage") == 1.0 and opt.status("rest") == 1.0,
            timeout=30,
        )
        assert httpx.get(opt.base + "/health", timeout=10).status_code == 200
        assert "service_reviving" in opt.log()
        fresh = httpx.get(opt.base + "/api/v1/config/fault-app/versions", headers=auth, timeout=10)
        assert fresh.status_code == 200, fresh.text
    finally:
        code = opt.stop()
    assert code == 0
