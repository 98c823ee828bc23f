"""The analyzers of this release, in one table: adding one is its module plus one entry here.

Each entry names the analyzer (one of :data:`core.insights.AnalyzerName`, which the wire types
and the API's filters use), builds it from the settings, and carries its module's table of
insight kinds and the statistic behind each (``evidence["statistic"]``). The build order is the
order the runner judges a period in: the pattern analyzer before the anomaly analyzer, which
reads its profiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.insights import AnalyzerName
from core.settings import Settings
from operators.analyzers import anomaly_incident, cost, pattern, performance, quality
from operators.analyzers.anomaly import AnomalyAnalyzer
from operators.analyzers.base import Analyzer
from operators.analyzers.cost import CostAnalyzer
from operators.analyzers.pattern import PatternAnalyzer
from operators.analyzers.performance import PerformanceAnalyzer
from operators.analyzers.quality import QualityAnalyzer

__all__ = ["ANALYZERS", "KIND_STATISTIC", "AnalyzerEntry", "build_analyzers"]


@dataclass(frozen=True, slots=True)
class AnalyzerEntry:
    """One analyzer: its name, how it is built, and the statistic of each insight kind."""

    name: AnalyzerName
    build: Callable[[Settings], Analyzer[Any]]
    statistics: Mapping[str, str]


ANALYZERS: tuple[AnalyzerEntry, ...] = (
    AnalyzerEntry(
        "performance", lambda s: PerformanceAnalyzer(s.analyzers), performance.STATISTICS
    ),
    AnalyzerEntry("cost", lambda s: CostAnalyzer(s.analyzers, s.budgets), cost.STATISTICS),
    AnalyzerEntry("quality", lambda s: QualityAnalyzer(s.analyzers), quality.STATISTICS),
    AnalyzerEntry("pattern", lambda s: PatternAnalyzer(s.analyzers), pattern.STATISTICS),
    AnalyzerEntry("anomaly", lambda s: AnomalyAnalyzer(s.analyzers), anomaly_incident.STATISTICS),
)

KIND_STATISTIC: dict[str, str] = {
    kind: statistic for entry in ANALYZERS for kind, statistic in entry.statistics.items()
}
"""Every insight kind of every analyzer and the statistic behind it."""


def build_analyzers(settings: Settings) -> list[Analyzer[Any]]:
    """The analyzers of this release, configured from ``settings``, in :data:`ANALYZERS` order.

    The anomaly analyzer judges traffic (``calls``) against the pattern analyzer's profiles
    (the runner hands them over), so a learned daily peak is not an anomaly.
    """
    return [entry.build(settings) for entry in ANALYZERS]
