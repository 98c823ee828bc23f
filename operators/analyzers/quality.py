"""The quality analyzer: error rate and mix, error-rate increases, quality degradation, coverage.

A quality degradation is a one-sided Welch t-test of the period's mean against the baseline
(``p < quality_p_value``): a warning; critical when the same test against the baseline minus
``quality_tolerance`` (0.02 absolute, the margin decisions use) is significant too.

Each (app, task) is judged on its windows summed over models and variants and, when the task
has several models in a period, on each model as well (metric ``"<metric>@<model>"``), so a bad
model is visible. Baselines pool the last ``baseline_windows`` unflagged windows of a segment
exactly (counts, means and variances); they judge once they hold ``warmup_windows`` windows.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from scipy import special

from core.insights import AnalyzerName, Insight, Severity, WindowGroup
from core.settings import AnalyzerSettings
from core.stats import WindowStats
from operators.analyzers.base import insight_maker

__all__ = ["QualityAnalyzer", "QualityState"]

#: The statistic behind each insight kind this analyzer emits (``evidence["statistic"]``).
STATISTICS: dict[str, str] = {
    "error_rate": "wilson_interval",
    "error_rate_increase": "two_proportion_z",
    "quality_degradation": "welch_t",
    "no_quality_signal": "feedback_coverage",
}
_insight = insight_maker("quality", STATISTICS)

ALL_MODELS = "*"  # the model of a task's aggregate segment
_CI_LEVEL = 0.95  # the confidence of the reported intervals (contract: ci95)
_TOP_ERROR_TYPES = 5  # error types listed in evidence (display only)
_P_FLOOR = math.ulp(0.0)  # keeps -log10(p) finite when p underflows

SegmentKey = tuple[str, str, str]  # app, task, model (ALL_MODELS: the whole task)


@dataclass(frozen=True, slots=True)
class _Sample:
    """The sufficient statistics of one window of one segment."""

    count: int
    errors: int
    q_count: int
    q_mean: float  # 0.0 when q_count == 0
    q_var: float  # sample variance (ddof=1); 0.0 when q_count < 2


@dataclass(frozen=True, slots=True)
class _Segment:
    """What the analyzer remembers of one segment."""

    baseline: tuple[_Sample, ...] = ()
    last_learned: datetime | None = None
    windows_seen: int = 0
    calls_seen: int = 0
    quality_seen: bool = False
    no_signal_reported: bool = False


@dataclass(frozen=True, slots=True)
class QualityState:
    """The per-segment baselines of the quality analyzer (picklable, never mutated)."""

    segments: Mapping[SegmentKey, _Segment] = field(default_factory=dict)


def _pool(samples: Iterable[_Sample]) -> _Sample:
    """Combine samples exactly: summed counts, pooled mean and ddof=1 variance."""
    items = list(samples)
    count = sum(s.count for s in items)
    errors = sum(s.errors for s in items)
    n = sum(s.q_count for s in items)
    if n == 0:
        return _Sample(count, errors, 0, 0.0, 0.0)
    mean = sum(s.q_count * s.q_mean for s in items) / n
    ss = sum(max(s.q_count - 1, 0) * s.q_var + s.q_count * (s.q_mean - mean) ** 2 for s in items)
    return _Sample(count, errors, n, mean, ss / (n - 1) if n > 1 else 0.0)


def _sample(w: WindowStats) -> _Sample:
    q = w.quality
    mean = q.mean if q.count > 0 and q.mean is not None else 0.0
    sd = q.stddev if q.count > 1 and q.stddev is not None else 0.0
    return _Sample(w.count, w.error_count, q.count, mean, sd * sd)


def wilson_interval(errors: int, n: int, level: float = _CI_LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``errors / n``."""
    z = float(special.ndtri(0.5 + level / 2))
    p = errors / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z(x1: int, n1: int, x0: int, n0: int) -> tuple[float, float] | None:
    """Pooled two-proportion z-test that ``x1/n1`` exceeds ``x0/n0``: ``(z, one-sided p)``."""
    pooled = (x1 + x0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0:
        return None
    z = (x1 / n1 - x0 / n0) / se
    return z, float(special.ndtr(-z))


def welch_less(
    cur: _Sample, base: _Sample, margin: float = 0.0
) -> tuple[float, float, float] | None:
    """One-sided Welch t-test that the current mean is below the baseline minus ``margin``.

    Returns ``(t, df, p)``; None when both samples are constant.
    """
    a, b = cur.q_var / cur.q_count, base.q_var / base.q_count
    se = math.sqrt(a + b)
    if se == 0:
        return None
    t = (cur.q_mean - base.q_mean + margin) / se
    df = (a + b) ** 2 / (a * a / (cur.q_count - 1) + b * b / (base.q_count - 1))
    return t, df, float(special.stdtr(df, t))


class QualityAnalyzer:
    """Error rate and mix, error-rate increase, quality degradation and feedback coverage."""

    name: AnalyzerName = "quality"

    def __init__(self, settings: AnalyzerSettings) -> None:
        """Keep the thresholds.

        Args:
            settings: The analyzer thresholds (``analyzers.*``).
        """
        self.settings = settings

    def initial_state(self) -> QualityState:
        """No baselines yet."""
        return QualityState()

    def analyze(
        self, state: QualityState, group: WindowGroup
    ) -> tuple[QualityState, list[Insight]]:
        """Judge every (app, task) of one period and learn the unflagged windows.

        Args:
            state: The state returned for the previous period of this app.
            group: The windows of this period.

        Returns:
            The next state and the insights of this period.
        """
        segments = dict(state.segments)
        insights: list[Insight] = []
        for task, windows in sorted(group.tasks().items()):
            latest: dict[tuple[str, str], WindowStats] = {}
            for w in windows:  # a corrected window replaces its earlier revision
                old = latest.get((w.model, w.variant))
                if old is None or w.revision >= old.revision:
                    latest[(w.model, w.variant)] = w
            by_model: dict[str, list[WindowStats]] = {}
            for (model, _), w in sorted(latest.items()):
                by_model.setdefault(model, []).append(w)
            parts = [(ALL_MODELS, list(latest.values()))]
            parts += sorted(by_model.items())
            for model, ws in parts:
                key = (group.app, task, model)
                seg = segments.get(key, _Segment())
                found = self._judge(group, task, model, seg, ws)
                if model == ALL_MODELS or len(by_model) > 1:
                    insights.extend(found)
                flagged = any(i.severity != "info" for i in found)
                segments[key] = self._learn(seg, ws, group.window_start, flagged, found)
        return QualityState(segments), insights

    def _learn(
        self,
        seg: _Segment,
        ws: list[WindowStats],
        start: datetime,
        flagged: bool,
        found: list[Insight],
    ) -> _Segment:
        cur = _pool(_sample(w) for w in ws)
        if seg.last_learned is not None and start <= seg.last_learned:
            return seg  # a replayed period: already counted
        baseline = seg.baseline
        if not flagged:
            baseline = (*baseline, cur)[-max(self.settings.baseline_windows, 1) :]
        return replace(
            seg,
            baseline=baseline,
            last_learned=start,
            windows_seen=seg.windows_seen + 1,
            calls_seen=seg.calls_seen + cur.count,
            quality_seen=seg.quality_seen or cur.q_count > 0,
            no_signal_reported=seg.no_signal_reported
            or any(i.kind == "no_quality_signal" for i in found),
        )

    def _judge(
        self, group: WindowGroup, task: str, model: str, seg: _Segment, ws: list[WindowStats]
    ) -> list[Insight]:
        s = self.settings
        cur = _pool(_sample(w) for w in ws)
        base = _pool(seg.baseline)
        warm = len(seg.baseline) >= s.warmup_windows
        where = f"{group.app}/{task}" + ("" if model == ALL_MODELS else f" model {model}")
        common: dict[str, float | str] = {
            "model": model,
            "count": float(cur.count),
            "error_count": float(cur.errors),
            "quality_count": float(cur.q_count),
            "feedback_coverage": cur.q_count / cur.count if cur.count else 0.0,
            "baseline_windows": float(len(seg.baseline)),
            "min_samples": float(s.min_samples),
        }
        out: list[Insight] = []

        def emit(
            kind: str,
            sev: Severity,
            metric: str,
            value: float,
            baseline: float | None,
            score: float,
            message: str,
            evidence: dict[str, float | str],
        ) -> None:
            metric += "" if model == ALL_MODELS else f"@{model}"
            out.append(
                _insight(
                    group,
                    task,
                    kind,
                    sev,
                    metric,
                    value,
                    baseline,
                    score,
                    message,
                    {**common, **evidence},
                )
            )

        if cur.count >= max(s.min_samples, 1):
            rate = cur.errors / cur.count
            low, high = wilson_interval(cur.errors, cur.count)
            mix: Counter[str] = Counter()
            for w in ws:
                mix.update(w.errors_by_type)
            errs: dict[str, float | str] = {
                "error_rate": rate, "wilson95_low": low, "wilson95_high": high,
                "error_rate_warning": s.error_rate_warning,
                "error_rate_critical": s.error_rate_critical,
            }  # fmt: skip
            for rank, (etype, n) in enumerate(mix.most_common(_TOP_ERROR_TYPES), 1):
                errs[f"error_type_{rank}"] = etype
                errs[f"error_share_{rank}"] = n / cur.errors
            sev: Severity = "critical" if rate >= s.error_rate_critical else "warning"
            if rate >= s.error_rate_warning:
                limit = s.error_rate_critical if sev == "critical" else s.error_rate_warning
                score = rate / s.error_rate_warning if s.error_rate_warning else rate
                msg = (
                    f"{where}: error rate {rate:.2%} ({cur.errors}/{cur.count} calls, "
                    f"95% CI {low:.2%}-{high:.2%}) >= {sev} threshold {limit:.2%}"
                )
                if mix:
                    etype, n = mix.most_common(1)[0]
                    msg += f"; mostly {etype} ({n / cur.errors:.0%} of errors)"
                emit(
                    "error_rate",
                    sev,
                    "error_rate",
                    rate,
                    limit,
                    score,
                    msg,
                    {**errs, "threshold": limit},
                )
            if warm and base.count >= s.min_samples and rate >= s.error_rate_warning:
                test = two_proportion_z(cur.errors, cur.count, base.errors, base.count)
                if test is not None and test[1] < s.quality_p_value:
                    z, p = test
                    b_rate = base.errors / base.count
                    msg = (
                        f"{where}: error rate rose from {b_rate:.2%} to {rate:.2%} "
                        f"(z={z:.2f}, one-sided p={p:.2g} < {s.quality_p_value:g})"
                    )
                    errs |= {
                        "baseline_error_rate": b_rate, "baseline_count": float(base.count),
                        "baseline_error_count": float(base.errors), "z": z, "p_value": p,
                        "quality_p_value": s.quality_p_value,
                    }  # fmt: skip
                    emit("error_rate_increase", sev, "error_rate", rate, b_rate, z, msg, errs)

        enough = max(s.min_samples, 2)  # a variance needs two scores
        if warm and cur.q_count >= enough and base.q_count >= enough:
            test_q = welch_less(cur, base)
            if test_q is not None and test_q[2] < s.quality_p_value:
                t, df, p = test_q
                sd = math.sqrt(cur.q_var)
                half = float(special.stdtrit(cur.q_count - 1, 0.5 + _CI_LEVEL / 2)) * sd
                half /= math.sqrt(cur.q_count)
                msg = (
                    f"{where}: quality mean {cur.q_mean:.3f} (n={cur.q_count}) below baseline "
                    f"{base.q_mean:.3f} (n={base.q_count}); Welch t={t:.2f}, df={df:.1f}, "
                    f"one-sided p={p:.2g} < {s.quality_p_value:g}"
                )
                evidence: dict[str, float | str] = {
                    "quality_mean": cur.q_mean, "quality_stddev": sd,
                    "quality_ci95_low": cur.q_mean - half, "quality_ci95_high": cur.q_mean + half,
                    "baseline_quality_mean": base.q_mean,
                    "baseline_quality_stddev": math.sqrt(base.q_var),
                    "baseline_quality_count": float(base.q_count), "t": t, "df": df,
                    "p_value": p, "quality_p_value": s.quality_p_value,
                }  # fmt: skip
                # Critical when the drop is significantly larger than the tolerance as well
                # (H0: mean >= baseline - tolerance), the margin decisions also use.
                beyond = welch_less(cur, base, s.quality_tolerance)
                p_tol = 1.0 if beyond is None else beyond[2]
                q_sev: Severity = "critical" if p_tol < s.quality_p_value else "warning"
                msg += (
                    f"; the drop exceeds the {s.quality_tolerance:g} tolerance (p={p_tol:.2g})"
                    if q_sev == "critical"
                    else f"; not shown beyond the {s.quality_tolerance:g} tolerance"
                )
                evidence |= {
                    "drop": base.q_mean - cur.q_mean, "quality_tolerance": s.quality_tolerance,
                    "threshold": base.q_mean - s.quality_tolerance, "p_value_tolerance": p_tol,
                    "statistic": "welch_t",
                }  # fmt: skip
                score = -math.log10(max(p, _P_FLOOR))
                emit("quality_degradation", q_sev, "quality_mean", cur.q_mean, base.q_mean,
                     score, msg, evidence)  # fmt: skip

        windows, calls = seg.windows_seen + 1, seg.calls_seen + cur.count
        if (
            model == ALL_MODELS
            and not (seg.quality_seen or cur.q_count > 0 or seg.no_signal_reported)
            and windows >= s.warmup_windows
            and calls >= s.min_samples
        ):
            msg = (
                f"{where}: none of {calls} calls in {windows} windows carried a quality score; "
                "the optimizer cannot judge quality here"
            )
            evidence = {
                "windows_seen": float(windows), "calls_seen": float(calls),
                "warmup_windows": float(s.warmup_windows),
                "threshold": 0.0,  # feedback coverage that reports: none at all
            }  # fmt: skip
            emit("no_quality_signal", "info", "feedback_coverage", 0.0, None, 0.0, msg, evidence)
        return out
