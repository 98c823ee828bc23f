"""The optimizer as a user starts it: ``python -m orchestrator`` with embedded defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto.llmopt.v1 import metrics_pb2, metrics_pb2_grpc
from storage.kafka import free_port

pytestmark = pytest.mark.e2e

ADMIN_KEY = "e2e-admin-key"
PROMTOOL = Path(__file__).parents[2] / ".tools" / "bin" / "promtool"


# Guards, not paces: the orchestrator exits by itself when a service misses its own
# orchestrator.start_timeout, and _wait_for fails at once when it exits; these bounds only stop a
# hung run, so they are generous for a loaded machine (services start one after another).
GUARD_S = 600


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen[bytes]):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"orchestrator exited with {proc.returncode} while {what}"
        result = predicate()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_orchestrator_embedded_defaults_end_to_end(tmp_path: Path) -> None:
    api_port, kafka_port, metrics_port = free_port(), free_port(), free_port()
    grpc_port = free_port()
    env = {
        **os.environ,
        "LLMOPT_ENV": "development",
        "LLMOPT_STORAGE__DATA_DIR": str(tmp_path / "var"),
        "LLMOPT_API__PORT": str(api_port),
        "LLMOPT_API__BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "LLMOPT_KAFKA__EMBEDDED_PORT": str(kafka_port),
        "LLMOPT_ORCHESTRATOR__METRICS_PORT": str(metrics_port),
        "LLMOPT_COLLECTOR__HTTP_PORT": "0",
        "LLMOPT_COLLECTOR__GRPC_PORT": "0",
        "LLMOPT_GRPC__PORT": str(grpc_port),
        "LLMOPT_PROCESSOR__ALLOWED_LATENESS": "1s",
    }
    for key in (
        "LLMOPT_KAFKA__BOOTSTRAP_SERVERS",
        "LLMOPT_STORAGE__DATABASE_URL",
        "LLMOPT_STORAGE__REDIS_URL",
    ):
        env.pop(key, None)
    log = (tmp_path / "orchestrator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{api_port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(base + "/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(healthy, GUARD_S, "the REST API to become healthy", proc)
        health = httpx.get(base + "/health").json()
        assert health["status"] == "ok"
        assert set(health["dependencies"]) == {"database", "kafka", "cache"}

        # Events of one closed minute, plus one a minute later that moves the watermark past it.
        minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
        lines = [
            json.dumps(
                {
                    "event_id": f"e2e-{i}",
                    "timestamp": (minute + timedelta(seconds=i)).isoformat(),
                    "app": "e2e-app",
                    "task": "answer",
                    "model": "gpt-4o-mini",
                    "latency_ms": 100.0 + i,
                    "input_tokens": 10,
                    "output_tokens": 5,
                }
            )
            for i in range(30)
        ]
        lines.append(
            json.dumps(
                {
                    "event_id": "e2e-pusher",
                    "timestamp": (minute + timedelta(minutes=2)).isoformat(),
                    "app": "e2e-app",
                    "task": "answer",
                    "model": "gpt-4o-mini",
                    "latency_ms": 1.0,
                    "input_tokens": 1,
                    "output_tokens": 1,
                }
            )
        )
        events = tmp_path / "events.jsonl"
        events.write_text("\n".join(lines) + "\n")
        produced = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "produce",
                str(events),
                "--bootstrap",
                f"127.0.0.1:{kafka_port}",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert produced.returncode == 0, produced.stderr
        assert "delivered 31, failed 0" in produced.stderr

        def window() -> dict[str, object] | None:
            body = httpx.get(
                base + "/api/v1/metrics/summary",
                params={"app": "e2e-app"},
                headers={"x-api-key": ADMIN_KEY},
                timeout=5,
            ).json()
            return body if body["windows"] else None

        body = _wait_for(window, GUARD_S, "the window to reach the REST API", proc)
        first = body["windows"][0]
        assert first["window_start"] == minute.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert first["count"] == 30
        assert first["latency_ms"]["max"] == 129.0

        # The same window over gRPC, and the gRPC health service serving.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="llmopt.v1.MetricsService"), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            summary = metrics_pb2_grpc.MetricsServiceStub(channel).GetSummary(
                metrics_pb2.GetSummaryRequest(app=first["app"]),
                metadata=(("x-api-key", ADMIN_KEY),),
                timeout=10,
            )
        assert [w.count for w in summary.windows] == [w["count"] for w in body["windows"]]
        assert summary.windows[0].latency_ms.max == 129.0

        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        for service in ("storage", "collector", "integrations", "processor", "rest", "grpc"):
            assert f'service_status{{service="{service}"}} 1.0' in metrics
        assert 'request_duration_seconds_count{operation="start",service="rest"} 1.0' in metrics
        assert "llmopt_pipeline_events_in_total" in metrics
        # The gRPC server runs in the orchestrator: its per-method metrics are served here.
        assert (
            'llmopt_grpc_requests_total{code="OK",method="GetSummary",'
            'service="llmopt.v1.MetricsService"} 1.0'
        ) in metrics
        rest_metrics = httpx.get(base + "/metrics", timeout=5).text
        for text in (metrics, rest_metrics):  # promtool from scripts/install-promtool.sh
            lint = subprocess.run(
                [str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True
            )
            assert lint.returncode == 0, lint.stdout + lint.stderr

        # SIGHUP with an invalid settings file: logged, old settings kept, still serving.
        (tmp_path / "settings.toml").write_text("[default]\nlog_level = 'LOUD'\n")
        proc.send_signal(signal.SIGHUP)
        logged = tmp_path / "orchestrator.log"
        _wait_for(
            lambda: "reload_rejected_keeping_old_settings" in logged.read_text(),
            GUARD_S,
            "the rejected reload to be logged",
            proc,
        )
        assert httpx.get(base + "/health", timeout=5).status_code == 200

        # SIGHUP with valid settings: the gRPC server takes the new rate limit at its next call.
        (tmp_path / "settings.toml").write_text(
            "[default.api.rate_limit]\nper_s = 0.001\nburst = 1\n"
        )
        proc.send_signal(signal.SIGHUP)
        _wait_for(
            lambda: "settings_reloaded" in logged.read_text(), GUARD_S, "the reload to apply", proc
        )
        codes = []
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = metrics_pb2_grpc.MetricsServiceStub(channel)
            for _ in range(3):
                try:
                    stub.GetSummary(
                        metrics_pb2.GetSummaryRequest(app=first["app"]),
                        metadata=(("x-api-key", ADMIN_KEY),),
                        timeout=10,
                    )
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
        assert codes[1:] == ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        stopped = [
            line.split("service=")[1].split()[0]
            for line in logged.read_text().splitlines()
            if "service_stopped" in line
        ]
        assert stopped == ["rest", "processor", "integrations", "collector", "storage"] or (
            stopped[0] == "grpc"
            and stopped[1:] == ["rest", "processor", "integrations", "collector", "storage"]
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "orchestrator.log").read_text()
    assert "final_health" in output
    stopped = [line for line in output.splitlines() if "service_stopped" in line]
    assert [s.split("service=")[1].split()[0] for s in stopped] == [
        "grpc",
        "rest",
        "processor",
        "integrations",
        "collector",
        "storage",
    ]
    # Nothing left behind: the broker and the dataflow stopped with the orchestrator.
    leftovers = subprocess.run(["pgrep", "-f", f"127.0.0.1:{kafka_port}"], capture_output=True)
    assert leftovers.stdout == b""
