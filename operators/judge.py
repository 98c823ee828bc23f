"""The canary judge: gates plus anytime-valid baseline-vs-canary tests, as a pure function.

Given what each side served (:class:`SideSummary`, per stratum: one stratum per canary weight, so a
trend over time cannot masquerade as a difference when the weight changes) the judge returns a
:class:`Judgement`: the outcome, every metric's check with its numbers, and the quality band.

- **Quality** is one question, asked once: *is the candidate worse than the incumbent by more
  than the tolerance* (``decisions.quality_tolerance``)? The burden of proof is on the change:
  the check passes when the anytime-valid band of ``q_canary - q_baseline``
  (:mod:`operators.sequential`) lies above ``-tolerance``, fails when it lies below, and
  otherwise keeps the stage *inconclusive* (keep sampling). Scores are means of values in
  [0, 1], so binary scores are proportions and the variance is the data's own. When an
  application reports shadow scores (the candidate run on the same requests as the incumbent),
  the paired differences give a second band; each band is then built at ``alpha / 2`` and the
  judge uses both (a union bound), so shadow data can only tighten the verdict.
- **Error rate** and **latency** ask the same kind of question, with the same burden of proof:
  the canary's error rate above the baseline's by more than ``max_error_rate_increase``, its
  error rate above ``max_error_rate``, its (log) latency above the baseline's by more than
  ``max_latency_increase``? A band above the margin fails; a band below it passes; until one
  or the other, the change is not promoted (an error regression must not be promoted and left
  to the post-promotion watch).
- **Gates** (Flagger-style): p95 and p99 latency, cost per success against the baseline's,
  the quality floor.

**Which metrics a change must clear.** The burden of proof lies on the change for the metrics it
can hurt (:data:`GUARDED`): quality, latency and errors for a model; quality for a cache (stale
answers) and a prompt change; errors and latency for a rate limit (429s against queueing);
latency for batching. Those must be *shown* within their margins before a promotion; the
others are still checked and fail the change when shown worse, but an undecided band does not
hold it. Cost (the cost-per-success gate), the canary's own error-rate limit and the gates
apply to every change.

Guarantee (each band at ``alpha``, looks every period): a candidate truly worse than the
tolerance is promoted with probability at most ``alpha``; an equal candidate is failed by the
quality test with probability at most ``alpha`` (asymptotically, plug-in variances; checked by
simulation in ``tests/unit/operators/test_sequential.py``). Fewer than ``min_samples`` calls on
either side is *inconclusive*: no data is never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.decisions import MetricCheck, VerdictOutcome
from core.settings import CanarySettings
from core.stats import PairedQuality
from operators.judge_checks import (
    error_rate_max,
    gate,
    harm_check,
    percentile,
    plan_checks,
    quality_check,
)
from operators.sequential import Interval, mean_and_variance, rho_for
from operators.side_summary import SideSummary, Stratum

__all__ = [
    "GUARDED",
    "Judgement",
    "guarded_metrics",
    "judge",
    "paired_interval",
    "plan_checks",
    "quality_interval",
]


_ALL = frozenset({"quality", "latency_ms", "error_rate"})
GUARDED: dict[str, frozenset[str]] = {
    "model_selection": _ALL,
    "caching": frozenset({"quality"}),
    "prompt_optimization": frozenset({"quality"}),
    "rate_limiting": frozenset({"error_rate", "latency_ms"}),
    "batching": frozenset({"latency_ms"}),
}
"""The metrics each strategy's change must show within their margins (it can hurt them)."""


def guarded_metrics(strategy: str) -> frozenset[str]:
    """The metrics a change of ``strategy`` must clear (all three for an unknown strategy)."""
    return GUARDED.get(strategy, _ALL)


@dataclass(frozen=True, slots=True)
class Judgement:
    """The judge's answer: outcome, checks, reason, and the quality band it used (if any)."""

    outcome: VerdictOutcome
    checks: tuple[MetricCheck, ...]
    reason: str
    quality: Interval | None = None


def _difference(
    strata: Sequence[Stratum],
    values: Any,
    alpha: float,
    rho: float,
) -> Interval:
    """Band of ``canary - baseline`` pooled over strata by inverse variance."""
    out = Interval.unknown()
    for base, canary in strata:
        b, c = mean_and_variance(*values(base)), mean_and_variance(*values(canary))
        if b is None or c is None:
            continue
        out = out.combine(Interval.of(c[0] - b[0], c[1] + b[1], alpha, rho), alpha, rho)
    return out


def _quality_sums(s: SideSummary) -> tuple[float, float, float]:
    return s.quality_count, s.quality_sum, s.quality_sq_sum


def _error_sums(s: SideSummary) -> tuple[float, float, float]:
    return s.calls, s.errors, s.errors


def _latency_sums(s: SideSummary) -> tuple[float, float, float]:
    return s.log_latency_n, s.log_latency_sum, s.log_latency_sq_sum


def quality_interval(strata: Sequence[Stratum], tolerance: float, alpha: float) -> Interval:
    """Anytime-valid band of the canary's quality minus the baseline's."""
    return _difference(strata, _quality_sums, alpha, rho_for(max(tolerance, 1e-3), alpha))


