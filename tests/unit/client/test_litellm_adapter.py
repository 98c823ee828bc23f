"""The LiteLLM adapter with the real ``litellm`` against a local OpenAI-compatible provider.

The config comes from the real REST app (in process, on SQLite); events are kept in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from llmopt_client import ListReporter, LlmoptClient, bucket

from api.rest.app import create_app
from core.settings import ApiSettings, Settings, StorageSettings
from storage.database import create_db_engine, migrate
from tests.fake_openai import FakeOpenAI, fake_openai

ADMIN = "unit-admin-key"
TASKS = {
    "classify": {
        "model": "openai/gpt-4o",
        "params": {"temperature": 0.1},
        "canary": {"version": 42, "weight": 0.5, "overrides": {"model": "openai/gpt-4o-mini"}},
    }
}


@pytest.fixture
def setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LlmoptClient, ListReporter, FakeOpenAI]]:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm's prices, offline
    settings = Settings(
        storage=StorageSettings(data_dir=str(tmp_path)),
        api=ApiSettings(
            bootstrap_admin_key=ADMIN, jwt_secret="a-unit-test-secret-long-enough-0123"
        ),
    )
    engine = create_db_engine(settings.storage.resolved_database_url)
    migrate(engine)
    engine.dispose()
    with TestClient(create_app(settings)) as http, fake_openai() as provider:
        put = http.put("/api/v1/config/lite", json={"tasks": TASKS}, headers={"x-api-key": ADMIN})
        assert put.status_code == 200, put.text
        reporter = ListReporter()
        llmopt = LlmoptClient("lite", http=http, api_key=ADMIN, reporter=reporter, start=False)
        assert llmopt.refresh()
        yield llmopt, reporter, provider
        llmopt.close()


def test_completion_and_acompletion_are_routed_and_reported(setup: Any) -> None:
    import litellm
    from llmopt_client.adapters import litellm as llm

    llmopt, reporter, provider = setup
    common = {"api_base": provider.base_url, "api_key": "test"}
    rids = [f"lite-{i}" for i in range(6)]
    for rid in rids:
        reply = llm.completion(
            llmopt, task="classify", request_id=rid, model="openai/app-default",
            messages=[{"role": "user", "content": "is this spam"}], **common,
        )  # fmt: skip
        assert reply.choices[0].message.content.startswith("answer from ")
    expected = {r: "gpt-4o-mini" if bucket(r) < 0.5 else "gpt-4o" for r in rids}
    assert [r["model"] for r in provider.requests] == [expected[r] for r in rids]
    assert {r["temperature"] for r in provider.requests} == {0.1}

    stream = llm.completion(
        llmopt, task="classify", request_id="lite-stream", model="x", stream=True,
        messages=[{"role": "user", "content": "one two"}], **common,
    )  # fmt: skip
    text = "".join((c.choices[0].delta.content or "") if c.choices else "" for c in stream)
    assert text.startswith("answer")  # a usage-only last chunk has no choices

    async def acalls() -> None:
        await llm.acompletion(
            llmopt, task="classify", request_id="lite-async", model="x",
            messages=[{"role": "user", "content": "a"}], **common,
        )  # fmt: skip

    asyncio.run(acalls())
    provider.fail_next.append(429)
    with pytest.raises(litellm.RateLimitError):
        llm.completion(
            llmopt, task="classify", request_id="lite-fail", model="x", num_retries=0,
            messages=[{"role": "user", "content": "a"}], **common,
        )  # fmt: skip

    calls = {e["request_id"]: e for e in reporter.events}
    for rid in rids:
        e = calls[rid]
        canary = expected[rid] == "gpt-4o-mini"
        assert (e["model"], e["provider"], e["variant"]) == (
            f"openai/{expected[rid]}", "openai", "canary" if canary else "baseline",
        )  # fmt: skip
        assert e["config_version"] == (42 if canary else 1)
        assert (e["input_tokens"], e["output_tokens"], e["status"]) == (3, 3, "ok")
        assert e["cost_usd"] > 0  # LiteLLM's own price
    assert calls["lite-stream"]["output_tokens"] == 3
    assert 0 < calls["lite-stream"]["ttft_ms"] <= calls["lite-stream"]["latency_ms"]
    assert calls["lite-async"]["status"] == "ok"
    assert (calls["lite-fail"]["status"], calls["lite-fail"]["error_type"]) == (
        "error", "rate_limited",
    )  # fmt: skip
