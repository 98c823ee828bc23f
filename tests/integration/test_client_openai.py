"""The SDK with the real ``openai`` client, against a local fake provider and the real optimizer.

The optimizer is the REST app on a real server (PostgreSQL, Redis, the tansu broker): the SDK
reads the config over HTTP (ETag polling), and its telemetry goes through
``POST /api/v1/telemetry`` into Kafka, where the test reads it back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from llmopt_client import LlmoptClient, bucket
from llmopt_client.adapters.openai import wrap_openai

from api.rest.app import create_app
from tests.fake_openai import FakeOpenAI, fake_openai
from tests.integration.test_collector import read_topic
from tests.unit.api.rest_support import ADMIN_KEY, migrated_database, rest_settings, running_server

pytestmark = pytest.mark.integration
APP = f"sdk-app-{uuid.uuid4().hex[:8]}"
ADMIN = {"x-api-key": ADMIN_KEY}
TASKS = {
    "classify": {
        "model": "gpt-4o",
        "provider": "openai",
        "params": {"temperature": 0.3},
        "canary": {"version": 99, "weight": 0.5, "overrides": {"model": "gpt-4o-mini"}},
        "shadow": {"model": "gpt-4.1-nano", "share": 1.0},
    },
    "cached": {"model": "gpt-4o-mini", "cache": {"ttl_s": 600}},
}


@pytest.fixture
def optimizer(redis_url: str, kafka_bootstrap: str, topics: dict[str, str]) -> Iterator[str]:
    with migrated_database() as url:
        settings = rest_settings(url, redis_url, kafka_bootstrap=kafka_bootstrap, topics=topics)
        with running_server(create_app(settings)) as base:
            put = httpx.put(
                f"{base}/api/v1/config/{APP}",
                json={"tasks": TASKS, "reason": "sdk test"},
                headers=ADMIN,
                timeout=30,
            )
            assert put.status_code == 200, put.text
            yield base


@pytest.fixture
def provider() -> Iterator[FakeOpenAI]:
    with fake_openai() as fake:
        yield fake


def _events(kafka: str, topic: str, count: int) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v, _ in read_topic(kafka, topic, count, timeout=60)]


def test_openai_calls_are_routed_applied_and_reported(
    optimizer: str, provider: FakeOpenAI, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    llmopt = LlmoptClient(APP, api_url=optimizer, api_key=ADMIN_KEY, poll_interval=0.2)
    config = llmopt.wait_for_config(timeout=60)
    assert config is not None
    version = config.version
    raw = openai.OpenAI(base_url=provider.base_url, api_key="test", max_retries=0)
    client = wrap_openai(raw, llmopt)
    rids = [f"req-{i}" for i in range(12)]
    for rid in rids:
        reply = client.chat.completions.create(
            task="classify",
            request_id=rid,
            model="app-default",
            messages=[{"role": "user", "content": "is this spam"}],
        )
        assert reply.choices[0].message.content.startswith("answer from ")
    expected = {rid: "gpt-4o-mini" if bucket(rid) < 0.5 else "gpt-4o" for rid in rids}
    assert [r["model"] for r in provider.requests] == [expected[r] for r in rids]
    assert {r["temperature"] for r in provider.requests} == {0.3}
    assert set(expected.values()) == {"gpt-4o", "gpt-4o-mini"}  # both sides served

    stream = client.chat.completions.create(
        task="classify", request_id="req-stream", model="x", stream=True,
        messages=[{"role": "user", "content": "one two three"}],
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("answer")
    assert provider.requests[-1]["stream_options"] == {"include_usage": True}

    provider.fail_next.append(429)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            task="classify",
            request_id="req-fail",
            model="x",
            messages=[{"role": "user", "content": "x"}],
        )
    for _ in range(2):  # the second is answered by the SDK's response cache
        client.chat.completions.create(
            task="cached", request_id=None, model="x", messages=[{"role": "user", "content": "hi"}]
        )
    assert (
        sum(
            1
            for r in provider.requests
            if r["model"] == "gpt-4o-mini" and r["messages"][0]["content"] == "hi"
        )
        == 1
    )

    route = llmopt.route("classify", "req-0")
    assert route.shadow is not None
    shadow = llmopt.shadow(
        route,
        run=lambda model: raw.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "is this spam"}]
        ),
        score=lambda answer: 1.0 if "gpt-4.1-nano" in answer.choices[0].message.content else 0.0,
        served_score=0.0,
    )
    assert shadow is not None
    assert shadow.result(timeout=60) == 1.0
    llmopt.feedback("req-1", 0.75, task="classify")

    async def async_calls() -> None:
        aclient = wrap_openai(
            openai.AsyncOpenAI(base_url=provider.base_url, api_key="t", max_retries=0), llmopt
        )
        await aclient.chat.completions.create(
            task="classify", request_id="req-async", model="x",
            messages=[{"role": "user", "content": "a b"}],
        )  # fmt: skip
        astream = await aclient.chat.completions.create(
            task="classify", request_id="req-astream", model="x", stream=True,
            messages=[{"role": "user", "content": "a b c d"}],
        )  # fmt: skip
        async for _ in astream:
            pass

    asyncio.run(async_calls())
    assert llmopt.flush(timeout=60)
    stats = llmopt.config_stats
    llmopt.close()
    assert stats.failures == 0
    assert stats.fetches >= 1

    # 12 routed + stream + failure + 2 cached-task calls + 2 async; feedback x2 (shadow, late).
    events = _events(kafka_bootstrap, topics["telemetry"], 20)
    calls = {
        e["request_id"]: e for e in events if e["kind"] == "llm_call" and e["task"] == "classify"
    }
    for rid in rids:
        e = calls[rid]
        canary = expected[rid] == "gpt-4o-mini"
        assert (e["app"], e["model"], e["provider"], e["status"]) == (
            APP,
            expected[rid],
            "openai",
            "ok",
        )
        assert e["variant"] == ("canary" if canary else "baseline")
        assert e["config_version"] == (99 if canary else version)
        assert (e["input_tokens"], e["output_tokens"], e["finish_reason"]) == (3, 3, "stop")
        assert e["latency_ms"] > 0
    for rid in ("req-stream", "req-astream"):
        assert calls[rid]["output_tokens"] == 3
        assert 0 < calls[rid]["ttft_ms"] <= calls[rid]["latency_ms"]
    assert (calls["req-fail"]["status"], calls["req-fail"]["error_type"]) == (
        "error",
        "rate_limited",
    )
    cached = [e for e in events if e["kind"] == "llm_call" and e["task"] == "cached"]
    assert sorted(e.get("attributes", {}).get("cache_hit", False) for e in cached) == [False, True]
    feedback = {e["request_id"]: e for e in events if e["kind"] == "feedback"}
    assert (feedback["req-0"]["quality"], feedback["req-0"]["shadow_model"]) == (
        0.0,
        "gpt-4.1-nano",
    )
    assert feedback["req-0"]["shadow_quality"] == 1.0
    assert feedback["req-1"]["quality"] == 0.75
    assert "shadow_model" not in feedback["req-1"]


def test_the_config_is_followed_with_304s_and_served_static_when_the_optimizer_is_away(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = f"sdk-static-{uuid.uuid4().hex[:8]}"  # Redis (the shared config cache) outlives a db
    with migrated_database() as url:
        settings = rest_settings(url, redis_url)
        with running_server(create_app(settings)) as base:
            llmopt = LlmoptClient(app, api_url=base, api_key=ADMIN_KEY, start=False)
            assert llmopt.route("classify", "r").model is None  # no config yet: app defaults
            assert llmopt.refresh()
            assert (llmopt.config, llmopt.config_stats.missing) == (None, 1)
            put = httpx.put(
                f"{base}/api/v1/config/{app}", json={"tasks": TASKS}, headers=ADMIN, timeout=30
            )
            assert put.status_code == 200
            assert llmopt.refresh()
            assert llmopt.refresh()
            stats = llmopt.config_stats
            assert (stats.fetches, stats.not_modified, stats.version) == (1, 1, 1)
            changed = {**TASKS, "cached": {"model": "gpt-4.1-nano"}}
            httpx.put(
                f"{base}/api/v1/config/{app}", json={"tasks": changed}, headers=ADMIN, timeout=30
            ).raise_for_status()
            assert llmopt.refresh()
            assert (stats.fetches, stats.version) == (2, 2)
            assert llmopt.route("cached", "r").model == "gpt-4.1-nano"
        # The server is gone: the last config stays in use, the failures are counted and logged.
        logger = logging.getLogger("llmopt_client")
        logger.disabled = False  # the server's logging set-up (same process) may disable it
        logger.addHandler(caplog.handler)  # and replace the root's handlers
        try:
            assert not llmopt.refresh()
            assert not llmopt.refresh()
        finally:
            logger.removeHandler(caplog.handler)
        assert (stats.failures, stats.consecutive_failures, stats.stale) == (2, 2, True)
        assert llmopt.route("cached", "r").model == "gpt-4.1-nano"
        assert llmopt.route("classify", "r").config_version in (2, 99)
        unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(unreachable) == 1  # logged once per outage, not per poll
        llmopt.close()


def test_the_kafka_reporter_produces_contract_events(
    kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    from llmopt_client import RoutingTable, decode_config
    from llmopt_client.kafka import KafkaReporter

    reporter = KafkaReporter(kafka_bootstrap, topics["telemetry"])
    llmopt = LlmoptClient("kafka-app", api_url="http://127.0.0.1:9", reporter=reporter, start=False)
    raw = json.dumps({"app": "kafka-app", "version": 4, "tasks": {"t": {"model": "m"}}}).encode()
    llmopt._watcher.table = RoutingTable(decode_config(raw))  # as if fetched
    route = llmopt.route("t", "k-1")
    llmopt.record(route, latency_ms=12.5, input_tokens=5, output_tokens=6, ttft_ms=3.0)
    llmopt.feedback("k-1", 0.5)
    assert reporter.flush(60)
    llmopt.close()
    records = read_topic(kafka_bootstrap, topics["telemetry"], 2)
    assert {k for k, _, _ in records} == {b"kafka-app"}
    call, fb = sorted((json.loads(v) for _, v, _ in records), key=lambda e: e["kind"] != "llm_call")
    assert (call["model"], call["config_version"], call["ttft_ms"], call["request_id"]) == (
        "m", 4, 3.0, "k-1",
    )  # fmt: skip
    assert (fb["kind"], fb["request_id"], fb["quality"]) == ("feedback", "k-1", 0.5)
    assert (reporter.dropped, reporter.failed) == (0, 0)
