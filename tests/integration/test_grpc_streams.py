"""The four streaming kinds with real clients: server streams (WatchConfig, StreamMetrics,
WatchDecisions), the client stream RecordTelemetry into Kafka, and the bidirectional
OptimizationSession."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from confluent_kafka import Consumer, TopicPartition
from google.protobuf import timestamp_pb2
from litestar.testing import TestClient

from api.rest.app import create_app
from core.app_config import TaskConfig
from core.decisions import Decision, MetricCheck, Verdict, stable_id
from core.events import LlmCall
from core.settings import updated
from core.stats import WindowKey
from operators.window_stats import summarize
from proto.llmopt.v1 import common_pb2, config_pb2, metrics_pb2, optimization_pb2
from rollout.config_manager import ConfigManager
from storage.api_keys import ApiKeyRepository
from storage.database import create_db_engine, session_scope
from storage.decisions import add_verdict, save_decision
from storage.windows import WindowRepository
from tests.unit.api.grpc.support import RunningServer, Stubs, client, fast_grpc, grpc_server, key
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings

pytestmark = pytest.mark.integration
ADMIN = key(ADMIN_KEY)
REST_ADMIN = {"x-api-key": ADMIN_KEY}
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


class Env:
    def __init__(self, running: RunningServer, c: Stubs, url: str, rest: Any, topics: Any) -> None:
        self.running, self.c, self.url, self.rest, self.topics = running, c, url, rest, topics


@pytest.fixture
def env(
    fresh_database: Any, redis_url: str, kafka_bootstrap: str, topics: dict[str, str]
) -> Iterator[Env]:
    url = fresh_database()
    settings = fast_grpc(
        rest_settings(url, redis_url, kafka_bootstrap=kafka_bootstrap, topics=topics),
        watch_poll_interval=0.2,
    )
    with (
        grpc_server(settings) as running,
        client(running.target) as stubs,
        TestClient(create_app(settings)) as rest,
    ):
        yield Env(running, stubs, url, rest, topics)


class Reader:
    """Reads a response stream in a thread; ``next()`` waits for the next message."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.items: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in self.call:
                self.items.put(item)
        except grpc.RpcError as exc:
            self.items.put(exc)

    def next(self, timeout: float = 10.0) -> Any:
        item = self.items.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def nothing_for(self, seconds: float) -> bool:
        try:
            self.items.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.call.cancel()
        self.thread.join(5)


def test_watch_config_sends_the_active_config_then_changes_made_over_rest(env: Env) -> None:
    env.rest.put(
        "/api/v1/config/shop", json={"tasks": {"faq": {"model": "big"}}}, headers=REST_ADMIN
    )
    reader = Reader(
        env.c.config.WatchConfig(config_pb2.WatchConfigRequest(app="shop"), metadata=ADMIN)
    )
    try:
        first = reader.next()
        assert (first.app, first.version, first.tasks["faq"].model) == ("shop", 1, "big")
        started = time.monotonic()
        changed = env.rest.put(
            "/api/v1/config/shop", json={"tasks": {"faq": {"model": "small"}}}, headers=REST_ADMIN
        )
        assert changed.status_code == 200, changed.text
        second = reader.next()
        assert (second.version, second.tasks["faq"].model) == (2, "small")
        assert time.monotonic() - started < 5
        # A change that is never published (the dataflow's process, Redis down): polling finds it.
        engine = create_db_engine(env.url)
        ConfigManager(engine).update(
            "shop", {"faq": TaskConfig(model="tiny")}, author="dataflow", reason="unpublished"
        )
        engine.dispose()
        third = reader.next()
        assert (third.version, third.tasks["faq"].model) == (3, "tiny")
        assert reader.nothing_for(0.6)  # nothing is sent twice
    finally:
        reader.close()


def test_watch_config_waits_for_a_first_version_and_resumes_after_one(env: Env) -> None:
    reader = Reader(
        env.c.config.WatchConfig(config_pb2.WatchConfigRequest(app="new-app"), metadata=ADMIN)
    )
    try:
        assert reader.nothing_for(0.5)
        env.rest.put(
            "/api/v1/config/new-app", json={"tasks": {"t": {"model": "m"}}}, headers=REST_ADMIN
        )
        assert reader.next().version == 1
    finally:
        reader.close()
    env.rest.put(
        "/api/v1/config/new-app", json={"tasks": {"t": {"model": "n"}}}, headers=REST_ADMIN
    )
    resumed = Reader(
        env.c.config.WatchConfig(
            config_pb2.WatchConfigRequest(app="new-app", after_version=2), metadata=ADMIN
        )
    )
    try:
        assert resumed.nothing_for(0.6)  # version 2 was already applied by this client
    finally:
        resumed.close()


