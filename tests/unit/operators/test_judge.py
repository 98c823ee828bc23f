"""The canary judge: gates, anytime-valid tests, one quality question, no data is never a pass."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.decisions import RollbackLimit
from core.settings import CanarySettings
from core.stats import PairedQuality
from operators.judge import guarded_metrics, judge, plan_checks
from operators.side_summary import LATENCY_SAMPLE, SideSummary
from tests.side_samples import pairs, side

CANARY = CanarySettings()
TOL = 0.02


def test_too_few_calls_is_inconclusive_never_a_pass() -> None:
    rng = np.random.default_rng(1)
    j = judge([(side(rng, 500), side(rng, 99))], CANARY, tolerance=TOL)
    assert j.outcome == "inconclusive"
    assert j.checks[0].metric == "samples"
    assert j.checks[0].passed is None
    assert j.reason == "too few calls to judge: baseline 500, canary 99, need 100 each"
    assert judge([], CANARY, tolerance=TOL).outcome == "inconclusive"


def test_an_equal_canary_passes_with_every_check_explained() -> None:
    rng = np.random.default_rng(2)
    j = judge([(side(rng, 3000), side(rng, 3000))], CANARY, tolerance=TOL)
    assert j.outcome == "pass", j.reason
    by_metric = {c.metric: c for c in j.checks}
    assert set(by_metric) == {
        "samples",
        "error_rate_max",
        "latency_p95_ms",
        "latency_p99_ms",
        "latency_ms",
        "error_rate",
        "cost_per_success_usd",
        "quality",
    }
    q = by_metric["quality"]
    assert q.test == "noninferiority_cs"
    assert q.threshold == -TOL
    assert q.p_value is not None
    assert q.p_value < CANARY.alpha
    assert (q.baseline_n, q.canary_n) == (3000, 3000)
    assert "band" in q.detail
    assert "promote when the band is above -0.02" in q.detail
    assert j.quality is not None
    assert j.quality.low > -TOL
    assert q.lower == pytest.approx(j.quality.low)
    assert q.upper == pytest.approx(j.quality.high)


@pytest.mark.parametrize(
    ("canary", "failed"),
    [
        ({"quality": 0.75}, "quality"),
        ({"latency": 600.0}, "latency_ms"),
        ({"error_rate": 0.08}, "error_rate"),
        ({"cost": 0.002}, "cost_per_success_usd"),
    ],
)
def test_a_worse_canary_fails_on_its_metric(canary: dict[str, float], failed: str) -> None:
    rng = np.random.default_rng(3)
    j = judge([(side(rng, 2000), side(rng, 2000, **canary))], CANARY, tolerance=TOL)
    assert j.outcome == "fail"
    assert failed in j.reason
    check = next(c for c in j.checks if c.metric == failed)
    assert check.passed is False


def test_binary_drop_is_seen_where_a_rank_test_saw_none() -> None:
    """0/1 scores: 49 % against 90 % at 400 calls each fails (a shifted rank test passed it)."""
    rng = np.random.default_rng(4)
    base = side(rng, 400, quality=0.90, binary=True)
    canary = side(rng, 400, quality=0.49, binary=True)
    j = judge([(base, canary)], CANARY, tolerance=TOL)
    assert j.outcome == "fail"
    assert "quality" in j.reason


def test_an_equal_binary_canary_on_few_scores_keeps_sampling() -> None:
    rng = np.random.default_rng(5)
    j = judge([(side(rng, 300, binary=True), side(rng, 150, binary=True))], CANARY, tolerance=TOL)
    assert j.outcome == "inconclusive"
    assert j.reason.startswith("quality not yet shown within the tolerance")


def test_shadow_pairs_decide_what_two_groups_cannot() -> None:
    rng = np.random.default_rng(6)
    strata = [
        (side(rng, 4000, quality=0.8, binary=True), side(rng, 4000, quality=0.8, binary=True))
    ]
    assert judge(strata, CANARY, tolerance=TOL).outcome == "inconclusive"
    shadow = pairs(rng, 20000, served=0.8, shadow=0.8, rho=0.9)
    j = judge(strata, CANARY, tolerance=TOL, pairs=shadow)
    assert j.outcome == "pass", j.reason
    q = next(c for c in j.checks if c.metric == "quality")
    assert q.test == "noninferiority_cs+paired"
    assert "20000 shadow pairs" in q.detail
    worse = pairs(rng, 20000, served=0.8, shadow=0.7, rho=0.9)
    assert judge(strata, CANARY, tolerance=TOL, pairs=worse).outcome == "fail"


def test_strata_keep_a_trend_from_passing_for_a_difference() -> None:
    """Quality falls for both sides while the canary's weight rises: not the canary's fault."""
    rng = np.random.default_rng(7)
    early = (side(rng, 9000, quality=0.9), side(rng, 1000, quality=0.9))
    late = (side(rng, 5000, quality=0.8), side(rng, 5000, quality=0.8))
    pooled_base, pooled_canary = early[0].merge(late[0]), early[1].merge(late[1])
    naive = judge([(pooled_base, pooled_canary)], CANARY, tolerance=TOL)
    assert naive.outcome == "fail"  # a 0.03 gap made of the trend alone
    assert judge([early, late], CANARY, tolerance=TOL).outcome == "pass"


def test_no_quality_signal_judges_the_gates_alone() -> None:
    rng = np.random.default_rng(8)

    def silent(s: SideSummary) -> SideSummary:
        return msgspec.structs.replace(s, quality_count=0, quality_sum=0.0, quality_sq_sum=0.0)

    silent_strata = [(silent(side(rng, 3000)), silent(side(rng, 3000)))]
    j = judge(silent_strata, CANARY, tolerance=TOL)
    assert j.outcome == "pass"
    assert j.quality is None
    assert "quality" not in {c.metric for c in j.checks}


def test_merge_adds_sums_and_keeps_a_bounded_latency_sample() -> None:
    rng = np.random.default_rng(9)
    a, b = side(rng, 5000), side(rng, 1000, latency=800.0)
    both = a.merge(b)
    assert both.calls == 6000
    assert both.quality_count == 6000
    assert both.quality_sum == pytest.approx(a.quality_sum + b.quality_sum)
    assert len(both.latency) <= LATENCY_SAMPLE
    # the sample keeps each side's share of calls: ~1/6 of it from the slow side
    slow = sum(v > 1500 for v in both.latency) / len(both.latency)
    assert slow < 0.1
    assert SideSummary().merge(a) == a
    pa = PairedQuality(3, 2.0, 1.0, 1.0)
    merged = SideSummary(shadow={"m": pa}).merge(SideSummary(shadow={"m": pa}))
    assert merged.shadow["m"] == PairedQuality(6, 4.0, 2.0, 2.0)


@settings(max_examples=80, deadline=None)
@given(
    n_b=st.integers(0, 5000),
    n_c=st.integers(0, 5000),
    qb=st.floats(0, 1),
    qc=st.floats(0, 1),
    errors=st.floats(0, 1),
    paired=st.integers(0, 500),
)
def test_the_judge_answers_any_sums_without_raising(
    n_b: int, n_c: int, qb: float, qc: float, errors: float, paired: int
) -> None:
    def s(n: int, q: float) -> SideSummary:
        return SideSummary(
            calls=n,
            errors=int(n * errors),
            cost_usd=0.001 * n,
            quality_count=n,
            quality_sum=q * n,
            quality_sq_sum=q * n,
            log_latency_n=float(n),
            log_latency_sum=6.0 * n,
            log_latency_sq_sum=36.0 * n,
            latency=(400.0,) * min(n, 3),
        )

    pq = PairedQuality(paired, qb * paired, qc * paired, abs(qc - qb) * paired)
    j = judge([(s(n_b, qb), s(n_c, qc))], CANARY, tolerance=TOL, pairs=pq)
    assert j.outcome in ("pass", "fail", "inconclusive")
    for c in j.checks:
        assert c.p_value is None or 0 <= c.p_value <= 1
        assert c.statistic is None or not math.isnan(c.statistic)


def test_rollback_plan_limits_are_tested_and_quality_limits_left_to_the_judge() -> None:
    rng = np.random.default_rng(10)
    s = side(rng, 300, latency=400.0, error_rate=0.01, cost=0.001)
    plan = (
        RollbackLimit(metric="quality_mean", limit=0.99, direction="min"),
        RollbackLimit(metric="latency_p95_ms", limit=1000.0),
        RollbackLimit(metric="error_rate", limit=0.02),
        RollbackLimit(metric="cost_per_success_usd", limit=0.0011),
    )
    checks = {c.metric: c for c in plan_checks(s, plan, CANARY)}
    assert set(checks) == {"plan:latency_p95_ms", "plan:error_rate", "plan:cost_per_success_usd"}
    assert all(c.passed for c in checks.values()), checks
    broken = (
        RollbackLimit(metric="latency_p95_ms", limit=400.0),
        RollbackLimit(metric="cost_per_success_usd", limit=0.0005),
    )
    assert [c.passed for c in plan_checks(s, broken, CANARY)] == [False, False]
    assert plan_checks(side(rng, 50), plan, CANARY) == ()


def test_only_the_metrics_a_change_can_hurt_must_be_shown() -> None:
    """Equal sides, 0/1 scores at 50 %: latency and errors are decided at 1,000 calls each,
    quality (a proportion at its widest) is not; that holds a cache, not a rate limit."""
    rng = np.random.default_rng(5)
    strata = [
        (side(rng, 1000, binary=True, quality=0.5), side(rng, 1000, binary=True, quality=0.5))
    ]
    cache = judge(strata, CANARY, tolerance=TOL, guarded=guarded_metrics("caching"))
    assert cache.outcome == "inconclusive"
    assert cache.reason.startswith("quality not yet shown within the tolerance")
    limit = judge(strata, CANARY, tolerance=TOL, guarded=guarded_metrics("rate_limiting"))
    assert limit.outcome == "pass", limit.reason
    assert limit.reason == (
        "every gate and test passed (error_rate, latency_ms shown within their margins)"
    )
    quality = next(c for c in limit.checks if c.metric == "quality")
    assert quality.passed is None  # still checked and shown with its numbers
    assert quality.lower is not None


def test_a_change_still_fails_on_a_metric_it_was_not_expected_to_hurt() -> None:
    rng = np.random.default_rng(3)
    strata = [(side(rng, 2000), side(rng, 2000, quality=0.75))]
    j = judge(strata, CANARY, tolerance=TOL, guarded=guarded_metrics("batching"))
    assert j.outcome == "fail"
    assert j.reason == "failed: quality"


def test_every_strategy_guards_its_metrics() -> None:
    assert guarded_metrics("model_selection") == {"quality", "latency_ms", "error_rate"}
    assert guarded_metrics("caching") == {"quality"}
    assert guarded_metrics("prompt_optimization") == {"quality"}
    assert guarded_metrics("rate_limiting") == {"error_rate", "latency_ms"}
    assert guarded_metrics("batching") == {"latency_ms"}
    assert guarded_metrics("unknown") == guarded_metrics("model_selection")