def paired_interval(pairs: PairedQuality, tolerance: float, alpha: float) -> Interval:
    """Anytime-valid band of the shadow model's quality minus the served one's, same requests."""
    n = pairs.count
    diff_sum = pairs.shadow_sum - pairs.served_sum
    mv = mean_and_variance(n, diff_sum, pairs.diff_sq_sum)
    if mv is None:
        return Interval.unknown()
    return Interval.of(mv[0], mv[1], alpha, rho_for(max(tolerance, 1e-3), alpha))


def judge(
    strata: Sequence[Stratum],
    settings: CanarySettings,
    *,
    tolerance: float,
    pairs: PairedQuality | None = None,
    guarded: frozenset[str] = _ALL,
) -> Judgement:
    """Judge a rollout on everything both sides served so far (one stratum per weight).

    A failed gate or test fails; otherwise too few calls, or a ``guarded`` question (quality,
    latency, error rate: the metrics the change can hurt) not yet answered, leave it
    inconclusive; otherwise it passes.
    """
    canary = SideSummary()
    for _, c in strata:
        canary = canary.merge(c)
    base = SideSummary.pooled([b for b, _ in strata])
    need = settings.min_samples
    samples = MetricCheck(
        metric="samples",
        baseline=float(base.calls),
        canary=float(canary.calls),
        threshold=float(need),
        test="minimum",
        baseline_n=base.calls,
        canary_n=canary.calls,
        passed=None if min(base.calls, canary.calls) < need else True,
        detail=f"each side needs at least {need} calls",
    )
    alpha = settings.alpha
    shadow = pairs is not None and pairs.count >= 2
    band_alpha = alpha / 2 if shadow else alpha
    quality = quality_interval(strata, tolerance, band_alpha)
    if shadow and pairs is not None:
        quality = quality.intersect(paired_interval(pairs, tolerance, band_alpha))
    has_quality = bool(base.quality_count or canary.quality_count or shadow)
    if samples.passed is None:
        return Judgement(
            "inconclusive",
            (samples,),
            f"too few calls to judge: baseline {base.calls}, canary {canary.calls}, "
            f"need {need} each",
            quality if has_quality else None,
        )
    base_cps, can_cps = base.cost_per_success, canary.cost_per_success
    lat_margin = math.log1p(settings.max_latency_increase)
    err_margin = max(settings.max_error_rate_increase, 1e-3)
    checks = [
        samples,
        error_rate_max(canary, settings),
        gate(
            "latency_p95_ms",
            percentile(base.latency, 95),
            percentile(canary.latency, 95),
            settings.max_p95_ms,
        ),
        gate(
            "latency_p99_ms",
            percentile(base.latency, 99),
            percentile(canary.latency, 99),
            settings.max_p99_ms,
        ),
        harm_check(
            "latency_ms",
            _difference(strata, _latency_sums, alpha, rho_for(lat_margin, alpha)),
            lat_margin,
            _geo_mean(base),
            _geo_mean(canary),
            (base.calls, canary.calls),
            alpha,
            "ln(1 + latency) canary minus baseline",
        ),
        harm_check(
            "error_rate",
            _difference(strata, _error_sums, alpha, rho_for(err_margin, alpha)),
            settings.max_error_rate_increase,
            base.error_rate,
            canary.error_rate,
            (base.calls, canary.calls),
            alpha,
            "canary error rate minus baseline's",
        ),
    ]
    if base_cps is not None and can_cps is not None:
        limit = base_cps * (1 + settings.max_cost_increase)
        checks.append(gate("cost_per_success_usd", base_cps, can_cps, limit))
    blocking = ""
    judged_quality: Interval | None = None
    if has_quality:
        judged_quality = quality
        if settings.quality_floor > 0:
            checks.append(
                gate(
                    "quality_floor",
                    base.quality_mean,
                    canary.quality_mean,
                    settings.quality_floor,
                    direction="min",
                )
            )
        check = quality_check(quality, base, canary, pairs if shadow else None, tolerance, alpha)
        checks.append(check)
        if check.passed is None and "quality" in guarded:
            blocking = f"quality not yet shown within the tolerance: {check.detail}"
    failed = [c.metric for c in checks if c.passed is False]
    if failed:
        return Judgement("fail", tuple(checks), "failed: " + ", ".join(failed), judged_quality)
    unshown = [
        c.metric
        for c in checks
        if c.test == "harm_cs" and c.passed is None and c.metric in guarded | {"error_rate_max"}
    ]
    if unshown:
        shown = f"not yet shown within their margins: {', '.join(unshown)}"
        blocking = f"{blocking}; {shown}" if blocking else shown
    if blocking:
        return Judgement("inconclusive", tuple(checks), blocking, judged_quality)
    shown = ", ".join(sorted(guarded))
    return Judgement(
        "pass",
        tuple(checks),
        f"every gate and test passed ({shown} shown within their margins)",
        judged_quality,
    )


def _geo_mean(side: SideSummary) -> float | None:
    """Geometric mean latency in ms (from the log sums)."""
    if side.log_latency_n <= 0:
        return None
    return math.expm1(side.log_latency_sum / side.log_latency_n)
