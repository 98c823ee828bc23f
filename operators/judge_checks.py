"""The judge's checks, each a :class:`~core.decisions.MetricCheck` that explains itself.

Quality non-inferiority and harm tests over anytime-valid bands, Flagger-style gates, the
canary's own error-rate limit, and the decision's rollback-plan limits. Used by
:func:`operators.judge.judge`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from core.decisions import MetricCheck, RollbackLimit
from core.settings import CanarySettings
from core.stats import PairedQuality
from operators.sequential import Interval, always_valid_p, mean_and_variance, rho_for
from operators.side_summary import SideSummary

__all__ = [
    "error_rate_max",
    "gate",
    "harm_check",
    "percentile",
    "plan_checks",
    "quality_check",
]


def _stats() -> Any:
    """``scipy.stats``, imported on first use.

    It costs the dataflow ~0.5 s at start-up, and only the actuator needs it, only while a
    rollout is open.
    """
    import scipy.stats

    return scipy.stats


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fmt(x: float) -> str:
    return f"{x:+.4f}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def quality_check(
    band: Interval,
    base: SideSummary,
    canary: SideSummary,
    pairs: PairedQuality | None,
    tolerance: float,
    alpha: float,
) -> MetricCheck:
    """Non-inferiority of quality: passes above ``-tolerance``, fails below, else undecided."""
    rho = rho_for(max(tolerance, 1e-3), alpha)
    if not band.known:
        return MetricCheck(
            metric="quality",
            baseline=base.quality_mean,
            canary=canary.quality_mean,
            threshold=-tolerance,
            test="noninferiority_cs",
            baseline_n=base.quality_count,
            canary_n=canary.quality_count,
            detail="too few quality scores to judge: keep sampling",
        )
    passed = True if band.low > -tolerance else False if band.high < -tolerance else None
    p = always_valid_p(band.estimate + tolerance, band.information, rho)
    paired = f", {pairs.count} shadow pairs" if pairs is not None and pairs.count else ""
    word = {True: "not worse", False: "worse", None: "not yet shown either way"}[passed]
    return MetricCheck(
        metric="quality",
        baseline=base.quality_mean,
        canary=canary.quality_mean,
        threshold=-tolerance,
        test="noninferiority_cs" + ("+paired" if paired else ""),
        statistic=band.estimate,
        p_value=p,
        baseline_n=base.quality_count,
        canary_n=canary.quality_count,
        passed=passed,
        lower=_finite(band.low),
        upper=_finite(band.high),
        detail=(
            f"canary minus baseline {_fmt(band.estimate)}, anytime {1 - alpha:.0%} band "
            f"[{_fmt(band.low)}, {_fmt(band.high)}] from {base.quality_count} + "
            f"{canary.quality_count} scores{paired}: {word} than the tolerance "
            f"{tolerance:g} (promote when the band is above {-tolerance:g}, roll back when it "
            f"is below)"
        ),
    )


def harm_check(
    metric: str,
    band: Interval,
    margin: float,
    base_value: float | None,
    canary_value: float | None,
    ns: tuple[int, int],
    alpha: float,
    what: str,
) -> MetricCheck:
    """Fails when the band lies above ``margin``, passes when it lies below, else undecided."""
    rho = rho_for(max(margin, 1e-3), alpha)
    passed: bool | None = None
    p: float | None = None
    if band.known:
        passed = False if band.low > margin else True if band.high <= margin else None
        # always-valid p of "canary - baseline <= margin": below alpha when shown worse
        p = always_valid_p(band.estimate - margin, band.information, rho)
    return MetricCheck(
        metric=metric,
        baseline=base_value,
        canary=canary_value,
        threshold=margin,
        test="harm_cs",
        statistic=band.estimate if band.known else None,
        p_value=p,
        baseline_n=ns[0],
        canary_n=ns[1],
        passed=passed,
        lower=_finite(band.low) if band.known else None,
        upper=_finite(band.high) if band.known else None,
        detail=(
            f"{what}: band [{_fmt(band.low)}, {_fmt(band.high)}]; shown within the margin "
            f"when it lies below {margin:g}, fails when it lies above"
            if band.known
            else f"{what}: too few values"
        ),
    )


def gate(
    metric: str,
    baseline: float | None,
    canary: float | None,
    threshold: float,
    *,
    direction: Literal["max", "min"] = "max",
) -> MetricCheck:
    """A fixed limit on the canary's value (``max``: at most, ``min``: at least)."""
    passed = None
    if canary is not None:
        passed = canary <= threshold if direction == "max" else canary >= threshold
    word = "at most" if direction == "max" else "at least"
    return MetricCheck(
        metric=metric,
        baseline=baseline,
        canary=canary,
        threshold=threshold,
        test="gate",
        passed=passed,
        detail=f"canary must be {word} {threshold:g}",
    )


