"""Time series of one window metric per (task, model, variant) segment of an app."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

import msgspec

from core.stats import WindowStats
from operators.window_merge import merge_versions

__all__ = ["SERIES_METRICS", "Point", "Series", "SeriesMetric", "TimeSeries", "build_series"]

SeriesMetric = Literal[
    "count",
    "error_rate",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "ttft_p95",
    "cost_usd",
    "cost_per_success_usd",
    "quality_mean",
    "input_tokens",
    "output_tokens",
    "rate_per_s",
    "repeat_ratio",
]

SERIES_METRICS: dict[str, Callable[[WindowStats], float | None]] = {
    "count": lambda w: float(w.count),
    "error_rate": lambda w: w.error_count / w.count if w.count else None,
    "latency_p50": lambda w: w.latency_ms.p50,
    "latency_p95": lambda w: w.latency_ms.p95,
    "latency_p99": lambda w: w.latency_ms.p99,
    "ttft_p95": lambda w: w.ttft_ms.p95 if w.ttft_ms is not None else None,
    "cost_usd": lambda w: w.cost_usd,
    "cost_per_success_usd": lambda w: w.cost_per_success_usd,
    "quality_mean": lambda w: w.quality.mean,
    "input_tokens": lambda w: float(w.input_tokens),
    "output_tokens": lambda w: float(w.output_tokens),
    "rate_per_s": lambda w: w.rate_per_s,
    "repeat_ratio": lambda w: w.repeat_ratio,
}


class Point(msgspec.Struct, frozen=True, array_like=False):
    """One window's value (``None`` when the window has no such value, e.g. no quality)."""

    t: datetime
    value: float | None


class Series(msgspec.Struct, frozen=True, kw_only=True):
    """The points of one segment, oldest first."""

    task: str
    model: str
    variant: str
    points: list[Point]


class TimeSeries(msgspec.Struct, frozen=True, kw_only=True):
    """A metric of an app over time, one series per segment."""

    app: str
    metric: str
    kind: str
    series: list[Series]


def build_series(app: str, metric: str, kind: str, windows: Sequence[WindowStats]) -> TimeSeries:
    """Group windows by segment and take ``metric`` of each (windows oldest first).

    A segment's windows of one period under several config versions become one point (merged).
    """
    pick = SERIES_METRICS[metric]
    grouped: dict[tuple[str, str, str], list[Point]] = {}
    for w in merge_versions(windows):
        grouped.setdefault((w.task, w.model, w.variant), []).append(
            Point(t=w.window_start, value=pick(w))
        )
    return TimeSeries(
        app=app,
        metric=metric,
        kind=kind,
        series=[
            Series(task=t, model=m, variant=v, points=points)
            for (t, m, v), points in sorted(grouped.items())
        ],
    )