def test_a_client_deadline_ends_a_watch(env: Env) -> None:
    env.rest.put(
        "/api/v1/config/shop", json={"tasks": {"faq": {"model": "big"}}}, headers=REST_ADMIN
    )
    stream = env.c.config.WatchConfig(
        config_pb2.WatchConfigRequest(app="shop"), metadata=ADMIN, timeout=1.0
    )
    received: list[int] = []

    def drain() -> None:
        received.extend(item.version for item in stream)

    with pytest.raises(grpc.RpcError) as caught:
        drain()
    assert received == [1]
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


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


def _typed(i: int) -> common_pb2.TelemetryEvent:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime(2026, 11, 29, 10, 0, i, tzinfo=UTC))
    return common_pb2.TelemetryEvent(
        event_id=f"g{i}",
        timestamp=stamp,
        app="shop",
        task="faq",
        model="m",
        latency_ms=12.5,
        input_tokens=100,
        output_tokens=7,
    )


def test_record_telemetry_streams_events_into_kafka_with_per_event_reasons(
    env: Env, kafka_bootstrap: str
) -> None:
    bad = json.dumps({"event_id": "j-bad", "app": "shop"}).encode()
    good = json.dumps(
        {
            "event_id": "j1",
            "timestamp": "2026-11-29T10:00:30Z",
            "app": "shop",
            "model": "m",
            "latency_ms": 5,
            "input_tokens": 1,
            "output_tokens": 1,
        }
    ).encode()
    requests = iter(
        [
            metrics_pb2.RecordTelemetryRequest(events=[_typed(0), _typed(1)]),
            metrics_pb2.RecordTelemetryRequest(),
            metrics_pb2.RecordTelemetryRequest(events=[_typed(2)], json_events=[bad, good]),
        ]
    )
    ingest_key = _ingest_key(env)
    answer = env.c.metrics.RecordTelemetry(requests, metadata=key(ingest_key))
    assert (answer.accepted, answer.rejected, answer.messages) == (4, 1, 3)
    assert [e.index for e in answer.errors] == [3]
    assert "timestamp" in answer.errors[0].reason
    produced = [json.loads(v) for v in _read_topic(kafka_bootstrap, env.topics["telemetry"], 4)]
    by_id = {e["event_id"]: e for e in produced}
    assert sorted(by_id) == ["g0", "g1", "g2", "j1"]
    assert by_id["g1"]["input_tokens"] == 100
    assert by_id["g1"]["latency_ms"] == 12.5
    assert by_id["g1"]["timestamp"].startswith("2026-11-29T10:00:01")
    dlq = _read_topic(kafka_bootstrap, env.topics["dlq"], 1)
    assert [json.loads(v)["event_id"] for v in dlq] == ["j-bad"]


def _ingest_key(env: Env) -> str:
    engine = create_db_engine(env.url)
    found = ApiKeyRepository(engine).create(f"ingest-{uuid.uuid4().hex[:6]}", "ingest")
    engine.dispose()
    return found


def test_record_telemetry_refuses_a_message_over_the_batch_limit(env: Env) -> None:
    too_many = metrics_pb2.RecordTelemetryRequest(events=[_typed(0)] * 10_001)
    with pytest.raises(grpc.RpcError) as caught:
        env.c.metrics.RecordTelemetry(iter([too_many]), metadata=ADMIN)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _window(minute: int, app: str = "shop") -> Any:
    start = T0 + timedelta(minutes=minute)
    calls = [
        LlmCall(
            event_id=f"{app}-{minute}-{i}",
            timestamp=start + timedelta(seconds=i),
            app=app,
            task="faq",
            model="m",
            latency_ms=100.0 + i,
            input_tokens=10,
            output_tokens=2,
            cost_usd=0.01,
        )
        for i in range(10)
    ]
    return summarize(
        "tumbling",
        start,
        start + timedelta(minutes=1),
        WindowKey(app, "faq", "m", "baseline"),
        calls,
    )


