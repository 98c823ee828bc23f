"""``/api/v1/metrics``: stored window stats."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, Request, get
from litestar.params import Parameter

from api.rest.params import page_limit
from api.rest.resources import resources_of
from api.service import MetricsSummary, TimeSeries
from api.service.series import SeriesMetric
from core.insights import AnalyzerName, Insight, Severity

__all__ = ["MetricsController"]


class MetricsController(Controller):
    """Window statistics per app and task."""

    path = "/api/v1/metrics"
    tags = ["metrics"]

    @get(
        "/summary",
        summary="Stored window stats of an app (optionally one task) with totals",
        opt={"permission": "metrics.read"},
    )
    async def summary(
        self,
        request: Request,  # type: ignore[type-arg]
        app: Annotated[str, Parameter(min_length=1, max_length=512, description="application")],
        task: Annotated[str | None, Parameter(max_length=512, description="task")] = None,
        kind: Annotated[
            Literal["tumbling", "sliding"], Parameter(description="window kind")
        ] = "tumbling",
        since: Annotated[datetime | None, Parameter(description="window_start >= since")] = None,
        until: Annotated[datetime | None, Parameter(description="window_end <= until")] = None,
        limit: Annotated[int, page_limit(10_000)] = 1000,
    ) -> MetricsSummary:
        """Windows oldest first, with sums over them."""
        queries = resources_of(request.app).metrics
        return await asyncio.to_thread(
            queries.summary, app, task, kind=kind, since=since, until=until, limit=limit
        )

    @get(
        "/insights",
        summary="What the analyzers found for an app, newest first, with their evidence",
        opt={"permission": "metrics.read"},
    )
    async def insights(
        self,
        request: Request,  # type: ignore[type-arg]
        app: Annotated[str, Parameter(min_length=1, max_length=512, description="application")],
        task: Annotated[str | None, Parameter(max_length=512, description="task")] = None,
        analyzer: Annotated[
            AnalyzerName | None,
            Parameter(description="analyzer"),
        ] = None,
        severity: Annotated[Severity | None, Parameter(description="severity")] = None,
        since: Annotated[datetime | None, Parameter(description="window_start >= since")] = None,
        until: Annotated[datetime | None, Parameter(description="window_end <= until")] = None,
        limit: Annotated[int, page_limit(10_000)] = 100,
    ) -> list[Insight]:
        """Insights with their metric, value, baseline, score and evidence."""
        queries = resources_of(request.app).metrics
        return await asyncio.to_thread(
            queries.insights,
            app,
            task,
            analyzer=analyzer,
            severity=severity,
            since=since,
            until=until,
            limit=limit,
        )

    @get(
        "/series",
        summary="A window metric over time, one series per (task, model, variant)",
        opt={"permission": "metrics.read"},
    )
    async def series(
        self,
        request: Request,  # type: ignore[type-arg]
        app: Annotated[str, Parameter(min_length=1, max_length=512, description="application")],
        metric: Annotated[SeriesMetric, Parameter(description="window metric")] = "latency_p95",
        task: Annotated[str | None, Parameter(max_length=512)] = None,
        model: Annotated[str | None, Parameter(max_length=512)] = None,
        variant: Annotated[Literal["baseline", "canary"] | None, Parameter()] = None,
        kind: Annotated[
            Literal["tumbling", "sliding"], Parameter(description="window kind")
        ] = "tumbling",
        since: Annotated[datetime | None, Parameter(description="window_start >= since")] = None,
        until: Annotated[datetime | None, Parameter(description="window_end <= until")] = None,
        limit: Annotated[int, page_limit(10_000)] = 1000,
    ) -> TimeSeries:
        """Points ``{t, value}`` oldest first per segment."""
        queries = resources_of(request.app).metrics
        return await asyncio.to_thread(
            queries.series,
            app,
            metric,
            task=task,
            model=model,
            variant=variant,
            kind=kind,
            since=since,
            until=until,
            limit=limit,
        )
