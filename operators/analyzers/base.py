"""What every analyzer is: a plain typed object that turns window groups into insights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from core.insights import AnalyzerName, Insight, Severity, WindowGroup, make_insight

__all__ = ["Analyzer", "InsightMaker", "PeerReader", "insight_maker"]

S = TypeVar("S")


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


def insight_maker(analyzer: AnalyzerName, statistics: Mapping[str, str]) -> InsightMaker:
    """An insight builder for ``analyzer`` whose evidence always names the basics.

    Every insight's evidence carries ``metric``, ``value``, ``baseline`` (when there is one),
    ``statistic`` (from ``statistics``, the analyzer module's kind → statistic table, unless the
    insight named one; ``threshold`` for a kind not in it), ``window_start`` and
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
            "statistic": statistics.get(kind, "threshold"),
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
