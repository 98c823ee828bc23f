"""Every unary RPC of the five ``llmopt.v1`` services with a real client against a real server.

The server binds port 0 over PostgreSQL, Redis (db 15, unique key prefixes) and tansu; the
answers are checked against what the same service layer stores and what REST shows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from litestar.testing import TestClient

from api.grpc import decode_details
from api.rest.app import create_app
from core.decisions import Decision, ExpectedImpact, MetricCheck, Verdict, stable_id
from core.events import LlmCall
from core.stats import WindowKey
from operators.window_stats import summarize
from proto.llmopt.v1 import (
    admin_pb2,
    config_pb2,
    errors_pb2,
    integrations_pb2,
    metrics_pb2,
    optimization_pb2,
)
from storage.database import create_db_engine, session_scope
from storage.decisions import add_verdict, save_decision
from storage.windows import WindowRepository
from tests.unit.api.grpc.support import RunningServer, Stubs, client, fast_grpc, grpc_server, key
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
ADMIN = key(ADMIN_KEY)


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


class Env:
    """A gRPC server, its stubs, the database URL and a REST client on the same storage."""

    def __init__(self, running: RunningServer, stubs: Stubs, url: str, rest: Any) -> None:
        self.running = running
        self.c = stubs
        self.url = url
        self.rest = rest
        self.reloads: list[str] = []


@pytest.fixture
def env(
    fresh_database: Any, redis_url: str, kafka_bootstrap: str, topics: dict[str, str]
) -> Iterator[Env]:
    url = fresh_database()
    settings = fast_grpc(
        rest_settings(url, redis_url, kafka_bootstrap=kafka_bootstrap, topics=topics)
    )
    reloads: list[str] = []
    with (
        grpc_server(settings, on_reload=lambda: reloads.append("reloaded")) as running,
        client(running.target) as stubs,
        TestClient(create_app(settings)) as rest,
    ):
        found = Env(running, stubs, url, rest)
        found.reloads = reloads
        yield found


def _error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def _decision(i: int, status: str = "proposed") -> Decision:
    return Decision(
        id=stable_id("grpc", i),
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


def test_config_get_update_versions_rollback_match_rest(env: Env) -> None:
    c = env.c
    params = struct_pb2.Struct()
    params.update({"max_tokens": 200, "temperature": 0.2})
    first = c.config.UpdateConfig(
        config_pb2.UpdateConfigRequest(
            app="shop",
            tasks={"faq": config_pb2.TaskConfig(model="big", params=params)},
            reason="first",
        ),
        metadata=ADMIN,
    )
    assert (first.app, first.version, first.author, first.reason) == (
        "shop",
        1,
        "key:bootstrap",
        "first",
    )
    # Read (and cache the message of) version 1 first: the read after the change must not
    # answer from that cache.
    cached = c.config.GetConfig(config_pb2.GetConfigRequest(app="shop"), metadata=ADMIN)
    assert (cached.version, cached.tasks["faq"].model) == (1, "big")
    second = c.config.UpdateConfig(
        config_pb2.UpdateConfigRequest(
            app="shop",
            tasks={
                "faq": config_pb2.TaskConfig(
                    model="small",
                    params=params,
                    cache=config_pb2.CacheConfig(enabled=True, ttl_s=60.0),
                    rate_limit=config_pb2.RateLimitConfig(requests_per_s=5.0, burst=10),
                )
            },
        ),
        metadata=ADMIN,
    )
    assert second.version == 2
    assert second.reason == "manual change"
    active = c.config.GetConfig(config_pb2.GetConfigRequest(app="shop"), metadata=ADMIN)
    rest = env.rest.get("/api/v1/config/shop", headers={"x-api-key": ADMIN_KEY}).json()
    assert rest["version"] == active.version == 2
    faq = active.tasks["faq"]
    assert faq.model == rest["tasks"]["faq"]["model"] == "small"
    assert rest["tasks"]["faq"]["params"] == {"max_tokens": 200, "temperature": 0.2}
    assert dict(faq.params) == {"max_tokens": 200.0, "temperature": 0.2}
    assert (faq.cache.enabled, faq.cache.ttl_s) == (True, 60.0)
    assert rest["tasks"]["faq"]["rate_limit"]["burst"] == faq.rate_limit.burst == 10
    assert not faq.HasField("canary")
    versions = c.config.ListVersions(config_pb2.ListVersionsRequest(app="shop"), metadata=ADMIN)
    assert [v.version for v in versions.versions] == [2, 1]
    assert dict(versions.versions[0].diff)["faq.model"] == {"from": "big", "to": "small"}
    older = c.config.ListVersions(
        config_pb2.ListVersionsRequest(app="shop", before=2, limit=5), metadata=ADMIN
    )
    assert [v.version for v in older.versions] == [1]
    rolled = c.config.RollbackConfig(
        config_pb2.RollbackConfigRequest(app="shop", version=1), metadata=ADMIN
    )
    assert (rolled.version, rolled.tasks["faq"].model, rolled.reason) == (
        3,
        "big",
        "rollback to version 1",
    )
    assert c.config.GetConfig(config_pb2.GetConfigRequest(app="shop"), metadata=ADMIN).version == 3

    missing = _error(c.config.GetConfig, config_pb2.GetConfigRequest(app="nope"), metadata=ADMIN)
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert missing.details() == "app 'nope' has no config"
    bad = _error(
        c.config.UpdateConfig,
        config_pb2.UpdateConfigRequest(
            app="shop",
            tasks={
                "faq": config_pb2.TaskConfig(batching=config_pb2.BatchingConfig(max_batch_size=0))
            },
        ),
        metadata=ADMIN,
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty = _error(c.config.GetConfig, config_pb2.GetConfigRequest(), metadata=ADMIN)
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = decode_details(empty.trailing_metadata())
    assert status is not None
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.details[0].type_url == "type.googleapis.com/google.rpc.BadRequest"
    violations = errors_pb2.BadRequest.FromString(status.details[0].value).field_violations
    assert [(v.field, v.description) for v in violations] == [("app", "is required")]
    rollback_zero = _error(
        c.config.RollbackConfig, config_pb2.RollbackConfigRequest(app="shop"), metadata=ADMIN
    )
    assert rollback_zero.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_recommendations_list_get_approve_reject_rollback(env: Env) -> None:
    c = env.c
    c.config.UpdateConfig(
        config_pb2.UpdateConfigRequest(
            app="shop", tasks={"faq": config_pb2.TaskConfig(model="big")}
        ),
        metadata=ADMIN,
    )
    engine = create_db_engine(env.url)
    with session_scope(engine) as session:
        for i in range(5):
            save_decision(session, _decision(i), now=T0)
    page = c.optimization.ListRecommendations(
        optimization_pb2.ListRecommendationsRequest(limit=2), metadata=ADMIN
    )
    assert [d.id for d in page.items] == [_decision(4).id, _decision(3).id]
    rest = c.optimization.ListRecommendations(
        optimization_pb2.ListRecommendationsRequest(limit=10, cursor=page.next_cursor),
        metadata=ADMIN,
    )
    assert [d.id for d in rest.items] == [_decision(i).id for i in (2, 1, 0)]
    assert not rest.HasField("next_cursor")
    caching = c.optimization.ListRecommendations(
        optimization_pb2.ListRecommendationsRequest(
            strategy="caching", since=_ts(T0 + timedelta(minutes=2))
        ),
        metadata=ADMIN,
    )
    assert [d.id for d in caching.items] == [_decision(3).id]
    decision_id = _decision(0).id
    approved = c.optimization.Approve(
        optimization_pb2.ApproveRequest(decision_id=decision_id), metadata=ADMIN
    )
    assert approved.status == "canary"
    config = c.config.GetConfig(config_pb2.GetConfigRequest(app="shop"), metadata=ADMIN)
    assert config.version == 2
    assert dict(config.tasks["faq"].canary.overrides) == {"model": "small"}
    detail = c.optimization.GetRecommendation(
        optimization_pb2.GetRecommendationRequest(decision_id=decision_id), metadata=ADMIN
    )
    assert dict(detail.decision.evidence) == {"quality_diff": -0.001, "n": 400.0}
    assert detail.decision.expected_impact.cost_change_pct == -60.0
    assert detail.deployment.status == "running"
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
                deployment_id=detail.deployment.id,
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
    shown = c.optimization.GetRecommendation(
        optimization_pb2.GetRecommendationRequest(decision_id=decision_id), metadata=ADMIN
    )
    got = shown.deployment.verdicts[0].checks[0]
    assert (got.metric, got.p_value, got.baseline_n, got.passed) == ("latency_p95", 0.03, 50, True)
    rejected = c.optimization.Reject(
        optimization_pb2.RejectRequest(decision_id=_decision(1).id, reason="not now"),
        metadata=ADMIN,
    )
    assert rejected.status == "rejected"
    again = _error(
        c.optimization.Reject,
        optimization_pb2.RejectRequest(decision_id=_decision(1).id),
        metadata=ADMIN,
    )
    assert again.code() == grpc.StatusCode.INVALID_ARGUMENT
    rolled = c.optimization.Rollback(
        optimization_pb2.RollbackRequest(decision_id=decision_id, reason="bad"), metadata=ADMIN
    )
    assert rolled.status == "rolled_back"
    after = c.config.GetConfig(config_pb2.GetConfigRequest(app="shop"), metadata=ADMIN)
    assert not after.tasks["faq"].HasField("canary")
    missing = _error(
        c.optimization.Approve, optimization_pb2.ApproveRequest(decision_id="nope"), metadata=ADMIN
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    bad_limit = _error(
        c.optimization.ListRecommendations,
        optimization_pb2.ListRecommendationsRequest(limit=0),
        metadata=ADMIN,
    )
    assert bad_limit.code() == grpc.StatusCode.INVALID_ARGUMENT


def _windows() -> list[Any]:
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
        key_ = WindowKey("shop", "faq", "m", "baseline")
        windows.append(summarize("tumbling", start, start + timedelta(minutes=1), key_, calls))
    return windows


def test_metrics_summary_windows_insights_and_analysis(env: Env) -> None:
    c = env.c
    windows = _windows()
    engine = create_db_engine(env.url)
    WindowRepository(engine).upsert(windows)
    engine.dispose()
    summary = c.metrics.GetSummary(metrics_pb2.GetSummaryRequest(app="shop"), metadata=ADMIN)
    rest = env.rest.get("/api/v1/metrics/summary?app=shop", headers={"x-api-key": ADMIN_KEY}).json()
    assert len(summary.windows) == len(rest["windows"]) == 8
    assert summary.totals.count == rest["totals"]["count"] == 320
    assert summary.totals.cost_usd == pytest.approx(rest["totals"]["cost_usd"])
    assert dict(summary.strays) == rest["strays"]
    first = summary.windows[0]
    assert first.window_start.ToDatetime(tzinfo=UTC) == T0
    assert first.latency_ms.p95 == windows[0].latency_ms.p95
    assert first.count == 40
    ranged = c.metrics.QueryWindows(
        metrics_pb2.QueryWindowsRequest(
            app="shop", model="m", variant="baseline", until=_ts(T0 + timedelta(minutes=3))
        ),
        metadata=ADMIN,
    )
    assert [w.window_start.ToDatetime(tzinfo=UTC) for w in ranged.windows] == [
        T0 + timedelta(minutes=m) for m in range(3)
    ]
    other = c.metrics.QueryWindows(
        metrics_pb2.QueryWindowsRequest(app="shop", model="other"), metadata=ADMIN
    )
    assert list(other.windows) == []
    analysis = c.optimization.Analyze(
        optimization_pb2.AnalyzeRequest(app="shop", task="faq", since=_ts(T0)), metadata=ADMIN
    )
    assert analysis.windows == 8
    slo = [i for i in analysis.insights if i.kind == "latency_slo"]
    assert [(i.window_start.ToDatetime(tzinfo=UTC), i.severity) for i in slo] == [
        (T0 + timedelta(minutes=7), "warning")
    ]
    insights = c.metrics.ListInsights(metrics_pb2.ListInsightsRequest(app="shop"), metadata=ADMIN)
    assert list(insights.insights) == []  # analysis stores nothing
    bad_kind = _error(
        c.metrics.GetSummary,
        metrics_pb2.GetSummaryRequest(app="shop", kind="hourly"),
        metadata=ADMIN,
    )
    assert bad_kind.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = decode_details(bad_kind.trailing_metadata())
    assert status is not None
    assert errors_pb2.BadRequest.FromString(status.details[0].value).field_violations[0].field == (
        "kind"
    )


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


def test_integrations_create_list_test_delete(env: Env) -> None:
    c = env.c
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_port}/hook"
        created = c.integrations.Create(
            integrations_pb2.CreateIntegrationRequest(name="ops", kind="slack", secret=hook),
            metadata=ADMIN,
        )
        assert (created.name, created.kind, created.enabled, created.has_secret) == (
            "ops",
            "slack",
            True,
            True,
        )
        listed = c.integrations.List(integrations_pb2.ListIntegrationsRequest(), metadata=ADMIN)
        assert [i.id for i in listed.integrations] == [created.id]
        assert hook not in str(listed)  # the secret is write-only
        before = len(_Webhook.received)
        tested = c.integrations.Test(
            integrations_pb2.TestIntegrationRequest(id=created.id), metadata=ADMIN
        )
        assert tested.ok, tested.detail
        assert len(_Webhook.received) == before + 1
        taken = _error(
            c.integrations.Create,
            integrations_pb2.CreateIntegrationRequest(name="ops", kind="slack", secret=hook),
            metadata=ADMIN,
        )
        assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
        bad_kind = _error(
            c.integrations.Create,
            integrations_pb2.CreateIntegrationRequest(name="x", kind="teams"),
            metadata=ADMIN,
        )
        assert bad_kind.code() == grpc.StatusCode.INVALID_ARGUMENT
        c.integrations.Delete(
            integrations_pb2.DeleteIntegrationRequest(id=created.id), metadata=ADMIN
        )
        empty = c.integrations.List(integrations_pb2.ListIntegrationsRequest(), metadata=ADMIN)
        assert list(empty.integrations) == []
        gone = _error(
            c.integrations.Delete,
            integrations_pb2.DeleteIntegrationRequest(id=created.id),
            metadata=ADMIN,
        )
        assert gone.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.shutdown()


def test_admin_keys_audit_stats_reload(env: Env) -> None:
    c = env.c
    created = c.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(name="ci", role="viewer"), metadata=ADMIN
    )
    assert created.key
    assert (created.info.name, created.info.role) == ("ci", "viewer")
    viewer = key(created.key)
    assert c.metrics.GetSummary(metrics_pb2.GetSummaryRequest(app="x"), metadata=viewer).totals
    listed = c.admin.ListApiKeys(admin_pb2.ListApiKeysRequest(), metadata=ADMIN)
    assert "ci" in [k.name for k in listed.keys]
    revoked = c.admin.RevokeApiKey(
        admin_pb2.RevokeApiKeyRequest(id=created.info.id), metadata=ADMIN
    )
    assert revoked.HasField("revoked_at")
    refused = _error(c.metrics.GetSummary, metrics_pb2.GetSummaryRequest(app="x"), metadata=viewer)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    all_keys = c.admin.ListApiKeys(
        admin_pb2.ListApiKeysRequest(include_revoked=True), metadata=ADMIN
    )
    assert created.info.id in [k.id for k in all_keys.keys]
    audit = c.admin.ListAuditLog(
        admin_pb2.ListAuditLogRequest(resource="api_key", limit=10), metadata=ADMIN
    )
    assert [e.action for e in audit.entries][:2] == ["api_key.revoke", "api_key.create"]
    assert audit.entries[0].actor == "key:bootstrap"
    stats = c.admin.Stats(admin_pb2.StatsRequest(), metadata=ADMIN)
    assert stats.api_keys >= 1
    assert stats.windows == 0
    reloaded = c.admin.Reload(admin_pb2.ReloadRequest(), metadata=ADMIN)
    assert reloaded.status == "reloading"
    assert env.reloads == ["reloaded"]
    bad_role = _error(
        c.admin.CreateApiKey, admin_pb2.CreateApiKeyRequest(name="x", role="root"), metadata=ADMIN
    )
    assert bad_role.code() == grpc.StatusCode.INVALID_ARGUMENT
    unknown = _error(c.admin.RevokeApiKey, admin_pb2.RevokeApiKeyRequest(id=999999), metadata=ADMIN)
    assert unknown.code() == grpc.StatusCode.NOT_FOUND


def test_request_id_is_echoed_or_created(env: Env) -> None:
    c = env.c
    _, call = c.admin.Stats.with_call(
        admin_pb2.StatsRequest(), metadata=(*ADMIN, ("x-request-id", "abc-123"))
    )
    assert dict(call.initial_metadata())["x-request-id"] == "abc-123"
    _, fresh = c.admin.Stats.with_call(admin_pb2.StatsRequest(), metadata=ADMIN)
    assert len(dict(fresh.initial_metadata())["x-request-id"]) == 32