def percentile(values: tuple[float, ...], q: float) -> float | None:
    """The ``q``-th percentile of a latency sample, ``None`` when it is empty."""
    return float(np.percentile(values, q)) if values else None


def error_rate_max(canary: SideSummary, settings: CanarySettings) -> MetricCheck:
    """The band of the canary's error rate against ``max_error_rate``: above fails, below passes."""
    alpha, limit = settings.alpha, settings.max_error_rate
    mv = mean_and_variance(canary.calls, canary.errors, canary.errors)
    band = Interval.of(mv[0], mv[1], alpha, rho_for(limit, alpha)) if mv else Interval.unknown()
    return MetricCheck(
        metric="error_rate_max",
        baseline=None,
        canary=canary.error_rate,
        threshold=limit,
        test="harm_cs",
        canary_n=canary.calls,
        passed=(False if band.low > limit else True if band.high <= limit else None)
        if band.known
        else None,
        lower=_finite(band.low) if band.known else None,
        upper=_finite(band.high) if band.known else None,
        detail=f"the canary error rate's band [{_fmt(band.low)}, {_fmt(band.high)}]: shown "
        f"within when below {limit:g}, fails when above",
    )


def _limit_check(limit: RollbackLimit, **fields: Any) -> MetricCheck:
    return MetricCheck(
        metric=f"plan:{limit.metric}", baseline=None, threshold=limit.limit, **fields
    )


def _plan_check(limit: RollbackLimit, side: SideSummary, alpha: float) -> MetricCheck | None:
    """One rollback-plan limit on one side, tested so that noise alone rarely trips it.

    ``quality_mean`` limits (older decisions carry them) are not checked: they were fixed from
    the incumbent's early estimate; quality is judged against the concurrent baseline instead.
    """
    if limit.metric == "error_rate" and side.calls:
        result = _stats().binomtest(
            side.errors, side.calls, min(max(limit.limit, 0.0), 1.0), alternative="greater"
        )
        p = float(result.pvalue)
        return _limit_check(
            limit,
            canary=side.error_rate,
            test="binomial_above_limit",
            p_value=p,
            canary_n=side.calls,
            passed=not p < alpha,
            detail="fails when the error rate is significantly above the limit",
        )
    if limit.metric == "latency_p95_ms" and side.latency:
        over = sum(v > limit.limit for v in side.latency)
        result = _stats().binomtest(over, len(side.latency), 0.05, alternative="greater")
        p = float(result.pvalue)
        return _limit_check(
            limit,
            canary=percentile(side.latency, 95),
            test="binomial_exceedance",
            statistic=float(over),
            p_value=p,
            canary_n=len(side.latency),
            passed=not p < alpha,
            detail="fails when significantly more than 5 % of calls exceed the limit",
        )
    if limit.metric == "cost_per_success_usd" and side.cost_per_success is not None:
        value = side.cost_per_success
        return _limit_check(
            limit,
            canary=value,
            test="gate",
            canary_n=side.ok,
            passed=value <= limit.limit,
            detail="fails when the cost per success exceeds it",
        )
    if limit.metric == "quality_mean":
        return None
    return _limit_check(limit, canary=None, test="none", detail="no data for this limit")


def plan_checks(
    side: SideSummary, plan: Iterable[RollbackLimit], settings: CanarySettings
) -> tuple[MetricCheck, ...]:
    """The decision's rollback-plan limits checked on ``side`` (once it has enough calls)."""
    if side.calls < settings.min_samples:
        return ()
    checks = (_plan_check(limit, side, settings.alpha) for limit in plan)
    return tuple(c for c in checks if c is not None)
