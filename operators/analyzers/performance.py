"""Performance analyzer: latency SLO, latency and ttft regressions, success rate.

Each (app, task) of a period is judged from its windows across models and variants:

* **Task p95** is the count-weighted mean of the segments' p95 (ttft: weighted by the calls of
  the segments that report ttft). It moves with the traffic mix, which is what callers of the
  task experience, and it scales exactly with the latencies. The SLO check additionally looks
  at every segment with at least ``min_samples`` calls and judges the worst of these and the
  task aggregate, so one slow model or canary variant is not hidden by a fast majority; the
  evidence names the segment (``"*"`` for the aggregate).
* **Regression** compares the task p95 with a robust baseline: the median of the p95 of the
  last ``baseline_windows`` learned windows, with the MAD as scale (the robust z is evidence).
  It judges only after ``warmup_windows`` learned windows. Only windows with at least
  ``min_samples`` calls are learned, and a window flagged for a metric is not learned into
  that metric's baseline, so a regression cannot become the new normal by itself.
* **Success rate** is ``ok_count / count`` over the task's windows.
* **Throughput** is the task's calls per period against the median of its last
  ``baseline_windows`` learned periods: ``throughput_drop`` (warning) when it falls below
  ``(1 - throughput_drop)`` of that baseline and a one-sided Poisson test says so
  (``p < quality_p_value``). Only a baseline of at least ``min_samples`` calls judges; a task
  that had traffic and has none in a period is judged with 0 calls (an outage is the drop that
  matters most). A flagged period is not learned.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from scipy import special

from core.insights import AnalyzerName, Insight, Severity, WindowGroup
from core.settings import AnalyzerSettings
from core.stats import WindowStats
from operators.analyzers.base import insight_maker

__all__ = ["PerformanceAnalyzer", "PerformanceState", "TaskBaseline"]

#: The statistic behind each insight kind this analyzer emits (``evidence["statistic"]``).
STATISTICS: dict[str, str] = {
    "latency_slo": "p95_vs_slo",
    "latency_regression": "ratio_to_median",
    "ttft_regression": "ratio_to_median",
    "success_rate": "success_rate",
    "throughput_drop": "poisson_p",
}
_insight = insight_maker("performance", STATISTICS)

_MAD_TO_SIGMA = 1.4826  # consistency constant: 1.4826 * MAD estimates sigma for normal data
_RESOLUTION = 1e-9  # relative spread below which the MAD is float rounding, not variation
_AGGREGATE = "*"


@dataclass(frozen=True, slots=True)
class TaskBaseline:
    """The learned history of one task: p95 of recent unflagged windows, oldest first."""

    latency_p95: tuple[float, ...] = ()
    ttft_p95: tuple[float, ...] = ()
    calls: tuple[float, ...] = ()  # calls per learned period (throughput)


@dataclass(frozen=True, slots=True)
class PerformanceState:
    """The state of one app: a baseline per task. Picklable, never mutated."""

    tasks: dict[str, TaskBaseline] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Aggregate:
    """What one task did in one period, over all its segments."""

    count: int
    ok_count: int
    latency_p95: float
    ttft_p95: float | None
    ttft_samples: int


def _weighted(pairs: Sequence[tuple[float, int]]) -> float | None:
    total = sum(n for _, n in pairs)
    if total <= 0:
        return None
    return sum(v * n for v, n in pairs) / total


def _aggregate(windows: Sequence[WindowStats]) -> _Aggregate:
    ttft = [(w.ttft_ms.p95, w.count) for w in windows if w.ttft_ms is not None]
    return _Aggregate(
        count=sum(w.count for w in windows),
        ok_count=sum(w.ok_count for w in windows),
        latency_p95=_weighted([(w.latency_ms.p95, w.count) for w in windows]) or 0.0,
        ttft_p95=_weighted(ttft),
        ttft_samples=sum(n for _, n in ttft),
    )


class PerformanceAnalyzer:
    """Latency SLO, latency/ttft regressions against a learned baseline, and success rate.

    Insight kinds: ``latency_slo`` (warning/critical), ``latency_regression`` and
    ``ttft_regression`` (warning/critical), ``success_rate`` (warning), ``throughput_drop``
    (warning).
    """

    name: AnalyzerName = "performance"

    def __init__(self, settings: AnalyzerSettings) -> None:
        """Keep the thresholds.

        Args:
            settings: The analyzer thresholds (``min_samples``, SLO, regression, success rate).
        """
        self._s = settings

    def initial_state(self) -> PerformanceState:
        """The state before the first period: no task has a baseline."""
        return PerformanceState()

    def analyze(
        self, state: PerformanceState, group: WindowGroup
    ) -> tuple[PerformanceState, list[Insight]]:
        """Judge every task of one period and learn the unflagged windows.

        Args:
            state: The state returned for the previous period (or :meth:`initial_state`).
            group: All windows of one app for one period.

        Returns:
            The next state and the insights of this period.
        """
        tasks = dict(state.tasks)
        insights: list[Insight] = []
        by_task = group.tasks()
        for task in sorted(set(by_task) | {t for t, b in tasks.items() if b.calls}):
            history = tasks.get(task, TaskBaseline())
            calls = sum(w.count for w in by_task.get(task, ()))
            drop = self._throughput(group, task, calls, history.calls)
            if drop is not None:
                insights.append(drop)
            else:
                keep = max(self._s.baseline_windows, 1)
                history = replace(history, calls=(*history.calls, float(calls))[-keep:])
            tasks[task] = history
            if task not in by_task:
                continue
            windows = by_task[task]
            agg = _aggregate(windows)
            if agg.count < max(self._s.min_samples, 1):
                continue
            lat = self._regression(
                group, task, "latency_regression", "latency_ms.p95", agg.latency_p95,
                history.latency_p95, agg.count,
            )  # fmt: skip
            ttft: Insight | None = None
            ttft_hist = history.ttft_p95
            if agg.ttft_p95 is not None and agg.ttft_samples >= self._s.min_samples:
                ttft = self._regression(
                    group, task, "ttft_regression", "ttft_ms.p95", agg.ttft_p95,
                    history.ttft_p95, agg.ttft_samples,
                )  # fmt: skip
                ttft_hist = self._learn(history.ttft_p95, agg.ttft_p95, ttft)
            tasks[task] = TaskBaseline(
                latency_p95=self._learn(history.latency_p95, agg.latency_p95, lat),
                ttft_p95=ttft_hist,
                calls=history.calls,
            )
            slo, success = self._slo(group, task, windows, agg), self._success(group, task, agg)
            insights += [i for i in (slo, lat, ttft, success) if i is not None]
        return PerformanceState(tasks=tasks), insights

    def _learn(
        self, history: tuple[float, ...], value: float, flagged: Insight | None
    ) -> tuple[float, ...]:
        if flagged is not None:
            return history
        keep = max(self._s.baseline_windows, 1)
        return (*history, value)[-keep:]

    def _slo(
        self, group: WindowGroup, task: str, windows: Sequence[WindowStats], agg: _Aggregate
    ) -> Insight | None:
        s = self._s
        candidates: list[tuple[float, str, int]] = [(agg.latency_p95, _AGGREGATE, agg.count)]
        candidates += [
            (w.latency_ms.p95, f"{w.model}/{w.variant}", w.count)
            for w in windows
            if w.count >= s.min_samples
        ]
        value, segment, samples = max(candidates, key=lambda c: c[0])
        if value > s.latency_p95_critical_ms:
            severity: Severity = "critical"
            limit = s.latency_p95_critical_ms
        elif value > s.latency_p95_warning_ms:
            severity, limit = "warning", s.latency_p95_warning_ms
        else:
            return None
        where = "" if segment == _AGGREGATE else f" on {segment}"
        return _insight(
            group,
            task,
            "latency_slo",
            severity,
            "latency_ms.p95",
            value,
            None,
            value / s.latency_p95_warning_ms if s.latency_p95_warning_ms > 0 else value,
            f"p95 latency of {task}{where} is {value:.0f} ms, above the {severity} SLO of "
            f"{limit:.0f} ms ({samples} calls).",
            {
                "value": value,
                "segment": segment,
                "samples": samples,
                "task_p95": agg.latency_p95,
                "task_samples": agg.count,
                "warning_threshold": s.latency_p95_warning_ms,
                "critical_threshold": s.latency_p95_critical_ms,
                "min_samples": s.min_samples,
            },
        )

    def _regression(
        self,
        group: WindowGroup,
        task: str,
        kind: str,
        metric: str,
        value: float,
        history: tuple[float, ...],
        samples: int,
    ) -> Insight | None:
        s = self._s
        if len(history) < max(s.warmup_windows, 1):
            return None
        baseline = statistics.median(history)
        if baseline <= 0:
            return None
        mad = statistics.median(abs(x - baseline) for x in history)
        ratio = value / baseline
        if ratio >= 1 + s.regression_critical:
            severity: Severity = "critical"
        elif ratio >= 1 + s.regression_warning:
            severity = "warning"
        else:
            return None
        evidence: dict[str, float | str] = {
            "value": value,
            "baseline": baseline,
            "mad": mad,
            "ratio": ratio,
            "samples": samples,
            "baseline_windows": len(history),
            "warning_threshold": baseline * (1 + s.regression_warning),
            "critical_threshold": baseline * (1 + s.regression_critical),
            "regression_warning": s.regression_warning,
            "regression_critical": s.regression_critical,
            "min_samples": s.min_samples,
        }
        if mad > _RESOLUTION * baseline:  # a spread at float rounding level gives no usable z
            evidence["z"] = (value - baseline) / (_MAD_TO_SIGMA * mad)
        label = "p95 latency" if metric.startswith("latency") else "p95 time to first token"
        return _insight(
            group,
            task,
            kind,
            severity,
            metric,
            value,
            baseline,
            ratio / (1 + s.regression_warning),
            f"{label} of {task} is {value:.0f} ms, {100 * (ratio - 1):.0f} % above its baseline "
            f"of {baseline:.0f} ms (median of {len(history)} windows, {samples} calls).",
            evidence,
        )

    def _throughput(
        self, group: WindowGroup, task: str, calls: int, history: tuple[float, ...]
    ) -> Insight | None:
        s = self._s
        if len(history) < max(s.warmup_windows, 1):
            return None
        baseline = statistics.median(history)
        if baseline < max(s.min_samples, 1) or calls > (1 - s.throughput_drop) * baseline:
            return None
        p = float(special.pdtr(calls, baseline))  # P(X <= calls) for Poisson(baseline)
        if p >= s.quality_p_value:
            return None
        ratio = calls / baseline
        return _insight(
            group,
            task,
            "throughput_drop",
            "warning",
            "calls",
            float(calls),
            baseline,
            (1 - ratio) / s.throughput_drop if s.throughput_drop > 0 else 1 - ratio,
            f"throughput of {task} fell to {calls} calls in the period, "
            f"{100 * (1 - ratio):.0f} % below its baseline of {baseline:.0f} "
            f"(median of {len(history)} periods; Poisson p={p:.2g}).",
            {
                "value": float(calls),
                "baseline": baseline,
                "ratio": ratio,
                "p_value": p,
                "threshold": (1 - s.throughput_drop) * baseline,
                "throughput_drop": s.throughput_drop,
                "quality_p_value": s.quality_p_value,
                "baseline_windows": len(history),
                "rate_per_s": calls
                / max((group.window_end - group.window_start).total_seconds(), 1e-9),
            },
        )

    def _success(self, group: WindowGroup, task: str, agg: _Aggregate) -> Insight | None:
        s = self._s
        rate = agg.ok_count / agg.count
        if rate >= s.success_rate_warning:
            return None
        allowed = 1 - s.success_rate_warning
        return _insight(
            group,
            task,
            "success_rate",
            "warning",
            "success_rate",
            rate,
            None,
            (1 - rate) / allowed if allowed > 0 else 1 - rate,
            f"success rate of {task} is {100 * rate:.1f} % ({agg.ok_count} of {agg.count} calls), "
            f"below the {100 * s.success_rate_warning:.1f} % threshold.",
            {
                "value": rate,
                "ok_count": agg.ok_count,
                "samples": agg.count,
                "warning_threshold": s.success_rate_warning,
                "min_samples": s.min_samples,
            },
        )
