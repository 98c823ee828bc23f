"""The analyzers: plain typed modules, one per concern, run per app by ``AnalysisRunner``."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from operators.analyzers.anomaly import AnomalyAnalyzer
from operators.analyzers.base import Analyzer
from operators.analyzers.cost import CostAnalyzer
from operators.analyzers.pattern import PatternAnalyzer
from operators.analyzers.performance import PerformanceAnalyzer
from operators.analyzers.quality import QualityAnalyzer
from operators.analyzers.runner import AnalysisRunner

__all__ = [
    "AnalysisRunner",
    "Analyzer",
    "AnomalyAnalyzer",
    "CostAnalyzer",
    "PatternAnalyzer",
    "PerformanceAnalyzer",
    "QualityAnalyzer",
    "build_analyzers",
]


def build_analyzers(settings: Settings) -> list[Analyzer[Any]]:
    """The analyzers of this release, configured from ``settings``.

    The anomaly analyzer judges traffic (``calls``) against the pattern analyzer's profiles
    (the runner hands them over), so a learned daily peak is not an anomaly.
    """
    return [
        PerformanceAnalyzer(settings.analyzers),
        CostAnalyzer(settings.analyzers, settings.budgets),
        QualityAnalyzer(settings.analyzers),
        PatternAnalyzer(settings.analyzers),
        AnomalyAnalyzer(settings.analyzers),
    ]