def test_stream_metrics_sends_windows_as_they_are_stored(env: Env) -> None:
    engine = create_db_engine(env.url)
    repo = WindowRepository(engine)
    repo.upsert([_window(0)])
    since = timestamp_pb2.Timestamp()
    since.FromDatetime(T0)
    replay = Reader(
        env.c.metrics.StreamMetrics(
            metrics_pb2.StreamMetricsRequest(app="shop", since=since), metadata=ADMIN
        )
    )
    live = Reader(
        env.c.metrics.StreamMetrics(metrics_pb2.StreamMetricsRequest(app="shop"), metadata=ADMIN)
    )
    try:
        assert replay.next().window_start.ToDatetime(tzinfo=UTC) == T0
        # Windows of the last hour (what the live stream looks back on) arrive as stored.
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        fresh = [_shifted(_window(m), now - timedelta(minutes=5 - m)) for m in (1, 2)]
        assert live.nothing_for(0.5)
        repo.upsert([*fresh, _window(3, app="other")])
        got = [live.next(), live.next()]
        assert [w.window_start.ToDatetime(tzinfo=UTC) for w in got] == [
            w.window_start for w in fresh
        ]
        assert got[0].count == 10
        assert live.nothing_for(0.6)  # the other app's window is not this stream's
    finally:
        replay.close()
        live.close()
        engine.dispose()


def _shifted(window: Any, start: datetime) -> Any:
    import msgspec

    return msgspec.structs.replace(
        window, window_start=start, window_end=start + timedelta(minutes=1)
    )


def _decision(i: int, app: str = "shop") -> Decision:
    return Decision(
        id=stable_id("grpc-stream", app, i),
        created_at=datetime.now(UTC),
        app=app,
        task="faq",
        strategy="model_selection",
        action={"model": "small"},
        rationale="cheaper and as good",
        evidence={"n": 400},
        confidence=0.9,
    )


def test_watch_decisions_sends_new_decisions_status_changes_and_verdicts(env: Env) -> None:
    env.rest.put(
        "/api/v1/config/shop", json={"tasks": {"faq": {"model": "big"}}}, headers=REST_ADMIN
    )
    engine = create_db_engine(env.url)
    with session_scope(engine) as session:
        save_decision(session, _decision(0), now=datetime.now(UTC))  # before the watch: not sent
    reader = Reader(
        env.c.optimization.WatchDecisions(
            optimization_pb2.WatchDecisionsRequest(app="shop"), metadata=ADMIN
        )
    )
    try:
        assert reader.nothing_for(0.5)
        with session_scope(engine) as session:
            save_decision(session, _decision(1, app="other"), now=datetime.now(UTC))
            save_decision(session, _decision(2), now=datetime.now(UTC))
        created = reader.next()
        assert (created.kind, created.decision.id, created.app) == (
            "decision.created",
            _decision(2).id,
            "shop",
        )
        env.c.optimization.Approve(
            optimization_pb2.ApproveRequest(decision_id=_decision(2).id), metadata=ADMIN
        )
        updated = reader.next()
        assert (updated.kind, updated.decision.status) == ("decision.updated", "canary")
        deployment_id = updated.decision.deployment_id
        check = MetricCheck(metric="error_rate", baseline=0.01, canary=0.01, passed=True)
        with session_scope(engine) as session:
            add_verdict(
                session,
                Verdict(
                    id=f"v-{uuid.uuid4().hex[:6]}",
                    deployment_id=deployment_id,
                    stage=0,
                    weight=0.01,
                    outcome="inconclusive",
                    window_start=T0,
                    window_end=T0 + timedelta(minutes=1),
                    checks=(check,),
                    reason="too few samples",
                    created_at=datetime.now(UTC),
                ),
            )
        verdict = reader.next()
        assert (verdict.kind, verdict.app, verdict.task) == ("verdict", "shop", "faq")
        assert verdict.verdict.deployment_id == deployment_id
        assert verdict.verdict.outcome == "inconclusive"
        assert verdict.verdict.checks[0].metric == "error_rate"
        assert reader.nothing_for(0.6)
    finally:
        reader.close()
        engine.dispose()


