"""What every analyzer is: a plain typed object that turns window groups into insights."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

from core.insights import AnalyzerName, Insight, Severity, WindowGroup, make_insight

__all__ = ["KIND_STATISTIC", "Analyzer", "InsightMaker", "PeerReader", "insight_maker"]

S = TypeVar("S")

KIND_STATISTIC: dict[str, str] = {
    "latency_slo": "p95_vs_slo",
    "latency_regression": "ratio_to_median",
    "ttft_regression": "ratio_to_median",
    "success_rate": "success_rate",
    "throughput_drop": "poisson_p",
    "daily_budget": "budget_share",
    "monthly_budget": "budget_share",
    "daily_budget_projection": "projected_spend",
    "monthly_budget_projection": "projected_spend",
    "cost_spike": "ratio_to_baseline",
    "error_rate": "wilson_interval",
    "error_rate_increase": "two_proportion_z",
    "quality_degradation": "welch_t",
    "no_quality_signal": "feedback_coverage",
    "burst": "ratio_to_reference",
    "traffic_trend": "slope_t_test",
    "cache_potential": "repeat_ratio",
    "batching_potential": "peak_rate",
    "anomaly_start": "robust_z",
    "anomaly_end": "robust_z",
}
"""The statistic behind each insight kind, recorded as ``evidence["statistic"]``."""


class Analyzer(Protocol[S]):
    """Judges one app's windows, period after period, keeping its own state (baselines).

    ``analyze`` must be pure given its inputs: it returns the next state (never mutating the
    one it got is not required, but the state must be picklable: it lives in recovery
    snapshots) and the insights of this period, each carrying its evidence.
    """

    name: AnalyzerName

    def initial_state(self) -> S:
        """The state before the first period of an app."""
        ...

    def analyze(self, state: S, group: WindowGroup) -> tuple[S, list[Insight]]:
        """Judge one period of one app; periods arrive in time order."""
        ...


@runtime_checkable
class PeerReader(Protocol[S]):
    """An analyzer that reads another analyzer's state instead of learning the same twice.

    When the analyzer named ``reads`` runs in the same :class:`~operators.analyzers.runner.
    AnalysisRunner`, the runner calls :meth:`analyze_with` with that analyzer's state as it was
    before the period (a period never shapes its own expectation); otherwise ``analyze``.
    """

    name: AnalyzerName
    reads: AnalyzerName

    def analyze_with(
        self, state: S, group: WindowGroup, peer_state: Any
    ) -> tuple[S, list[Insight]]:
        """Judge one period with the peer's state before it."""
        ...


class InsightMaker(Protocol):
    """:func:`core.insights.make_insight` with the analyzer bound."""

    def __call__(
        self,
        group: WindowGroup,
        task: str,
        kind: str,
        severity: Severity,
        metric: str,
        value: float,
        baseline: float | None,
        score: float,
        message: str,
        evidence: dict[str, float | str],
    ) -> Insight:
        """Build one insight with complete evidence."""
        ...


def insight_maker(analyzer: AnalyzerName) -> InsightMaker:
    """An insight builder for ``analyzer`` whose evidence always names the basics.

    Every insight's evidence carries ``metric``, ``value``, ``baseline`` (when there is one),
    ``statistic`` (:data:`KIND_STATISTIC` unless the analyzer named one), ``window_start`` and
    ``window_end`` (RFC 3339), next to the analyzer's own numbers and thresholds; what the
    analyzer set is never overwritten.
    """

    def make(
        group: WindowGroup,
        task: str,
        kind: str,
        severity: Severity,
        metric: str,
        value: float,
        baseline: float | None,
        score: float,
        message: str,
        evidence: dict[str, float | str],
    ) -> Insight:
        basics: dict[str, float | str] = {
            "metric": metric,
            "value": value,
            "statistic": KIND_STATISTIC.get(kind, "threshold"),
            "window_start": group.window_start.isoformat(),
            "window_end": group.window_end.isoformat(),
        }
        if baseline is not None:
            basics["baseline"] = baseline
        insight = make_insight(
            analyzer, group, task, kind, severity, metric, value, baseline, score, message,
            {**basics, **evidence},
        )  # fmt: skip
        return insight

    return make
