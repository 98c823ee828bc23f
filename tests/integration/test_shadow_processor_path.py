"""Shadow-paired quality and config versions through the real processor.

tansu Kafka → Bytewax flow → PostgreSQL → REST: calls served under two config versions, some
with a shadow model's score, some scored later by feedback (served and shadow answers). The
stored windows must be one per config version, and their paired sums must equal an
independent computation from the events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bytewax.testing import run_main

from api.grpc.convert import to_message
from collector.producer import TelemetryProducer
from core.settings import ApiSettings, Settings
from flows.pipeline import build_flow
from orchestrator.services import RestService
from proto.llmopt.v1 import common_pb2
from storage.database import create_db_engine
from storage.kafka import free_port
from storage.windows import WindowRepository
from tests.integration.test_processor_path import _read_all
from tests.telemetry_samples import T0

pytestmark = pytest.mark.integration

ADMIN_KEY = "shadow-admin-key"
APP = "shadowed"


def _events(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """300 calls over three minutes and the feedback of some; both as sent."""
    rng = random.Random(seed)
    calls, feedback = [], []
    for i in range(300):
        at = T0 + timedelta(seconds=i * 0.6)
        event: dict[str, Any] = {
            "event_id": f"c{i}",
            "timestamp": int(at.timestamp() * 1000),
            "app": APP,
            "task": "classify",
            "model": "big",
            "latency_ms": rng.uniform(100, 900),
            "input_tokens": rng.randint(10, 500),
            "output_tokens": rng.randint(1, 50),
            "cost_usd": 0.001,
            "config_version": rng.choice([1, 2]),
            "request_id": f"r{i}",
        }
        if rng.random() < 0.6:
            event["quality"] = float(rng.random() < 0.8)
        if rng.random() < 0.5:
            event["shadow_model"] = rng.choice(["small", "tiny"])
            event["shadow_quality"] = float(rng.random() < 0.7)
        calls.append(event)
        if rng.random() < 0.2:
            fb: dict[str, Any] = {
                "kind": "feedback",
                "event_id": f"f{i}",
                "timestamp": int((at + timedelta(seconds=20)).timestamp() * 1000),
                "app": APP,
                "request_id": f"r{i}",
                "quality": float(rng.random() < 0.5),
            }
            if rng.random() < 0.5:
                fb["shadow_model"] = "small"
                fb["shadow_quality"] = round(rng.random(), 3)
            feedback.append(fb)
    return calls, feedback


def _expected(
    calls: list[dict[str, Any]], feedback: list[dict[str, Any]]
) -> dict[tuple[int, int], dict[str, list[float]]]:
    """(minute, config version) → shadow model → [count, served, shadow, diff²] sums."""
    final = {c["request_id"]: dict(c) for c in calls}
    for fb in feedback:
        call = final[fb["request_id"]]
        call["quality"] = fb["quality"]
        if "shadow_model" in fb:
            call["shadow_model"], call["shadow_quality"] = fb["shadow_model"], fb["shadow_quality"]
    out: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(dict)
    t0 = int(T0.timestamp() * 1000)
    for c in final.values():
        if c.get("quality") is None or c.get("shadow_model") is None:
            continue
        minute = (c["timestamp"] - t0) // 60_000
        sums = out[(minute, c["config_version"])].setdefault(c["shadow_model"], [0, 0.0, 0.0, 0.0])
        served, shadow = c["quality"], c["shadow_quality"]
        sums[0] += 1
        sums[1] += served
        sums[2] += shadow
        sums[3] += (shadow - served) ** 2
    return out


@pytest.fixture
def settings(flow_settings: Settings) -> Settings:
    return dataclasses.replace(
        flow_settings, api=ApiSettings(port=free_port(), bootstrap_admin_key=ADMIN_KEY)
    )


def test_paired_shadow_sums_per_config_version_survive_the_real_path(settings: Settings) -> None:
    calls, feedback = _events(seed=5)
    records = [json.dumps(e).encode() for e in calls + feedback]
    plain = {k: v for k, v in calls[0].items() if not k.startswith("shadow_")}
    bad = {
        json.dumps({**plain, "event_id": "b1", "shadow_model": "small"}).encode(): (
            "`$.shadow_model` requires `$.shadow_quality`"
        ),
        json.dumps({**plain, "event_id": "b2", "shadow_quality": 1.0}).encode(): (
            "`$.shadow_quality` requires `$.shadow_model`"
        ),
    }
    records += list(bad)
    report = TelemetryProducer(
        settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic
    ).send_all(records)
    assert (report.delivered, report.failed) == (len(records), 0)

    run_main(build_flow(settings))

    dead = _read_all(settings.kafka.bootstrap_servers, settings.kafka.dlq_topic, 1)
    assert sorted(v for v, _ in dead) == sorted(bad)
    for value, headers in dead:
        assert bad[value] in headers["reason"].decode()

    engine = create_db_engine(settings.storage.database_url)
    stored = list(WindowRepository(engine).query(app=APP, kind="tumbling"))
    engine.dispose()
    expected = _expected(calls, feedback)
    t0 = T0.timestamp()
    got = {(int((w.window_start.timestamp() - t0) // 60), w.config_version): w for w in stored}
    # One window per (minute, config version): 3 minutes x 2 versions.
    assert sorted(got) == [(m, v) for m in range(3) for v in (1, 2)]
    assert sum(w.count for w in stored) == 300
    assert set(expected) <= set(got)
    assert any(len(v) == 2 for v in expected.values())  # both shadow models appear
    for key, w in got.items():
        want = expected.get(key, {})
        assert set(w.shadow) == set(want)
        for model, (count, served, shadow, diff_sq) in want.items():
            pq = w.shadow[model]
            assert pq.count == count
            assert pq.served_sum == pytest.approx(served)
            assert pq.shadow_sum == pytest.approx(shadow)
            assert pq.diff_sq_sum == pytest.approx(diff_sq)
    assert _expected(calls, []) != expected  # the feedback joins changed the pairs

    # gRPC window messages carry the same fields.
    message = to_message(stored[0], common_pb2.WindowStats)
    assert message.config_version == stored[0].config_version
    assert {m: p.count for m, p in message.shadow.items()} == {
        m: p.count for m, p in stored[0].shadow.items()
    }

    async def fetch() -> dict[str, Any]:
        rest = RestService(settings)
        await rest.start()
        try:
            base = f"http://127.0.0.1:{settings.api.port}"
            async with httpx.AsyncClient(base_url=base) as client:
                response = await client.get(
                    "/api/v1/metrics/summary",
                    params={"app": APP},
                    headers={"x-api-key": ADMIN_KEY},
                )
            assert response.status_code == 200
            body: dict[str, Any] = response.json()
            return body
        finally:
            await rest.stop()

    body = asyncio.run(fetch())
    rest_windows = [w for w in body["windows"] if w["kind"] == "tumbling"]
    assert sorted((w["window_start"], w["config_version"]) for w in rest_windows) == sorted(
        (w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"), w.config_version) for w in stored
    )
    for w in rest_windows:
        for pq in w["shadow"].values():
            assert set(pq) == {"count", "served_sum", "shadow_sum", "diff_sq_sum"}
