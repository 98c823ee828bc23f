"""Window-stats queries behind ``/api/v1/metrics`` and ``MetricsService``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import msgspec

from api.service.series import SERIES_METRICS, TimeSeries, build_series
from core.errors import ValidationError
from core.insights import Insight
from core.stats import WindowStats
from storage.insights import InsightRepository
from storage.strays import StrayRepository
from storage.windows import WindowRepository

__all__ = ["MetricsQueries", "MetricsSummary", "SummaryTotals"]

MAX_WINDOWS = 10_000


class SummaryTotals(msgspec.Struct, frozen=True):
    """Sums over the windows of a summary."""

    windows: int
    count: int
    ok_count: int
    error_count: int
    error_rate: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float


class MetricsSummary(msgspec.Struct, frozen=True):
    """The stored windows of an app (optionally one task) and their totals."""

    app: str
    task: str | None
    kind: str
    totals: SummaryTotals
    strays: dict[str, int]
    """Late events and unmatched feedback stored for the app (and task), by kind."""
    windows: list[WindowStats]


def _totals(windows: Sequence[WindowStats]) -> SummaryTotals:
    count = sum(w.count for w in windows)
    errors = sum(w.error_count for w in windows)
    return SummaryTotals(
        windows=len(windows),
        count=count,
        ok_count=sum(w.ok_count for w in windows),
        error_count=errors,
        error_rate=errors / count if count else None,
        input_tokens=sum(w.input_tokens for w in windows),
        output_tokens=sum(w.output_tokens for w in windows),
        cost_usd=sum(w.cost_usd for w in windows),
    )


def _check_range(app: str, limit: int, since: datetime | None, until: datetime | None) -> None:
    if not app:
        raise ValidationError("app must not be empty")
    if not 1 <= limit <= MAX_WINDOWS:
        raise ValidationError(f"limit must be between 1 and {MAX_WINDOWS}, not {limit}")
    if since is not None and until is not None and since > until:
        raise ValidationError("since must not be after until")


class MetricsQueries:
    """Answers metrics questions from stored windows."""

    def __init__(
        self, windows: WindowRepository, strays: StrayRepository, insights: InsightRepository
    ) -> None:
        self._windows = windows
        self._strays = strays
        self._insights = insights

    def insights(
        self,
        app: str,
        task: str | None = None,
        *,
        analyzer: str | None = None,
        severity: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Insight]:
        """Insights of ``app`` (filters optional), newest window first."""
        _check_range(app, limit, since, until)
        return list(
            self._insights.list(
                app=app,
                task=task,
                analyzer=analyzer,
                severity=severity,
                since=since,
                until=until,
                limit=limit,
            )
        )

    def summary(
        self,
        app: str,
        task: str | None = None,
        *,
        kind: Literal["tumbling", "sliding"] = "tumbling",
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> MetricsSummary:
        """Windows of ``app`` (and ``task``) in ``[since, until]``, oldest first, with totals."""
        _check_range(app, limit, since, until)
        windows = list(
            self._windows.query(
                app=app, task=task, kind=kind, since=since, until=until, limit=limit
            )
        )
        strays: dict[str, int] = {"late": 0, "unmatched_feedback": 0}
        for (stray_task, stray_kind), n in self._strays.counts(app).items():
            if task is None or stray_task == task:
                strays[stray_kind] = strays.get(stray_kind, 0) + n
        return MetricsSummary(
            app=app, task=task, kind=kind, totals=_totals(windows), strays=strays, windows=windows
        )

    def series(
        self,
        app: str,
        metric: str,
        *,
        task: str | None = None,
        model: str | None = None,
        variant: str | None = None,
        kind: Literal["tumbling", "sliding"] = "tumbling",
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> TimeSeries:
        """``metric`` per window of ``app``, one series per (task, model, variant) segment."""
        _check_range(app, limit, since, until)
        if metric not in SERIES_METRICS:
            raise ValidationError(f"metric must be one of {', '.join(SERIES_METRICS)}")
        windows = [
            w
            for w in self._windows.query(
                app=app, task=task, kind=kind, since=since, until=until, limit=limit
            )
            if (model is None or w.model == model) and (variant is None or w.variant == variant)
        ]
        return build_series(app, metric, kind, windows)
