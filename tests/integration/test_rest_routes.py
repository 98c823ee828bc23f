"""Every REST resource through the real app on PostgreSQL, Redis and Kafka (tansu)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition
from litestar.testing import TestClient

from api.rest.app import create_app
from core.decisions import Decision, ExpectedImpact, MetricCheck, Verdict, stable_id
from core.events import LlmCall
from core.stats import WindowKey
from operators.window_stats import summarize
from storage.database import create_db_engine, session_scope
from storage.decisions import add_verdict, save_decision
from storage.windows import WindowRepository
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings, role_keys

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ADMIN = {"x-api-key": ADMIN_KEY}


@pytest.fixture
def env(
    fresh_database: Any, redis_url: str, kafka_bootstrap: str, topics: dict[str, str]
) -> Iterator[tuple[TestClient[Any], str, dict[str, str], list[str]]]:
    url = fresh_database()
    reloads: list[str] = []
    settings = rest_settings(
        url,
        redis_url,
        kafka_bootstrap=kafka_bootstrap,
        topics=topics,
        cors_origins=("https://console.example",),
        max_batch_events=5,
    )
    app = create_app(settings, on_reload=lambda: reloads.append("reloaded"))
    with TestClient(app) as client:
        yield client, url, topics, reloads


def _read_topic(bootstrap: str, topic: str, n: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    out: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(out) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            out.append(msg.value())
    consumer.close()
    return out


def _event(i: int, **over: Any) -> dict[str, Any]:
    event = {
        "event_id": f"e{i}",
        "timestamp": "2026-11-29T10:00:00Z",
        "app": "shop",
        "model": "m",
        "latency_ms": 10,
        "input_tokens": 1,
        "output_tokens": 1,
    }
    event.update(over)
    return event


def test_telemetry_batches_are_validated_per_event_and_produced(
    env: Any, kafka_bootstrap: str
) -> None:
    client, _, topics, _ = env
    body = [_event(0), _event(1, latency_ms=-1), _event(2)]
    answer = client.post("/api/v1/telemetry", json=body, headers=ADMIN)
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 2
    assert answer.json()["rejected"] == 1
    assert [e["index"] for e in answer.json()["errors"]] == [1]
    assert "latency_ms" in answer.json()["errors"][0]["reason"]
    ndjson = "\n".join(json.dumps(_event(i)) for i in (3, 4)) + "\n"
    lines = client.post(
        "/api/v1/telemetry",
        content=ndjson,
        headers={**ADMIN, "content-type": "application/x-ndjson"},
    )
    assert lines.json() == {"accepted": 2, "rejected": 0, "errors": []}
    produced = _read_topic(kafka_bootstrap, topics["telemetry"], 4)
    assert sorted(json.loads(m)["event_id"] for m in produced) == ["e0", "e2", "e3", "e4"]
    too_many = client.post("/api/v1/telemetry", json=[_event(i) for i in range(6)], headers=ADMIN)
    assert too_many.status_code == 400
    assert "exceeds the limit of 5" in too_many.json()["detail"]
    assert client.post("/api/v1/telemetry", content=b"[1,", headers=ADMIN).status_code == 400


def test_config_is_versioned_audited_cached_diffed_and_rolled_back(
    env: Any, redis_url: str
) -> None:
    client, _, _, _ = env
    first = client.put(
        "/api/v1/config/shop",
        json={"tasks": {"faq": {"model": "big"}}, "reason": "start"},
        headers=ADMIN,
    )
    assert first.status_code == 200
    assert first.json()["version"] == 1
    second = client.put(
        "/api/v1/config/shop",
        json={"tasks": {"faq": {"model": "small", "params": {"temperature": 0}}}},
        headers=ADMIN,
    )
    assert second.json()["version"] == 2
    active = client.get("/api/v1/config/shop", headers=ADMIN).json()
    assert active == {
        "app": "shop",
        "version": 2,
        "tasks": {
            "faq": {
                "model": "small",
                "provider": None,
                "params": {"temperature": 0},
                "cache": None,
                "rate_limit": None,
                "batching": None,
                "prompt": None,
                "canary": None,
                "shadow": None,
            }
        },
    }
    cached = redis.Redis.from_url(redis_url).get("llmopt:config-cache:shop")
    assert cached is not None
    assert json.loads(cached) == active
    diff = client.get("/api/v1/config/shop/diff?from=1&to=2", headers=ADMIN).json()
    assert diff["changes"] == {
        "faq.model": {"from": "big", "to": "small"},
        "faq.params": {"from": {}, "to": {"temperature": 0}},
    }
    versions = client.get("/api/v1/config/shop/versions", headers=ADMIN).json()
    assert [(v["version"], v["author"]) for v in versions] == [
        (2, "key:bootstrap"),
        (1, "key:bootstrap"),
    ]
    back = client.post(
        "/api/v1/config/shop/rollback", json={"version": 1, "reason": "worse"}, headers=ADMIN
    )
    assert back.json()["version"] == 3
    assert back.json()["tasks"]["faq"]["model"] == "big"
    assert client.get("/api/v1/config/shop", headers=ADMIN).json()["version"] == 3
    audit = client.get("/api/v1/admin/audit?resource=config", headers=ADMIN).json()
    assert [a["resource_id"] for a in audit] == ["shop@3", "shop@2", "shop@1"]
    bad = client.put(
        "/api/v1/config/shop",
        json={"tasks": {"faq": {"canary": {"version": 1, "weight": 3}}}},
        headers=ADMIN,
    )
    assert bad.status_code == 400
    assert "weight" in json.dumps(bad.json())
    assert client.get("/api/v1/config/nope", headers=ADMIN).status_code == 404
    assert client.get("/api/v1/config", headers=ADMIN).json() == ["shop"]


def _decision(i: int, status: str = "proposed") -> Decision:
    return Decision(
        id=stable_id("rest", i),
        created_at=T0 + timedelta(minutes=i),
        app="shop",
        task="faq",
        strategy="model_selection" if i % 2 == 0 else "caching",
        action={"model": "small"},
        rationale="cheaper and as good",
        evidence={"quality_diff": -0.001, "n": 400},
        expected_impact=ExpectedImpact(cost_change_pct=-60.0),
        confidence=0.9,
        status=status,  # type: ignore[arg-type]
    )


def test_recommendations_approve_deploy_verdicts_and_rollback(env: Any) -> None:
    client, url, _, _ = env
    client.put("/api/v1/config/shop", json={"tasks": {"faq": {"model": "big"}}}, headers=ADMIN)
    engine = create_db_engine(url)
    with session_scope(engine) as session:
        for i in range(5):
            save_decision(session, _decision(i), now=T0)
    page = client.get("/api/v1/optimize/recommendations?limit=2", headers=ADMIN).json()
    assert [d["id"] for d in page["items"]] == [_decision(4).id, _decision(3).id]
    rest = client.get(
        f"/api/v1/optimize/recommendations?limit=10&cursor={page['next_cursor']}", headers=ADMIN
    ).json()
    assert [d["id"] for d in rest["items"]] == [_decision(i).id for i in (2, 1, 0)]
    assert rest["next_cursor"] is None
    caching = client.get(
        "/api/v1/optimize/recommendations?strategy=caching&since=2026-11-01T10:02:00Z",
        headers=ADMIN,
    ).json()
    assert [d["id"] for d in caching["items"]] == [_decision(3).id]
    decision_id = _decision(0).id
    approved = client.post(f"/api/v1/optimize/recommendations/{decision_id}/approve", headers=ADMIN)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "canary"
    config = client.get("/api/v1/config/shop", headers=ADMIN).json()
    assert config["version"] == 2
    assert config["tasks"]["faq"]["canary"]["overrides"] == {"model": "small"}
    detail = client.get(f"/api/v1/optimize/recommendations/{decision_id}", headers=ADMIN).json()
    assert detail["decision"]["evidence"] == {"quality_diff": -0.001, "n": 400}
    deployment = detail["deployment"]
    assert deployment["status"] == "running"
    check = MetricCheck(
        metric="latency_p95",
        baseline=100.0,
        canary=90.0,
        threshold=1.2,
        test="mann_whitney_u",
        statistic=12.0,
        p_value=0.03,
        baseline_n=50,
        canary_n=40,
        passed=True,
    )
    with session_scope(engine) as session:
        add_verdict(
            session,
            Verdict(
                id="v1",
                deployment_id=deployment["id"],
                stage=0,
                weight=0.01,
                outcome="pass",
                window_start=T0,
                window_end=T0 + timedelta(minutes=1),
                checks=(check,),
                reason="all gates passed",
                created_at=T0,
            ),
        )
    engine.dispose()
    listed = client.get("/api/v1/deployments?status=running", headers=ADMIN).json()
    assert [d["id"] for d in listed["items"]] == [deployment["id"]]
    shown = client.get(f"/api/v1/deployments/{deployment['id']}", headers=ADMIN).json()
    assert shown["stage"] == 0
    assert shown["weight"] == 0.01
    assert shown["verdicts"][0]["checks"][0] == {
        "metric": "latency_p95",
        "baseline": 100.0,
        "canary": 90.0,
        "threshold": 1.2,
        "test": "mann_whitney_u",
        "statistic": 12.0,
        "p_value": 0.03,
        "baseline_n": 50,
        "canary_n": 40,
        "passed": True,
        "detail": "",
        "lower": None,
        "upper": None,
    }
    rejected = client.post(
        f"/api/v1/optimize/recommendations/{_decision(1).id}/reject",
        json={"reason": "not now"},
        headers=ADMIN,
    )
    assert rejected.json()["status"] == "rejected"
    again = client.post(
        f"/api/v1/optimize/recommendations/{_decision(1).id}/reject", json={}, headers=ADMIN
    )
    assert again.status_code == 400
    rolled = client.post(
        f"/api/v1/optimize/recommendations/{decision_id}/rollback",
        json={"reason": "bad"},
        headers=ADMIN,
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["status"] == "rolled_back"
    assert client.get("/api/v1/config/shop", headers=ADMIN).json()["tasks"]["faq"]["canary"] is None
    missing = client.post("/api/v1/optimize/recommendations/nope/approve", headers=ADMIN)
    assert missing.status_code == 404


def test_analysis_and_time_series_over_stored_windows(env: Any) -> None:
    client, url, _, _ = env
    engine = create_db_engine(url)
    windows = []
    for m in range(8):
        start = T0 + timedelta(minutes=m)
        calls = [
            LlmCall(
                event_id=f"c{m}-{i}",
                timestamp=start + timedelta(seconds=i),
                app="shop",
                task="faq",
                model="m",
                latency_ms=3000.0 if m == 7 else 100.0 + i,
                input_tokens=10,
                output_tokens=2,
                cost_usd=0.01,
            )
            for i in range(40)
        ]
        windows.append(
            summarize(
                "tumbling",
                start,
                start + timedelta(minutes=1),
                WindowKey("shop", "faq", "m", "baseline"),
                calls,
            )
        )
    WindowRepository(engine).upsert(windows)
    engine.dispose()
    analysis = client.post(
        "/api/v1/optimize/analyze",
        json={"app": "shop", "task": "faq", "since": "2026-11-01T10:00:00Z"},
        headers=ADMIN,
    ).json()
    assert analysis["windows"] == 8
    slo = [i for i in analysis["insights"] if i["kind"] == "latency_slo"]
    assert [(i["window_start"], i["severity"]) for i in slo] == [
        ("2026-11-01T10:07:00Z", "warning")
    ]
    assert isinstance(analysis["proposals"], list)
    series = client.get(
        "/api/v1/metrics/series?app=shop&metric=latency_p95&until=2026-11-01T10:03:00Z",
        headers=ADMIN,
    ).json()
    assert series["series"][0]["task"] == "faq"
    assert [p["t"] for p in series["series"][0]["points"]] == [
        "2026-11-01T10:00:00Z",
        "2026-11-01T10:01:00Z",
        "2026-11-01T10:02:00Z",
    ]
    assert series["series"][0]["points"][0]["value"] == windows[0].latency_ms.p95


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        _Webhook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def test_integrations_keep_secrets_write_only_and_test_delivers(env: Any) -> None:
    client, _, _, _ = env
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = f"http://127.0.0.1:{server.server_port}/hooks/T000/B000/very-secret-token"
    try:
        created = client.post(
            "/api/v1/integrations",
            json={"name": "ops-slack", "kind": "slack", "secret": secret},
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        integration_id = created.json()["id"]
        assert created.json()["has_secret"] is True
        tested = client.post(f"/api/v1/integrations/{integration_id}/test", headers=ADMIN)
        assert tested.json() == {"ok": True, "detail": "delivered"}
        assert "test notification" in json.dumps(_Webhook.received[-1])
        dup = client.post(
            "/api/v1/integrations",
            json={"name": "ops-slack", "kind": "slack", "secret": secret},
            headers=ADMIN,
        )
        assert dup.status_code == 409
        bad = client.post(
            "/api/v1/integrations",
            json={"name": "x", "kind": "slack", "secret": "http://example.com/hook"},
            headers=ADMIN,
        )
        assert bad.status_code == 400
        patched = client.patch(
            f"/api/v1/integrations/{integration_id}", json={"enabled": False}, headers=ADMIN
        )
        assert patched.json()["enabled"] is False
        everything = [
            client.get("/api/v1/integrations", headers=ADMIN).text,
            client.get(f"/api/v1/integrations/{integration_id}", headers=ADMIN).text,
            client.get("/api/v1/admin/audit", headers=ADMIN).text,
            patched.text,
            created.text,
        ]
        assert not any("very-secret-token" in text for text in everything)
        assert (
            client.delete(f"/api/v1/integrations/{integration_id}", headers=ADMIN).status_code
            == 204
        )
        assert (
            client.get(f"/api/v1/integrations/{integration_id}", headers=ADMIN).status_code == 404
        )
    finally:
        server.shutdown()


def test_admin_stats_reload_and_keys(env: Any) -> None:
    client, url, _, reloads = env
    keys = role_keys(url)
    assert client.post("/api/v1/admin/reload", headers=ADMIN).status_code == 202
    assert reloads == ["reloaded"]
    stats = client.get("/api/v1/admin/stats", headers=ADMIN).json()
    assert stats["api_keys"] == 4
    assert (
        client.post("/api/v1/admin/reload", headers={"x-api-key": keys["operator"]}).status_code
        == 403
    )
    actions = [a["action"] for a in client.get("/api/v1/admin/audit", headers=ADMIN).json()]
    assert actions == ["server.reload"]


def test_reload_without_a_hook_is_503(fresh_database: Any, redis_url: str) -> None:
    with TestClient(create_app(rest_settings(fresh_database(), redis_url))) as client:
        answer = client.post("/api/v1/admin/reload", headers=ADMIN)
        assert answer.status_code == 503
        assert "no reload hook" in answer.json()["detail"]


def test_request_ids_compression_cors_and_problem_details(env: Any) -> None:
    client, _, _, _ = env
    mine = client.get("/health/live", headers={"x-request-id": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = client.get("/api/v1/nope", headers={**ADMIN, "x-request-id": "bad id with spaces"})
    assert made.status_code == 404
    assert made.headers["content-type"] == "application/problem+json"
    assert made.json()["request_id"] == made.headers["x-request-id"] != "bad id with spaces"
    br = client.get("/schema/openapi.json", headers={"accept-encoding": "br"})
    assert br.headers["content-encoding"] == "br"
    gz = client.get("/schema/openapi.json", headers={"accept-encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    assert br.json()["openapi"].startswith("3.1")  # httpx decoded the brotli body
    preflight = client.options(
        "/api/v1/config/shop",
        headers={
            "origin": "https://console.example",
            "access-control-request-method": "GET",
            "access-control-request-headers": "x-api-key",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "https://console.example"
    foreign = client.options(
        "/api/v1/config/shop",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in foreign.headers
