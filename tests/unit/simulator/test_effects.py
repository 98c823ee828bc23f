"""The simulated effects of the cache, rate-limit, batching and prompt overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from core.app_config import (
    AppConfig,
    BatchingConfig,
    CacheConfig,
    CanaryConfig,
    PromptConfig,
    RateLimitConfig,
    TaskConfig,
)
from simulator import Fleet, ModelProfile, Scenario, TaskProfile
from simulator.effects import (
    AnswerCache,
    RateLimits,
    answer_version,
    form_batches,
    prompt_effect,
)

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
BIG = "gpt-4o"
_KEY = ("model", "prompt")


def _cache(
    times: list[float], pool: list[int], *, ttl: float = 60.0, lifetime: float | None = None
) -> Any:
    n = len(times)
    return AnswerCache().serve(
        ("shop", "faq", "baseline"),
        {"model": BIG},
        (ttl, _KEY),
        np.array(times),
        np.ones(n, dtype=bool),
        np.array(pool),
        np.zeros(n, dtype=bool),
        lifetime,
    )


def test_answer_versions_change_once_per_lifetime_at_each_prompts_phase() -> None:
    assert answer_version(3, 1e9, None) == 0
    versions = [answer_version(3, 1000.0 + t, 100.0) for t in range(0, 400, 10)]
    assert versions == sorted(versions)
    assert versions[-1] - versions[0] in (3, 4)  # 390 s over a 100 s lifetime


def test_cache_hits_repeats_within_the_ttl_and_only_those() -> None:
    found = _cache([0.0, 10.0, 30.0, 61.0, 62.0, 70.0], [1, 1, 2, 1, 1, 2], ttl=60.0)
    # prompt 1 stored at 0 (until 60): hit at 10, miss at 61 (stored again), hit at 62;
    # prompt 2 stored at 30 (until 90): hit at 70
    assert found.hit.tolist() == [False, True, False, False, True, True]
    assert not found.stale.any()


def test_a_failed_answer_is_not_stored() -> None:
    found = AnswerCache().serve(
        ("shop", "faq", "baseline"), {"model": BIG}, (60.0, _KEY),
        np.array([0.0, 1.0, 2.0]), np.ones(3, dtype=bool), np.array([5, 5, 5]),
        np.array([True, False, False]), None,
    )  # fmt: skip
    assert found.hit.tolist() == [False, False, True]


def test_hits_after_the_answer_changed_are_stale() -> None:
    times = [float(t) for t in range(0, 300, 5)]
    found = _cache(times, [7] * len(times), ttl=300.0, lifetime=100.0)
    stored_version = answer_version(7, 0.0, 100.0)
    expected = [answer_version(7, t, 100.0) != stored_version for t in times[1:]]
    assert found.hit.tolist() == [False] + [True] * (len(times) - 1)
    assert found.stale.tolist() == [False, *expected]
    assert 0 < sum(expected) < len(expected)


def test_the_key_separates_models() -> None:
    cache = AnswerCache()
    args = (np.array([0.0]), np.ones(1, dtype=bool), np.array([1]), np.zeros(1, dtype=bool), None)
    side = ("shop", "faq", "baseline")
    assert not cache.serve(side, {"model": "a"}, (60.0, _KEY), *args).hit[0]
    later = (np.array([1.0]), *args[1:])
    assert not cache.serve(side, {"model": "b"}, (60.0, _KEY), *later).hit[0]
    assert cache.serve(side, {"model": "a"}, (60.0, _KEY), *later).hit[0]


def test_batches_close_when_full_or_after_the_wait() -> None:
    times = np.array([0.0, 0.001, 0.002, 0.003, 0.100, 0.130])
    b = form_batches(times, max_batch_size=3, max_wait_ms=20.0)
    assert b.size.tolist() == [3, 3, 3, 1, 1, 1]
    np.testing.assert_allclose(b.wait_s, [0.002, 0.001, 0.0, 0.020, 0.020, 0.020])
    np.testing.assert_allclose(b.latency_factor(0.1), [1.2, 1.2, 1.2, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="max_batch_size"):
        form_batches(times, 0, 20.0)


def _pace(
    times: list[float], *, client: Any = None, provider: float | None = None, share: float = 1.0,
    timeout: float = 30.0,
) -> Any:  # fmt: skip
    t = np.array(times)
    return RateLimits().pace(
        ("shop", "faq", "baseline"), t, np.full(len(t), 100), share, client, provider, timeout
    )


def test_the_provider_answers_429_beyond_its_rate() -> None:
    paced = _pace([0.0] * 8 + [1.0] * 8, provider=5.0)
    # one second of burst (5 calls), then 5 more per second
    assert paced.throttled.tolist() == [False] * 5 + [True] * 3 + [False] * 5 + [True] * 3
    assert not paced.wait_s.any()
    assert not paced.timed_out.any()


def test_a_client_limit_trades_429s_for_queueing() -> None:
    paced = _pace([0.0] * 8, client=(4.0, None, 1), provider=5.0)
    assert not paced.throttled.any()
    np.testing.assert_allclose(paced.wait_s, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])


def test_a_limit_below_the_sustained_rate_starves_the_task() -> None:
    times = [i / 10 for i in range(600)]  # 10 calls/s for a minute
    paced = _pace(times, client=(5.0, None, 1), timeout=10.0)
    assert paced.timed_out.sum() > 200
    assert paced.wait_s.max() == pytest.approx(10.0)


def test_limits_scale_with_the_sides_share() -> None:
    # a canary at 50 % under a 4/s limit gets 2/s, and the whole burst of 2
    paced = _pace([0.0] * 4, client=(4.0, None, 2), share=0.5)
    np.testing.assert_allclose(paced.wait_s, [0.0, 0.0, 0.5, 1.0])


def test_a_tokens_per_minute_limit_paces_by_tokens() -> None:
    # 100 tokens per call, 6,000 tokens/min = 100 tokens/s: one call per second
    paced = _pace([0.0] * 3, client=(None, 6000.0, 1))
    np.testing.assert_allclose(paced.wait_s, [0.0, 1.0, 2.0])


def test_prompt_effects() -> None:
    cached = prompt_effect(1000, None, None, True, -0.1)
    assert (cached.fixed_tokens, cached.cached_tokens, cached.quality_delta) == (1000, 1000, 0.0)
    trimmed = prompt_effect(1000, "x" * 400, "x" * 100, False, -0.1)
    assert (trimmed.fixed_tokens, trimmed.cached_tokens, trimmed.quality_delta) == (250, 0, -0.1)
    same = prompt_effect(1000, "x" * 400, "x" * 400, False, -0.1)
    assert (same.fixed_tokens, same.trimmed) == (1000, False)


# -- through the fleet --------------------------------------------------------------------


def _fleet(model: ModelProfile | None = None, **task: Any) -> Fleet:
    profile = TaskProfile(
        app="shop", task="faq", model=BIG, models={BIG: model or ModelProfile()}, **task
    )
    return Fleet(Scenario("effects", (profile,), seed=3), start=T0)


def _serve(fleet: Fleet, minutes: int = 2, **overrides: Any) -> list[dict[str, Any]]:
    config = AppConfig(app="shop", version=1, tasks={"faq": TaskConfig(model=BIG, **overrides)})
    out: list[dict[str, Any]] = []
    for m in range(minutes * 6):
        at = T0 + timedelta(seconds=10 * m)
        out += fleet.calls(at, at + timedelta(seconds=10), {"shop": config})
    return [e for e in out if e.get("kind") != "feedback"]


def _quality(events: list[dict[str, Any]], hits: bool) -> float:
    q = [
        e["quality"]
        for e in events
        if "quality" in e and bool(e.get("attributes", {}).get("cache_hit")) == hits
    ]
    return float(np.mean(q))


def test_the_cache_makes_repeats_free_and_fast() -> None:
    events = _serve(_fleet(repeat_ratio=0.6, distinct_prompts=20), cache=CacheConfig(ttl_s=600))
    hits = [e for e in events if e.get("attributes", {}).get("cache_hit")]
    assert 0.45 < len(hits) / len(events) < 0.65
    assert all(e["cost_usd"] == 0.0 and e["latency_ms"] <= 10.0 for e in hits)
    assert abs(_quality(events, True) - _quality(events, False)) < 0.02


def test_stale_cached_answers_cost_quality() -> None:
    fleet = _fleet(repeat_ratio=0.6, distinct_prompts=20, answer_lifetime_s=60.0)
    events = _serve(fleet, minutes=4, cache=CacheConfig(ttl_s=600))
    assert _quality(events, True) < _quality(events, False) - 0.15
    ledger = fleet.ledgers[("shop", "faq")]
    assert ledger.served_quality < ledger.calls * 0.85 - 10


def test_the_provider_throttles_and_the_client_limit_queues_instead() -> None:
    model = ModelProfile(provider_rps=15.0, error_rate=0.0)
    free = _serve(_fleet(model, rate_per_s=20.0))
    limited = [e for e in free if e.get("error_type") == "rate_limited"]
    assert 0.15 < len(limited) / len(free) < 0.35
    assert all(e["cost_usd"] == 0.0 and e["output_tokens"] == 0 for e in limited)
    queued = _serve(
        _fleet(model, rate_per_s=20.0, queue_timeout_s=5.0),
        rate_limit=RateLimitConfig(requests_per_s=15.0, burst=15),
    )
    kinds = {e.get("error_type") for e in queued}
    assert "rate_limited" not in kinds
    assert "timeout" in kinds
    base = np.median([e["latency_ms"] for e in free if e["status"] == "ok"])
    waited = np.median([e["latency_ms"] for e in queued if e["status"] == "ok"])
    assert waited > base + 1000


def test_batching_adds_its_wait_and_takes_the_discount() -> None:
    model = ModelProfile(batch_discount=0.4, error_rate=0.0)
    plain = _serve(_fleet(model, rate_per_s=40.0))
    batched = _serve(
        _fleet(model, rate_per_s=40.0), batching=BatchingConfig(max_batch_size=8, max_wait_ms=50)
    )
    assert len(plain) == len(batched)  # same draws
    extra = [b["latency_ms"] - p["latency_ms"] for p, b in zip(plain, batched, strict=True)]
    assert min(extra) >= 0
    assert max(extra) <= 50.0 + 1e-6
    ratio = sum(b["cost_usd"] for b in batched) / sum(p["cost_usd"] for p in plain)
    assert 0.6 <= ratio < 0.7  # most calls share a batch at 40/s and 50 ms


def test_prompt_caching_and_a_trimmed_template() -> None:
    fleet = _fleet(prompt_tokens_fixed=2000, template="t" * 1000, trimmed_quality_delta=-0.1)
    own = _serve(fleet, prompt=PromptConfig(template="t" * 1000))
    cached = _serve(
        _fleet(prompt_tokens_fixed=2000, template="t" * 1000),
        prompt=PromptConfig(template="t" * 1000, prompt_cache=True),
    )
    trimmed = _serve(
        _fleet(prompt_tokens_fixed=2000, template="t" * 1000, trimmed_quality_delta=-0.1),
        prompt=PromptConfig(template="t" * 500),
    )
    assert {e["prompt_tokens_fixed"] for e in own} == {2000}
    assert {e.get("cache_read_tokens") for e in cached} == {2000}
    assert sum(e["cost_usd"] for e in cached) < 0.8 * sum(e["cost_usd"] for e in own)
    assert {e["prompt_tokens_fixed"] for e in trimmed} == {1000}
    assert _quality(trimmed, False) < _quality(own, False) - 0.07


def test_a_canary_serves_its_overrides_at_its_share() -> None:
    model = ModelProfile(provider_rps=20.0, error_rate=0.0)
    canary = CanaryConfig(
        version=2, weight=0.5, overrides={"rate_limit": {"requests_per_s": 18.0, "burst": 18}}
    )
    config = AppConfig(app="shop", version=1, tasks={"faq": TaskConfig(model=BIG, canary=canary)})
    fleet = _fleet(model, rate_per_s=24.0)
    events: list[dict[str, Any]] = []
    for m in range(12):
        at = T0 + timedelta(seconds=10 * m)
        events += fleet.calls(at, at + timedelta(seconds=10), {"shop": config})
    sides = {v: [e for e in events if e.get("variant") == v] for v in ("baseline", "canary")}
    share = {
        v: sum(e.get("error_type") == "rate_limited" for e in es) / len(es)
        for v, es in sides.items()
    }
    assert share["baseline"] > 0.1
    assert share["canary"] == 0.0
