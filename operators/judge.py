"""The canary judge: threshold gates plus baseline-vs-canary tests, as a pure function.

Given what each side served during a stage (:class:`SideSummary`, pooled from tumbling windows
split by ``variant``) the judge returns a verdict outcome and every metric's check:

- **gates** (Flagger-style): canary error rate, p95 and p99 latency, quality floor, cost per
  successful call against the baseline's;
- **tests**: Mann-Whitney U for latency (canary slower than the baseline by more than
  ``max_latency_increase``) and for quality (canary worse by more than ``quality_tolerance``),
  a two-proportion z-test for the error rate (canary above the baseline by more than
  ``max_error_rate_increase``), each one-sided at ``alpha``.

Fewer than ``min_samples`` calls on either side (or, when the baseline has quality scores, fewer
than ``min_samples`` scores on the canary side) is *inconclusive*: no data is never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

import msgspec
import numpy as np

from core.decisions import MetricCheck, RollbackLimit, VerdictOutcome
from core.settings import CanarySettings
from core.stats import WindowStats

__all__ = ["SideSummary", "judge", "plan_checks"]


def _stats() -> Any:
    """``scipy.stats``, imported on first use.

    It costs the dataflow ~0.5 s at start-up, and only the actuator needs it, only while a
    rollout is open.
    """
    import scipy.stats

    return scipy.stats


class SideSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What one side of a rollout served: counts, cost and value samples."""

    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    latency: tuple[float, ...] = ()
    quality: tuple[float, ...] = ()
    quality_count: int = 0

    @property
    def ok(self) -> int:
        """Successful calls."""
        return self.calls - self.errors

    @property
    def error_rate(self) -> float:
        """Errors over calls (0 without calls)."""
        return self.errors / self.calls if self.calls else 0.0

    @property
    def cost_per_success(self) -> float | None:
        """Spend over successful calls."""
        return self.cost_usd / self.ok if self.ok else None

    def merge(self, other: SideSummary) -> SideSummary:
        """Both sides' calls pooled."""
        return SideSummary(
            calls=self.calls + other.calls,
            errors=self.errors + other.errors,
            cost_usd=self.cost_usd + other.cost_usd,
            latency=self.latency + other.latency,
            quality=self.quality + other.quality,
            quality_count=self.quality_count + other.quality_count,
        )

    @classmethod
    def of(cls, windows: Iterable[WindowStats]) -> SideSummary:
        """Pool tumbling windows (their counts, costs and value samples)."""
        out = cls()
        for w in windows:
            out = out.merge(
                cls(
                    calls=w.count,
                    errors=w.error_count,
                    cost_usd=w.cost_usd,
                    latency=w.latency_sample,
                    quality=w.quality_sample,
                    quality_count=w.quality.count,
                )
            )
        return out


