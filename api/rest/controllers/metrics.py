"""``/api/v1/metrics``: stored window stats."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, Request, get
from litestar.params import Parameter

from api.rest.auth import role_guard
from api.rest.resources import resources_of
from api.service import MetricsSummary
from core.insights import Insight

__all__ = ["MetricsController"]


class MetricsController(Controller):
    """Window statistics per app and task."""

    path = "/api/v1/metrics"
    tags = ["metrics"]
    guards = [role_guard]

    @get(
        "/summary",
        summary="Stored window stats of an app (optionally one task) with totals",
        opt={"roles": ("admin", "operator", "viewer")},
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
        limit: Annotated[int, Parameter(ge=1, le=10_000)] = 1000,
    ) -> MetricsSummary:
        """Windows oldest first, with sums over them."""
        queries = resources_of(request.app).metrics
        return await asyncio.to_thread(
            queries.summary, app, task, kind=kind, since=since, until=until, limit=limit
        )

    @get(
        "/insights",
        summary="What the analyzers found for an app, newest first, with their evidence",
        opt={"roles": ("admin", "operator", "viewer")},
    )
    async def insights(
        self,
        request: Request,  # type: ignore[type-arg]
        app: Annotated[str, Parameter(min_length=1, max_length=512, description="application")],
        task: Annotated[str | None, Parameter(max_length=512, description="task")] = None,
        analyzer: Annotated[
            Literal["performance", "cost", "quality", "pattern", "anomaly"] | None,
            Parameter(description="analyzer"),
        ] = None,
        severity: Annotated[
            Literal["info", "warning", "critical"] | None, Parameter(description="severity")
        ] = None,
        since: Annotated[datetime | None, Parameter(description="window_start >= since")] = None,
        until: Annotated[datetime | None, Parameter(description="window_end <= until")] = None,
        limit: Annotated[int, Parameter(ge=1, le=10_000)] = 100,
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
