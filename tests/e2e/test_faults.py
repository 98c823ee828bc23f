"""Fault tests on real services: ``python -m orchestrator`` as a user runs it, then break things.

- The Bytewax process is SIGKILLed: the processor service restarts it (backoff), the recovery
  store resumes it, and every event produced before and after the kill is counted exactly once.
- PostgreSQL goes away (a private cluster of this test, never the machine's shared one): the
  storage service is restarted then Failed, REST stays up Degraded (``/health`` 503, cached
  config still served), and everything is Running again when PostgreSQL returns.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.kafka import free_port

pytestmark = pytest.mark.e2e

KEY = "faults-admin-key"


def _base_env(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMOPT_")},
        "LLMOPT_ENV": "development",
        "LLMOPT_STORAGE__DATA_DIR": str(tmp_path / "var"),
        "LLMOPT_API__PORT": str(free_port()),
        "LLMOPT_API__BOOTSTRAP_ADMIN_KEY": KEY,
        "LLMOPT_ORCHESTRATOR__METRICS_PORT": str(free_port()),
        "LLMOPT_COLLECTOR__HTTP_PORT": "0",
        "LLMOPT_COLLECTOR__GRPC_PORT": "0",
        "LLMOPT_GRPC__PORT": "0",
        "LLMOPT_PROCESSOR__ALLOWED_LATENESS": "1s",
        "LLMOPT_PROCESSOR__SNAPSHOT_INTERVAL": "1s",
    }


class Optimizer:
    """One ``python -m orchestrator`` process with its log."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.env = env
        self.log_path = tmp_path / "orchestrator.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator"],
            cwd=tmp_path,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{env['LLMOPT_API__PORT']}"
        self.metrics_url = f"http://127.0.0.1:{env['LLMOPT_ORCHESTRATOR__METRICS_PORT']}/metrics"

    def log(self) -> str:
        return self.log_path.read_text()

    def poll(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"orchestrator exited while waiting for {what}"
            try:
                found = check()
            except httpx.HTTPError:
                found = None
            if found:
                return found
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log()[-3000:]}")

    def status(self, service: str) -> float | None:
        for line in httpx.get(self.metrics_url, timeout=5).text.splitlines():
            if line.startswith(f'service_status{{service="{service}"}}'):
                return float(line.split()[-1])
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


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


def _produce(
    opt: Optimizer, bootstrap: str, tmp_path: Path, name: str, events: list[dict[str, Any]]
) -> None:
    source = tmp_path / f"{name}.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    produced = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "produce",
            str(source),
            "--bootstrap",
            bootstrap,
        ],
        cwd=tmp_path,
        env=opt.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr
    assert f"delivered {len(events)}, failed 0" in produced.stderr


def _bytewax_pids(parent: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(parent), "-f", "bytewax.run"], capture_output=True)
    return [int(p) for p in found.stdout.split()]


def test_killed_bytewax_process_is_restarted_and_no_event_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    env = _base_env(tmp_path)
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
        _produce(opt, bootstrap, tmp_path, "before", _calls(app, before, minute))
        time.sleep(3)  # consumed and (snapshot interval 1 s) partly snapshotted
        os.kill(first, signal.SIGKILL)
        # Events produced while it is down, a replay of some earlier ones (at-least-once
        # producers resend), then one two minutes later that closes the window.
        after = [f"after-{i}" for i in range(15)]
        _produce(opt, bootstrap, tmp_path, "after", _calls(app, after + before[:5], minute))
        _produce(
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

        def window() -> dict[str, Any] | None:
            body = httpx.get(
                opt.base + "/api/v1/metrics/summary",
                params={"app": app},
                headers={"x-api-key": KEY},
                timeout=5,
            ).json()
            closed = [
                w
                for w in body["windows"]
                if w["window_start"] == minute.strftime("%Y-%m-%dT%H:%M:%SZ")
                and w["kind"] == "tumbling"
            ]
            return closed[0] if closed else None

        found = opt.poll("the window of the killed minute", window, timeout=60)
        assert found["count"] == 40  # 25 before + 15 after, the 5 resent ones not again
        time.sleep(2)  # nothing arrives twice later on either
        body = httpx.get(
            opt.base + "/api/v1/metrics/summary",
            params={"app": app},
            headers={"x-api-key": KEY},
            timeout=5,
        ).json()
        same_minute = [
            w
            for w in body["windows"]
            if w["window_start"] == found["window_start"] and w["kind"] == "tumbling"
        ]
        assert [w["count"] for w in same_minute] == [40]
        log = opt.log()
        assert "processor_exited_restarting" in log
        assert "delay_s=1.0" in log
        assert opt.status("processor") in (1.0, 2.0)  # running (or degraded while probing)
    finally:
        code = opt.stop()
    assert code == 0


# ---- a private PostgreSQL cluster -----------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.fail(
            f"PostgreSQL's {name} is missing (looked in /usr/lib/postgresql/*/bin/): install "
            "Debian's postgresql package; this fault test needs a private cluster it can stop.",
            pytrace=False,
        )
    return found[-1]


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` on a free port, as the ``postgres`` user when run as root."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="llmopt-faults-pg-"))
        self.data = self.dir / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{cmd[0]} failed: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")
        self._run(_pg_bin("initdb"), "--version")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"),
            *("-D", str(self.data), "-o", options, "-l", str(self.dir / "pg.log"), "-w", "start"),
        )

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def test_postgresql_outage_fails_storage_degrades_rest_and_recovers(
    tmp_path: Path,
    private_postgres: PrivateCluster,
    kafka_bootstrap: str,
    topics: dict[str, str],
) -> None:
    env = _base_env(tmp_path)
    env |= {
        "LLMOPT_STORAGE__DATABASE_URL": private_postgres.url,
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

        private_postgres.stop()
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

        private_postgres.start()
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
