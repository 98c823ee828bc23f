"""The canary judge: gates, rank tests, the error-rate test and no-data-is-never-a-pass."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import CanarySettings
from operators.judge import SideSummary, judge

CANARY = CanarySettings()


def _side(
    rng: np.random.Generator,
    n: int,
    *,
    latency: float = 400.0,
    quality: float = 0.85,
    error_rate: float = 0.01,
    cost: float = 0.001,
) -> SideSummary:
    errors = int(rng.binomial(n, error_rate))
    return SideSummary(
        calls=n,
        errors=errors,
        cost_usd=cost * n,
        latency=tuple(rng.lognormal(np.log(latency), 0.3, n).tolist()),
        quality=tuple(np.clip(rng.normal(quality, 0.08, n), 0, 1).tolist()),
        quality_count=n,
    )


def test_too_few_calls_is_inconclusive_never_a_pass() -> None:
    rng = np.random.default_rng(1)
    outcome, checks, reason = judge(_side(rng, 500), _side(rng, 99), CANARY)
    assert outcome == "inconclusive"
    assert checks[0].metric == "samples"
    assert checks[0].passed is None
    assert reason == "too few calls to judge: baseline 500, canary 99, need 100 each"
    assert judge(SideSummary(), SideSummary(), CANARY)[0] == "inconclusive"


def test_identical_sides_pass_with_every_check_recorded() -> None:
    rng = np.random.default_rng(2)
    outcome, checks, _ = judge(_side(rng, 256), _side(rng, 256), CANARY)
    assert outcome == "pass"
    by_metric = {c.metric: c for c in checks}
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
    assert by_metric["latency_ms"].p_value is not None
    assert by_metric["quality"].test == "mann_whitney_u"
    assert by_metric["error_rate"].test == "two_proportion_z"


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
    outcome, checks, reason = judge(_side(rng, 256), _side(rng, 256, **canary), CANARY)
    assert outcome == "fail"
    assert failed in reason
    check = next(c for c in checks if c.metric == failed)
    assert check.passed is False


def test_a_better_cheaper_canary_passes() -> None:
    rng = np.random.default_rng(4)
    base = _side(rng, 256, cost=0.002)
    outcome, _, _ = judge(base, _side(rng, 256, cost=0.0005, latency=300.0), CANARY)
    assert outcome == "pass"


def test_missing_canary_quality_holds_the_stage() -> None:
    rng = np.random.default_rng(5)
    canary = _side(rng, 256)
    canary = SideSummary(
        calls=canary.calls, errors=canary.errors, cost_usd=canary.cost_usd, latency=canary.latency
    )
    outcome, _, reason = judge(_side(rng, 256), canary, CANARY)
    assert outcome == "inconclusive"
    assert reason == "canary has 0 quality scores, needs 100"


def test_false_rollback_rate_on_identical_distributions_is_at_most_alpha() -> None:
    fails = 0
    runs = 400
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        outcome, _, _ = judge(_side(rng, 200), _side(rng, 200), CANARY)
        fails += outcome == "fail"
    assert fails / runs <= CANARY.alpha


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(100, 300), scale=st.floats(0.5, 20))
def test_scaling_both_sides_latency_does_not_change_the_latency_verdict(
    seed: int, n: int, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    base, canary = _side(rng, n), _side(rng, n, latency=430.0)

    def scaled(side: SideSummary) -> SideSummary:
        return SideSummary(
            calls=side.calls,
            errors=side.errors,
            cost_usd=side.cost_usd,
            latency=tuple(v * scale for v in side.latency),
            quality=side.quality,
            quality_count=side.quality_count,
        )

    relaxed = CanarySettings(max_p95_ms=1e12, max_p99_ms=1e12)
    one = {c.metric: c for c in judge(base, canary, relaxed)[1]}["latency_ms"]
    two = {c.metric: c for c in judge(scaled(base), scaled(canary), relaxed)[1]}["latency_ms"]
    assert one.passed == two.passed
    assert one.p_value == pytest.approx(two.p_value, rel=1e-9, abs=1e-12)


def test_rollback_plan_limits_are_tested_not_compared_point_blank() -> None:
    from core.decisions import RollbackLimit
    from operators.judge import plan_checks

    rng = np.random.default_rng(7)
    side = _side(rng, 300, latency=400.0, quality=0.85, error_rate=0.01, cost=0.001)
    plan = (
        RollbackLimit(metric="quality_mean", limit=0.83, direction="min"),
        RollbackLimit(metric="latency_p95_ms", limit=1000.0),
        RollbackLimit(metric="error_rate", limit=0.02),
        RollbackLimit(metric="cost_per_success_usd", limit=0.0011),
    )
    checks = {c.metric: c for c in plan_checks(side, plan, CANARY)}
    assert all(c.passed for c in checks.values()), checks
    assert checks["plan:latency_p95_ms"].test == "binomial_exceedance"
    broken = (
        RollbackLimit(metric="quality_mean", limit=0.9, direction="min"),
        RollbackLimit(metric="latency_p95_ms", limit=400.0),
        RollbackLimit(metric="cost_per_success_usd", limit=0.0005),
    )
    assert [c.passed for c in plan_checks(side, broken, CANARY)] == [False, False, False]
    assert plan_checks(_side(rng, 50), plan, CANARY) == ()


def test_rollback_plan_rarely_trips_on_a_canary_exactly_at_its_baseline() -> None:
    from core.decisions import RollbackLimit
    from operators.judge import plan_checks

    plan = (
        RollbackLimit(metric="quality_mean", limit=0.85 - 0.02, direction="min"),
        RollbackLimit(metric="error_rate", limit=0.01 + 0.01),
    )
    trips = 0
    for seed in range(300):
        side = _side(np.random.default_rng(seed), 150)
        trips += any(c.passed is False for c in plan_checks(side, plan, CANARY))
    assert trips / 300 <= CANARY.alpha
