"""The simulator's OTLP sink: its export maps back to the same events through the collector."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from collector.otlp_decode import decode_body, media_type
from collector.otlp_mapping import map_request
from core.app_config import AppConfig, CanaryConfig, TaskConfig
from core.events import Feedback, LlmCall, decode_event
from simulator import Fleet, ModelProfile, Scenario, TaskProfile
from simulator.otlp import OtlpSink

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
FIELDS = (
    "app", "task", "model", "provider", "input_tokens", "output_tokens", "status", "error_type",
    "quality", "prompt_hash", "prompt_tokens_fixed", "config_version", "variant", "request_id",
)  # fmt: skip


def _events() -> list[dict[str, Any]]:
    task = TaskProfile(
        app="shop",
        task="classify",
        model="gpt-4o",
        models={"gpt-4o": ModelProfile(error_rate=0.05), "gpt-4o-mini": ModelProfile()},
        rate_per_s=20.0,
        feedback_share=0.5,
        feedback_delay_s=5.0,
        prompt_tokens_fixed=300,
    )
    fleet = Fleet(Scenario("t", (task,)), start=T0, seed=4)
    config = AppConfig(
        app="shop",
        version=3,
        tasks={
            "classify": TaskConfig(
                model="gpt-4o",
                canary=CanaryConfig(version=4, weight=0.3, overrides={"model": "gpt-4o-mini"}),
            )
        },
    )
    return [
        e
        for k in range(3)
        for e in fleet.calls(
            T0 + timedelta(seconds=10 * k), T0 + timedelta(seconds=10 * (k + 1)), {"shop": config}
        )
    ]


def test_export_maps_back_to_the_same_events() -> None:
    events = _events()
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/traces"
        assert media_type(request.headers["content-type"]) == "application/json"
        bodies.append(request.content)
        return httpx.Response(200, json={})

    sink = OtlpSink("http://collector:4318", batch=200, client=httpx.Client(
        transport=httpx.MockTransport(handler)
    ))  # fmt: skip
    sink.send(events)
    assert sink.delivered == len(events)
    assert len(bodies) == -(-len(events) // 200)
    mapped: list[dict[str, Any]] = []
    for body in bodies:
        mapped += map_request(decode_body(body, "application/json"), T0).events
    assert len(mapped) == len(events)
    calls = {e["request_id"]: e for e in events if e.get("kind") != "feedback"}
    got_calls = [decode_event(json.dumps(m).encode()) for m in mapped if m["kind"] == "llm_call"]
    assert len(got_calls) == len(calls)
    for got in got_calls:
        assert isinstance(got, LlmCall)
        sent = calls[got.request_id or ""]
        for field in FIELDS:
            assert getattr(got, field) == sent.get(field, getattr(got, field)), field
        assert abs(got.latency_ms - sent["latency_ms"]) < 1e-3
        assert got.timestamp == datetime.fromtimestamp(sent["timestamp"] / 1000, UTC)
        assert got.cost_usd == sent["cost_usd"]
    feedback = [e for e in events if e.get("kind") == "feedback"]
    got_feedback = [decode_event(json.dumps(m).encode()) for m in mapped if m["kind"] == "feedback"]
    assert len(feedback) == len(got_feedback) > 0
    by_request = {f["request_id"]: f for f in feedback}
    for fb in got_feedback:
        assert isinstance(fb, Feedback)
        sent = by_request[fb.request_id]
        assert (fb.app, fb.task, fb.quality) == ("shop", "classify", sent["quality"])
        assert fb.timestamp == datetime.fromtimestamp(sent["timestamp"] / 1000, UTC)
    again: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        again.append(request.content)
        return httpx.Response(200)

    OtlpSink("http://c:4318", batch=200, client=httpx.Client(
        transport=httpx.MockTransport(record)
    )).send(events)  # fmt: skip
    assert again == bodies  # a re-export carries the same ids: the processor deduplicates


def test_a_refused_export_is_retried_after_its_retry_after() -> None:
    answers = iter([httpx.Response(429, headers={"retry-after": "2"}), httpx.Response(200)])
    waited: list[float] = []
    sink = OtlpSink(
        "http://collector:4318/v1/traces",
        client=httpx.Client(transport=httpx.MockTransport(lambda _r: next(answers))),
        sleep=waited.append,
    )
    sink.send(_events()[:5])
    assert waited == [2.0]
    assert sink.delivered == 5