def test_optimization_session_answers_in_order_and_pushes_suggestions(env: Env) -> None:
    env.rest.put(
        "/api/v1/config/shop", json={"tasks": {"faq": {"model": "big"}}}, headers=REST_ADMIN
    )
    engine = create_db_engine(env.url)
    with session_scope(engine) as session:
        save_decision(session, _decision(10), now=datetime.now(UTC))
    outgoing: queue.Queue[optimization_pb2.SessionRequest | None] = queue.Queue()

    def requests() -> Iterator[optimization_pb2.SessionRequest]:
        while (item := outgoing.get()) is not None:
            yield item

    reader = Reader(env.c.optimization.OptimizationSession(requests(), metadata=ADMIN))
    send = outgoing.put
    try:
        send(
            optimization_pb2.SessionRequest(
                request_id="f", follow=optimization_pb2.SessionFollow(apps=["shop"])
            )
        )
        followed = reader.next()
        assert (followed.request_id, list(followed.answer.following)) == ("f", ["shop"])
        send(
            optimization_pb2.SessionRequest(
                request_id="q1",
                query=optimization_pb2.SessionQuery(app="shop", what="recommendations"),
            )
        )
        send(
            optimization_pb2.SessionRequest(
                request_id="q2", query=optimization_pb2.SessionQuery(app="shop", what="config")
            )
        )
        q1, q2 = reader.next(), reader.next()
        assert q1.request_id == "q1"
        assert [d.id for d in q1.answer.recommendations] == [_decision(10).id]
        assert (q2.request_id, q2.answer.config.version) == ("q2", 1)
        send(
            optimization_pb2.SessionRequest(
                request_id="bad",
                feedback=optimization_pb2.SessionFeedback(decision_id="nope", action="approve"),
            )
        )
        error = reader.next()
        assert (error.request_id, error.error.code) == ("bad", "NOT_FOUND")
        send(
            optimization_pb2.SessionRequest(
                request_id="ok",
                feedback=optimization_pb2.SessionFeedback(
                    decision_id=_decision(10).id, action="reject", reason="not now"
                ),
            )
        )
        rejected = reader.next()
        assert (rejected.request_id, rejected.answer.decision.status) == ("ok", "rejected")
        with session_scope(engine) as session:
            save_decision(session, _decision(11, app="other"), now=datetime.now(UTC))
            save_decision(session, _decision(12), now=datetime.now(UTC))
        pushed = reader.next()
        assert pushed.request_id == ""
        assert pushed.WhichOneof("kind") == "suggestion"
        assert pushed.suggestion.id == _decision(12).id
        send(None)  # the client ends its side: the server ends the call
        with pytest.raises(queue.Empty):
            reader.next(timeout=1.0)
        assert reader.call.code() == grpc.StatusCode.OK
    finally:
        reader.close()
        engine.dispose()


def test_optimization_session_checks_each_message_against_the_callers_roles(env: Env) -> None:
    engine = create_db_engine(env.url)
    viewer = ApiKeyRepository(engine).create("session-viewer", "viewer")
    engine.dispose()
    requests = iter(
        [
            optimization_pb2.SessionRequest(
                request_id="act",
                feedback=optimization_pb2.SessionFeedback(decision_id="x", action="approve"),
            ),
            optimization_pb2.SessionRequest(
                request_id="look",
                query=optimization_pb2.SessionQuery(app="shop", what="analysis"),
            ),
            optimization_pb2.SessionRequest(
                request_id="what", query=optimization_pb2.SessionQuery(app="shop", what="gossip")
            ),
        ]
    )
    replies = list(env.c.optimization.OptimizationSession(requests, metadata=key(viewer)))
    assert [(r.request_id, r.error.code) for r in replies] == [
        ("act", "PERMISSION_DENIED"),
        ("look", "PERMISSION_DENIED"),
        ("what", "INVALID_ARGUMENT"),
    ]


def test_a_reload_applies_new_limits_to_the_next_call_and_keeps_open_watches(env: Env) -> None:
    """SIGHUP/admin reload on a running server: streams stay open, the next call sees the limit."""
    env.rest.put(
        "/api/v1/config/shop", json={"tasks": {"faq": {"model": "big"}}}, headers=REST_ADMIN
    )
    reader = Reader(
        env.c.config.WatchConfig(config_pb2.WatchConfigRequest(app="shop"), metadata=ADMIN)
    )
    try:
        assert reader.next().version == 1
        old = env.running.resources.settings
        strict = old.with_overrides(
            api=updated(old.api, rate_limit__per_s=0.001, rate_limit__burst=1)
        )
        env.running.server.reload(strict)
        outcomes = []
        for _ in range(3):
            try:
                env.c.config.GetConfig(config_pb2.GetConfigRequest(app="shop"), metadata=ADMIN)
                outcomes.append("OK")
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)
                refused = exc
        # GCRA at 0.001/s with burst 1: at most the first call after the reload passes.
        assert outcomes[1:] == ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
        assert "rate limit of 0.001/s (burst 1)" in (refused.details() or "")
        # The key is now over its (shared) limit everywhere: change the config as the dataflow does.
        engine = create_db_engine(env.url)
        ConfigManager(engine).update(
            "shop", {"faq": TaskConfig(model="small")}, author="dataflow", reason="after reload"
        )
        engine.dispose()
        second = reader.next()
        assert (second.version, second.tasks["faq"].model) == (2, "small")
    finally:
        reader.close()