def _percentile(values: tuple[float, ...], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _mean(values: tuple[float, ...]) -> float | None:
    return float(np.mean(values)) if values else None


def _gate(
    metric: str,
    baseline: float | None,
    canary: float | None,
    threshold: float,
    *,
    direction: Literal["max", "min"] = "max",
) -> MetricCheck:
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


def _rank_test(
    metric: str,
    base: tuple[float, ...],
    canary: tuple[float, ...],
    shifted: np.ndarray,
    alternative: Literal["greater", "less"],
    threshold: float,
    settings: CanarySettings,
    detail: str,
) -> MetricCheck:
    """Mann-Whitney U of the canary against the baseline shifted by the tolerated effect."""
    if len(base) < 2 or len(canary) < 2:
        return MetricCheck(
            metric=metric,
            baseline=_mean(base),
            canary=_mean(canary),
            threshold=threshold,
            test="mann_whitney_u",
            baseline_n=len(base),
            canary_n=len(canary),
            detail="too few values to test",
        )
    result = _stats().mannwhitneyu(np.asarray(canary), shifted, alternative=alternative)
    p = float(result.pvalue)
    return MetricCheck(
        metric=metric,
        baseline=_mean(base),
        canary=_mean(canary),
        threshold=threshold,
        test="mann_whitney_u",
        statistic=float(result.statistic),
        p_value=p,
        baseline_n=len(base),
        canary_n=len(canary),
        passed=not p < settings.alpha,
        detail=detail,
    )


def _error_test(base: SideSummary, canary: SideSummary, settings: CanarySettings) -> MetricCheck:
    """One-sided two-proportion z-test with a margin: canary rate > baseline + margin."""
    margin = settings.max_error_rate_increase
    pc, pb = canary.error_rate, base.error_rate
    se = math.sqrt(pc * (1 - pc) / canary.calls + pb * (1 - pb) / base.calls)
    if se == 0.0:
        z, p = 0.0, 0.0 if pc - pb > margin else 1.0
    else:
        z = (pc - pb - margin) / se
        p = float(_stats().norm.sf(z))
    return MetricCheck(
        metric="error_rate",
        baseline=pb,
        canary=pc,
        threshold=margin,
        test="two_proportion_z",
        statistic=z,
        p_value=p,
        baseline_n=base.calls,
        canary_n=canary.calls,
        passed=not p < settings.alpha,
        detail=f"fails when the canary error rate exceeds the baseline's by more than {margin:g}",
    )


def judge(
    baseline: SideSummary, canary: SideSummary, settings: CanarySettings
) -> tuple[VerdictOutcome, tuple[MetricCheck, ...], str]:
    """Judge one stage: ``(outcome, checks, reason)``.

    A failed gate or test fails the stage; otherwise too few samples leave it inconclusive;
    otherwise it passes.
    """
    need = settings.min_samples
    samples = MetricCheck(
        metric="samples",
        baseline=float(baseline.calls),
        canary=float(canary.calls),
        threshold=float(need),
        test="minimum",
        baseline_n=baseline.calls,
        canary_n=canary.calls,
        passed=None if min(baseline.calls, canary.calls) < need else True,
        detail=f"each side needs at least {need} calls",
    )
    if samples.passed is None:
        return (
            "inconclusive",
            (samples,),
            f"too few calls to judge: baseline {baseline.calls}, canary {canary.calls}, "
            f"need {need} each",
        )
    base_cps, can_cps = baseline.cost_per_success, canary.cost_per_success
    cost_limit = (base_cps or 0.0) * (1 + settings.max_cost_increase)
    checks = [
        samples,
        _gate("error_rate_max", baseline.error_rate, canary.error_rate, settings.max_error_rate),
        _gate(
            "latency_p95_ms",
            _percentile(baseline.latency, 95),
            _percentile(canary.latency, 95),
            settings.max_p95_ms,
        ),
        _gate(
            "latency_p99_ms",
            _percentile(baseline.latency, 99),
            _percentile(canary.latency, 99),
            settings.max_p99_ms,
        ),
        _rank_test(
            "latency_ms",
            baseline.latency,
            canary.latency,
            np.asarray(baseline.latency) * (1 + settings.max_latency_increase),
            "greater",
            settings.max_latency_increase,
            settings,
            "fails when canary latencies rank above the baseline's scaled by "
            f"{1 + settings.max_latency_increase:g}",
        ),
        _error_test(baseline, canary, settings),
    ]
    if base_cps is not None and can_cps is not None:
        checks.append(_gate("cost_per_success_usd", base_cps, can_cps, cost_limit))
    blocking = ""
    if baseline.quality:
        if settings.quality_floor > 0:
            checks.append(
                _gate(
                    "quality_floor",
                    _mean(baseline.quality),
                    _mean(canary.quality),
                    settings.quality_floor,
                    direction="min",
                )
            )
        if canary.quality_count < need:
            blocking = f"canary has {canary.quality_count} quality scores, needs {need}"
        checks.append(
            _rank_test(
                "quality",
                baseline.quality,
                canary.quality,
                np.asarray(baseline.quality) - settings.quality_tolerance,
                "less",
                settings.quality_tolerance,
                settings,
                "fails when canary quality ranks below the baseline's minus "
                f"{settings.quality_tolerance:g}",
            )
        )
    failed = [c.metric for c in checks if c.passed is False]
    if failed:
        return "fail", tuple(checks), "failed: " + ", ".join(failed)
    if blocking:
        return "inconclusive", tuple(checks), blocking
    return "pass", tuple(checks), "every gate and test passed"


def _limit_check(limit: RollbackLimit, **fields: Any) -> MetricCheck:
    return MetricCheck(
        metric=f"plan:{limit.metric}", baseline=None, threshold=limit.limit, **fields
    )


def _plan_check(limit: RollbackLimit, side: SideSummary, alpha: float) -> MetricCheck:
    """One rollback-plan limit on one side, tested so that noise alone rarely trips it."""
    if limit.metric == "quality_mean" and len(side.quality) >= 2:
        values = np.asarray(side.quality)
        result = _stats().ttest_1samp(values, limit.limit, alternative="less")
        p = float(result.pvalue)
        return _limit_check(
            limit,
            canary=float(values.mean()),
            test="t_test_below_limit",
            statistic=float(result.statistic),
            p_value=p,
            canary_n=len(values),
            passed=not p < alpha,
            detail="fails when the mean is significantly below the limit",
        )
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
            canary=_percentile(side.latency, 95),
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
    return _limit_check(limit, canary=None, test="none", detail="no data for this limit")


def plan_checks(
    side: SideSummary, plan: Iterable[RollbackLimit], settings: CanarySettings
) -> tuple[MetricCheck, ...]:
    """The decision's rollback-plan limits checked on ``side`` (once it has enough calls)."""
    if side.calls < settings.min_samples:
        return ()
    return tuple(_plan_check(limit, side, settings.alpha) for limit in plan)
