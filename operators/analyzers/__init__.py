"""The analyzers: plain typed modules, one per concern, run per app by ``AnalysisRunner``."""

from __future__ import annotations

from operators.analyzers.anomaly import AnomalyAnalyzer
from operators.analyzers.base import Analyzer
from operators.analyzers.cost import CostAnalyzer
from operators.analyzers.pattern import PatternAnalyzer
from operators.analyzers.performance import PerformanceAnalyzer
from operators.analyzers.quality import QualityAnalyzer
from operators.analyzers.registry import ANALYZERS, KIND_STATISTIC, build_analyzers
from operators.analyzers.runner import AnalysisRunner

__all__ = [
    "ANALYZERS",
    "KIND_STATISTIC",
    "AnalysisRunner",
    "Analyzer",
    "AnomalyAnalyzer",
    "CostAnalyzer",
    "PatternAnalyzer",
    "PerformanceAnalyzer",
    "QualityAnalyzer",
    "build_analyzers",
]
