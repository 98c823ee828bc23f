"""The insights page's data: anomaly and drift insights, each with the series around it.

An insight names its metric in the analyzer's terms (``latency_ms.p95``, ``quality_mean@gpt-4o``);
:func:`series_metric` maps that to the window metric of :mod:`api.service.series` (and the model
it is about), so the page can show the metric from ``CONTEXT`` before to ``CONTEXT`` after.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.insights import Insight

__all__ = [
    "CONTEXT",
    "DRIFT_KINDS",
    "InsightQuery",
    "context_range",
    "is_anomaly_or_drift",
    "select_insights",
    "series_metric",
]

#: How much series the page shows on each side of an insight's window.
CONTEXT = timedelta(minutes=30)
#: Insight kinds that report a drift (a lasting change) rather than a point anomaly.
DRIFT_KINDS = frozenset({"quality_degradation", "drift", "trend", "latency_regression"})

_METRICS = {
    "latency_ms.p95": "latency_p95",
    "latency_ms.p50": "latency_p50",
    "latency_ms.p99": "latency_p99",
    "latency_p95": "latency_p95",
    "error_rate": "error_rate",
    "cost_usd_per_s": "cost_usd",
    "cost_usd": "cost_usd",
    "cost_per_success_usd": "cost_per_success_usd",
    "calls": "count",
    "count": "count",
    "rate_per_s": "rate_per_s",
    "quality_mean": "quality_mean",
    "quality": "quality_mean",
    "repeat_ratio": "repeat_ratio",
}


def series_metric(metric: str) -> tuple[str, str | None] | None:
    """The window metric and model (``None``: all) an insight's metric is about, if known."""
    name, _, model = metric.partition("@")
    found = _METRICS.get(name)
    return (found, model or None) if found is not None else None


def is_anomaly_or_drift(insight: Insight) -> bool:
    """Whether the insights page lists it: the anomaly analyzer's, or a drift of any analyzer."""
    return insight.analyzer == "anomaly" or insight.kind in DRIFT_KINDS or "drift" in insight.kind


@dataclass(frozen=True)
class InsightQuery:
    """The insights page's filters (query parameters)."""

    app: str | None = None
    severity: str | None = None
    kind: str | None = None


def select_insights(insights: Iterable[Insight], query: InsightQuery) -> list[Insight]:
    """Anomaly and drift insights matching the filters, newest window first."""
    kept = [
        i
        for i in insights
        if is_anomaly_or_drift(i)
        and (query.app is None or i.app == query.app)
        and (query.severity is None or i.severity == query.severity)
        and (query.kind is None or i.kind == query.kind)
    ]
    return sorted(kept, key=lambda i: (i.window_start, i.id), reverse=True)


def context_range(insight: Insight) -> tuple[datetime, datetime]:
    """The time range of the series shown around an insight."""
    return insight.window_start - CONTEXT, insight.window_end + CONTEXT
