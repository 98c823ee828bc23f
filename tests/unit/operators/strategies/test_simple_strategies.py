"""Caching, rate limiting, batching and prompt optimisation on constructed windows."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from core.app_config import CacheConfig, PromptConfig, TaskConfig, apply_overrides
from core.decisions import stable_id
from core.insights import APP_WIDE
from core.settings import AnalyzerSettings, DecisionSettings, ProviderLimit
from operators.pricing import PriceTable
from operators.strategies import REWRITE_KEY, Batching, Caching, PromptOptimization, RateLimiting
from operators.strategies.period import Memory
from operators.strategies.rate_limiting import RateLimitState
from tests.unit.operators.strategies.helpers import APP, MINUTE, T0, TASK, insight, period, window

A = AnalyzerSettings()
D = DecisionSettings()

# --- caching ------------------------------------------------------------------------------------


def test_cache_with_ttl_from_the_repeat_interval() -> None:
    w = window(count=200, distinct=100, repeat_ratio=0.5)
    _, d = Caching(D, A).propose(Memory(), period([w]))
    assert d is not None
    # a prompt repeats every 60 s * 100 / 200 = 30 s; -ln(0.05) * 30 s = 89.9 s
    assert d.action == {
        "cache": {"enabled": True, "ttl_s": 90.0, "key_fields": list(CacheConfig().key_fields)}
    }
    assert d.evidence["mean_repeat_interval_s"] == 30.0
    assert d.evidence["ttl_raw_s"] == pytest.approx(-math.log(0.05) * 30)
    assert d.evidence["hit_rate_source"] == "windows"
    assert d.evidence["traffic_flags"] == "unchecked"
    assert d.expected_impact.cost_change_pct == -50.0
    assert d.confidence > 0.99
    assert d.id == stable_id(APP, TASK, "caching", T0.isoformat(), "cache:90")
    apply_overrides(TaskConfig(), d.action)


def test_cache_uses_the_pattern_insight_estimate() -> None:
    found = insight("pattern", "cache_potential", {"estimated_hit_rate": 0.4})
    w = window(count=200, distinct=100, repeat_ratio=0.5)
    _, d = Caching(D, A).propose(Memory(), period([w], [found]))
    assert d is not None
    assert d.evidence["estimated_hit_rate"] == 0.4
    assert d.evidence["insight_id"] == found.id


@pytest.mark.parametrize(
    ("w", "cfg"),
    [
        (window(count=99, distinct=50, repeat_ratio=0.5), None),  # too few calls
        (window(count=200, distinct=180, repeat_ratio=0.1), None),  # too few repeats
        (window(count=200, distinct=100, repeat_ratio=0.5), TaskConfig(params={"tools": True})),
        (window(count=200, distinct=100, repeat_ratio=0.5), TaskConfig(params={"multi_turn": 1})),
        (window(count=200, distinct=100, repeat_ratio=0.5), TaskConfig(cache=CacheConfig())),
    ],
)
def test_no_cache_proposal(w: object, cfg: TaskConfig | None) -> None:
    assert Caching(D, A).propose(Memory(), period([w], config=cfg))[1] is None  # type: ignore[list-item]


def test_cache_is_not_proposed_again_within_repropose_after() -> None:
    s = Caching(D, A)
    state, d = s.propose(Memory(), period([window(distinct=100, repeat_ratio=0.5)]))
    assert d is not None
    later = window(distinct=100, repeat_ratio=0.5, start=T0 + MINUTE)
    assert s.propose(state, period([later]))[1] is None


# --- rate limiting ------------------------------------------------------------------------------


def test_rate_limited_errors_set_a_bounded_limit() -> None:
    w = window(count=200, errors={"rate_limited": 20}, tokens=(60_000, 6_000))
    state, d = RateLimiting(D, A).propose(RateLimitState(), period([w]))
    assert d is not None
    # one step above the observed 3.33/s (a queue that drains); 330 tokens a call
    assert d.action == {"rate_limit": {"requests_per_s": 4.0, "tokens_per_min": 79200, "burst": 4}}
    assert d.evidence["trigger"] == "rate_limited"
    assert d.evidence["rate_limited_share"] == 0.1
    assert d.confidence > 0.99
    assert state == RateLimitState(at=T0 + MINUTE, requests_per_s=4.0, tokens_per_min=79200)
    apply_overrides(TaskConfig(), d.action)


def test_sustained_overload_proposes_no_limit() -> None:
    # 40 of 200 calls rate-limited: more than 1 - 1/1.2 of them, the provider's rate is below
    # the task's: a limit that stops the 429s would starve the task
    w = window(count=200, errors={"rate_limited": 40}, tokens=(60_000, 6_000))
    state, d = RateLimiting(D, A).propose(RateLimitState(), period([w]))
    assert d is None
    assert state == RateLimitState()


def test_a_first_limit_against_429s_is_the_providers_known_rate() -> None:
    limits = {"openai": ProviderLimit(requests_per_s=5.0, tokens_per_min=100_000.0)}
    s = RateLimiting(DecisionSettings(provider_limits=limits), A)
    w = window(model="gpt-4o", count=200, errors={"rate_limited": 20}, tokens=(60_000, 6_000))
    state, d = s.propose(RateLimitState(), period([w]))
    assert d is not None
    # 3.33 calls/s throttled in bursts: the queue sends at the provider's 5/s (no step bound:
    # there is no limit to step from); 330 tokens a call
    assert d.action == {"rate_limit": {"requests_per_s": 5.0, "tokens_per_min": 99_000, "burst": 5}}
    assert d.evidence["first_limit"] is True
    # spaced: nothing within rate_limit.spacing; later the same limit again is no change
    w2 = window(model="gpt-4o", count=200, errors={"rate_limited": 20}, start=T0 + 10 * MINUTE)
    assert s.propose(state, period([w2]))[1] is None
    w3 = window(model="gpt-4o", count=200, errors={"rate_limited": 20}, start=T0 + 40 * MINUTE)
    assert s.propose(state, period([w3]))[1] is None


@pytest.mark.parametrize(
    "limit",
    [ProviderLimit(requests_per_s=1.0), ProviderLimit(tokens_per_min=1000.0)],
    ids=["requests", "tokens"],
)
def test_a_provider_rate_below_the_tasks_proposes_no_limit(limit: ProviderLimit) -> None:
    s = RateLimiting(DecisionSettings(provider_limits={"openai": limit}), A)
    w = window(model="gpt-4o", count=200, errors={"rate_limited": 20}, tokens=(60_000, 6_000))
    assert s.propose(RateLimitState(), period([w]))[1] is None


def test_budget_projection_slows_the_task() -> None:
    budget = insight(
        "cost", "daily_budget_projection",
        {"projected_usd": 200.0, "budget_usd": 100.0}, task=APP_WIDE,
    )  # fmt: skip
    w = window(count=300)
    _, d = RateLimiting(D, A).propose(RateLimitState(), period([w], [budget]))
    assert d is not None
    assert d.evidence["trigger"] == "budget"
    assert d.evidence["budget_factor"] == 0.5
    assert d.action["rate_limit"]["requests_per_s"] == 4.0  # 5/s halved, bounded to -20 %
    assert d.expected_impact.cost_change_pct == pytest.approx(-20.0)


@pytest.mark.parametrize(
    "w",
    [window(count=99, errors={"rate_limited": 50}), window(count=500, errors={"timeout": 50})],
)
def test_no_rate_limit_without_a_trigger(w: object) -> None:
    assert RateLimiting(D, A).propose(RateLimitState(), period([w]))[1] is None  # type: ignore[list-item]


# --- batching -----------------------------------------------------------------------------------


def batching_insight(peak: float, p95: float, samples: float = 300) -> object:
    return insight(
        "pattern", "batching_potential",
        {"peak_rate_per_s": peak, "latency_p95_ms": p95, "samples": samples,
         "mean_output_tokens": 40.0},
    )  # fmt: skip


def test_batching_from_rate_and_headroom() -> None:
    found = batching_insight(peak=200.0, p95=960.0)
    _, d = Batching(D, A).propose(Memory(), period([window()], [found]))  # type: ignore[list-item]
    assert d is not None
    # headroom 1000 - 960 = 40 ms, half of it = 20 ms < 50 ms; 200/s * 20 ms = 4 calls
    assert d.action == {"batching": {"max_batch_size": 4, "max_wait_ms": 20.0}}
    assert d.evidence["headroom_ms"] == 40.0
    assert d.expected_impact.latency_change_pct == pytest.approx(100 * 20 / 960)
    assert d.confidence == pytest.approx(1 - 0.5**3)
    apply_overrides(TaskConfig(), d.action)


def test_batching_size_is_capped() -> None:
    found = batching_insight(peak=5000.0, p95=100.0)
    _, d = Batching(D, A).propose(Memory(), period([window()], [found]))  # type: ignore[list-item]
    assert d is not None
    assert d.action["batching"] == {"max_batch_size": 32, "max_wait_ms": 50.0}


@pytest.mark.parametrize(
    "found", [None, batching_insight(peak=30.0, p95=300.0), batching_insight(400.0, 300.0, 50)]
)
def test_no_batching(found: object) -> None:
    insights = [] if found is None else [found]
    assert Batching(D, A).propose(Memory(), period([window()], insights))[1] is None  # type: ignore[arg-type]


# --- prompt optimisation ------------------------------------------------------------------------

PROMPT_WINDOW = dict(model="gpt-4o-mini", tokens=(100_000, 10_000), cost=0.021,
                     fixed=(80_000, 100_000))  # fmt: skip


def test_prompt_cache_when_the_fixed_prompt_dominates_the_cost() -> None:
    s = PromptOptimization(D, A, PriceTable())
    _, d = s.propose(Memory(), period([window(**PROMPT_WINDOW)]))  # type: ignore[arg-type]
    assert d is not None
    assert d.action == {"prompt": {"prompt_cache": True}}
    # fixed: 0.8 * 100k tokens * $0.15/M = $0.012 of $0.021; cache reads cost half the input
    assert d.evidence["fixed_cost_share"] == pytest.approx(0.012 / 0.021)
    assert d.expected_impact.cost_change_pct == pytest.approx(-100 * 0.012 / 0.021 * 0.5)
    apply_overrides(TaskConfig(), d.action)


def test_rewrite_is_requested_only_when_allowed() -> None:
    already = window(**PROMPT_WINDOW, cache_read=50_000)  # type: ignore[arg-type]
    assert PromptOptimization(D, A, PriceTable()).propose(Memory(), period([already]))[1] is None
    s = PromptOptimization(DecisionSettings(prompt_rewrite=True), A, PriceTable())
    cfg = TaskConfig(model="gpt-4o-mini", prompt=PromptConfig(prompt_cache=True, template_id="t1"))
    _, d = s.propose(Memory(), period([already], config=cfg))
    assert d is not None
    assert d.action == {
        "prompt": {"prompt_cache": True, "template": None, "template_id": "t1"},
        REWRITE_KEY: "requested",
    }
    overrides = {k: v for k, v in d.action.items() if k != REWRITE_KEY}
    apply_overrides(cfg, overrides)


def test_no_prompt_change_when_the_fixed_share_is_small() -> None:
    w = window(model="gpt-4o-mini", tokens=(100_000, 10_000), cost=0.021, fixed=(20_000, 100_000))
    assert PromptOptimization(D, A, PriceTable()).propose(Memory(), period([w]))[1] is None


def test_spacing_durations_are_settings() -> None:
    assert D.repropose_after == timedelta(hours=1)
    assert D.rate_limit.spacing == timedelta(minutes=30)
