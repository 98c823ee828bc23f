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

Guarantee (each band at ``alpha``, looks every period): a candidate truly worse than the
tolerance is promoted with probability at most ``alpha``; an equal candidate is failed by the
quality test with probability at most ``alpha`` (asymptotically, plug-in variances; checked by
simulation in ``tests/unit/operators/test_sequential.py``). Fewer than ``min_samples`` calls on
either side is *inconclusive*: no data is never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import numpy as np

from core.decisions import MetricCheck, RollbackLimit, VerdictOutcome
from core.settings import CanarySettings
from core.stats import PairedQuality, WindowStats
from operators.sequential import (
    Interval,
    always_valid_p,
    mean_and_variance,
    rho_for,
)

__all__ = [
    "Judgement",
    "SideSummary",
    "judge",
    "paired_interval",
    "plan_checks",
    "quality_interval",
]

LATENCY_SAMPLE = 128  # latencies a side keeps for the p95/p99 gates (sorted, evenly spaced)


def _stats() -> Any:
    """``scipy.stats``, imported on first use.

    It costs the dataflow ~0.5 s at start-up, and only the actuator needs it, only while a
    rollout is open.
    """
    import scipy.stats

    return scipy.stats


def _thin(values: Sequence[float], size: int) -> tuple[float, ...]:
    """At most ``size`` values evenly spaced over the sorted ``values`` (all when fewer)."""
    if size <= 0:
        return ()
    ordered = sorted(values)
    if len(ordered) <= size:
        return tuple(ordered)
    stride = -(-len(ordered) // size)
    return tuple(ordered[stride // 2 :: stride])


class SideSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What one side of a rollout served: counts, cost, and sums that pool by addition.

    ``log_latency_*`` are sums of ``ln(1 + latency_ms)`` over calls (estimated from each
    window's systematic latency sample, weighted by its calls); ``latency`` is a bounded
    sample for the percentile gates; ``shadow`` holds shadow models' paired quality.
    """

    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    quality_count: int = 0
    quality_sum: float = 0.0
    quality_sq_sum: float = 0.0
    log_latency_n: float = 0.0
    log_latency_sum: float = 0.0
    log_latency_sq_sum: float = 0.0
    latency: tuple[float, ...] = ()
    shadow: dict[str, PairedQuality] = msgspec.field(default_factory=dict)

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

    @property
    def quality_mean(self) -> float | None:
        """Mean quality score (None without scores)."""
        return self.quality_sum / self.quality_count if self.quality_count else None

    def merge(self, other: SideSummary) -> SideSummary:
        """Both sides' calls pooled (the latency sample keeps each side's share of calls)."""
        if not other.calls and not other.quality_count and not other.shadow:
            return self
        if not self.calls and not self.quality_count and not self.shadow:
            return other
        calls = self.calls + other.calls
        if len(self.latency) + len(other.latency) <= LATENCY_SAMPLE:
            latency = tuple(sorted(self.latency + other.latency))
        else:
            k = round(LATENCY_SAMPLE * self.calls / calls) if calls else LATENCY_SAMPLE // 2
            latency = tuple(
                sorted(_thin(self.latency, k) + _thin(other.latency, LATENCY_SAMPLE - k))
            )
        shadow = dict(self.shadow)
        for model, pairs in other.shadow.items():
            shadow[model] = shadow[model].merge(pairs) if model in shadow else pairs
        return SideSummary(
            calls=calls,
            errors=self.errors + other.errors,
            cost_usd=self.cost_usd + other.cost_usd,
            quality_count=self.quality_count + other.quality_count,
            quality_sum=self.quality_sum + other.quality_sum,
            quality_sq_sum=self.quality_sq_sum + other.quality_sq_sum,
            log_latency_n=self.log_latency_n + other.log_latency_n,
            log_latency_sum=self.log_latency_sum + other.log_latency_sum,
            log_latency_sq_sum=self.log_latency_sq_sum + other.log_latency_sq_sum,
            latency=latency,
            shadow=shadow,
        )

    @classmethod
    def of_window(cls, w: WindowStats) -> SideSummary:
        """One tumbling window's calls."""
        q = w.quality
        q_sum = (q.mean or 0.0) * q.count
        q_sq = (q.stddev or 0.0) ** 2 * (q.count - 1) + (q.mean or 0.0) ** 2 * q.count
        n_lat = log_sum = log_sq = 0.0
        if w.latency_sample and w.count:
            logs = np.log1p(np.asarray(w.latency_sample, dtype=np.float64))
            n_lat = float(w.count)
            log_sum = float(logs.mean()) * n_lat
            log_sq = float((logs * logs).mean()) * n_lat
        return cls(
            calls=w.count,
            errors=w.error_count,
            cost_usd=w.cost_usd,
            quality_count=q.count,
            quality_sum=q_sum,
            quality_sq_sum=q_sq if q.count else 0.0,
            log_latency_n=n_lat,
            log_latency_sum=log_sum,
            log_latency_sq_sum=log_sq,
            latency=_thin(w.latency_sample, LATENCY_SAMPLE),
            shadow=dict(w.shadow),
        )

    @classmethod
    def of(cls, windows: Iterable[WindowStats]) -> SideSummary:
        """Pool tumbling windows."""
        out = cls()
        for w in windows:
            out = out.merge(cls.of_window(w))
        return out


Stratum = tuple[SideSummary, SideSummary]  # (baseline, canary) over one weight


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


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _fmt(x: float) -> str:
    return f"{x:+.4f}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _quality_check(
    band: Interval,
    base: SideSummary,
    canary: SideSummary,
    pairs: PairedQuality | None,
    tolerance: float,
    alpha: float,
) -> MetricCheck:
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


def _harm_check(
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


def _percentile(values: tuple[float, ...], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _error_rate_max(canary: SideSummary, settings: CanarySettings) -> MetricCheck:
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


def judge(
    strata: Sequence[Stratum],
    settings: CanarySettings,
    *,
    tolerance: float,
    pairs: PairedQuality | None = None,
) -> Judgement:
    """Judge a rollout on everything both sides served so far (one stratum per weight).

    A failed gate or test fails; otherwise too few calls, or a quality question not yet
    answered, leave it inconclusive; otherwise it passes.
    """
    canary = SideSummary()
    for _, c in strata:
        canary = canary.merge(c)
    base = _counts([b for b, _ in strata])
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
        _error_rate_max(canary, settings),
        _gate(
            "latency_p95_ms",
            _percentile(base.latency, 95),
            _percentile(canary.latency, 95),
            settings.max_p95_ms,
        ),
        _gate(
            "latency_p99_ms",
            _percentile(base.latency, 99),
            _percentile(canary.latency, 99),
            settings.max_p99_ms,
        ),
        _harm_check(
            "latency_ms",
            _difference(strata, _latency_sums, alpha, rho_for(lat_margin, alpha)),
            lat_margin,
            _geo_mean(base),
            _geo_mean(canary),
            (base.calls, canary.calls),
            alpha,
            "ln(1 + latency) canary minus baseline",
        ),
        _harm_check(
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
        checks.append(_gate("cost_per_success_usd", base_cps, can_cps, limit))
    blocking = ""
    judged_quality: Interval | None = None
    if has_quality:
        judged_quality = quality
        if settings.quality_floor > 0:
            checks.append(
                _gate(
                    "quality_floor",
                    base.quality_mean,
                    canary.quality_mean,
                    settings.quality_floor,
                    direction="min",
                )
            )
        check = _quality_check(quality, base, canary, pairs if shadow else None, tolerance, alpha)
        checks.append(check)
        if check.passed is None:
            blocking = f"quality not yet shown within the tolerance: {check.detail}"
    failed = [c.metric for c in checks if c.passed is False]
    if failed:
        return Judgement("fail", tuple(checks), "failed: " + ", ".join(failed), judged_quality)
    unshown = [c.metric for c in checks if c.test == "harm_cs" and c.passed is None]
    if unshown:
        shown = f"not yet shown within their margins: {', '.join(unshown)}"
        blocking = f"{blocking}; {shown}" if blocking else shown
    if blocking:
        return Judgement("inconclusive", tuple(checks), blocking, judged_quality)
    return Judgement("pass", tuple(checks), "every gate and test passed", judged_quality)


def _counts(sides: Sequence[SideSummary]) -> SideSummary:
    """The sides' counts and sums pooled; the latency sample is the last side's (for display)."""
    if not sides:
        return SideSummary()
    return SideSummary(
        calls=sum(s.calls for s in sides),
        errors=sum(s.errors for s in sides),
        cost_usd=sum(s.cost_usd for s in sides),
        quality_count=sum(s.quality_count for s in sides),
        quality_sum=sum(s.quality_sum for s in sides),
        quality_sq_sum=sum(s.quality_sq_sum for s in sides),
        log_latency_n=sum(s.log_latency_n for s in sides),
        log_latency_sum=sum(s.log_latency_sum for s in sides),
        log_latency_sq_sum=sum(s.log_latency_sq_sum for s in sides),
        latency=sides[-1].latency,
    )


def _geo_mean(side: SideSummary) -> float | None:
    """Geometric mean latency in ms (from the log sums)."""
    if side.log_latency_n <= 0:
        return None
    return math.expm1(side.log_latency_sum / side.log_latency_n)


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
