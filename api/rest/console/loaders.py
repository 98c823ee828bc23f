"""What each console page reads from the service layer (the same services as the REST API).

Plain functions, run off the event loop by the controller; they only gather and hand the data
to the view-model modules (:mod:`~api.rest.console.fleet`, :mod:`~api.rest.console.timeline`,
:mod:`~api.rest.console.rollout`, :mod:`~api.rest.console.insight_view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from api.rest.console.fleet import FleetRow, build_rows
from api.rest.console.insight_view import (
    InsightQuery,
    context_range,
    select_insights,
    series_metric,
)
from api.rest.console.rollout import RolloutView, build_rollout
from api.rest.console.timeline import (
    TASK_METRICS,
    Chart,
    Marker,
    VersionView,
    build_chart,
    build_markers,
    version_views,
)
from api.service.layer import ServiceLayer
from core.app_config import AppConfig, TaskConfig
from core.decisions import Decision, Deployment
from core.errors import NotFoundError
from core.insights import Insight

__all__ = [
    "InsightItem",
    "TaskPage",
    "active_configs",
    "load_fleet",
    "load_insights",
    "load_rollout",
    "load_rollouts",
    "load_task",
]

_OPEN = ["running", "paused", "watching"]
MAX_WINDOWS = 10_000
#: Insights shown with their series on one page (each costs one series query).
MAX_INSIGHT_CHARTS = 12


def active_configs(layer: ServiceLayer) -> dict[str, AppConfig | None]:
    """The active config of every app that has one (newest version, from the database)."""
    out: dict[str, AppConfig | None] = {}
    for app in layer.configs.apps():
        try:
            out[app] = layer.configs.versions(app, limit=1)[0].as_config()
        except (NotFoundError, IndexError):
            out[app] = None
    return out


def load_fleet(layer: ServiceLayer, now: datetime, span: timedelta) -> list[FleetRow]:
    """Every (app, task) with its last ``span`` of windows, open rollout and insights."""
    configs = active_configs(layer)
    since = now - span
    windows = []
    insights: list[Insight] = []
    for app in configs:
        windows += layer.metrics.summary(app, since=since, limit=MAX_WINDOWS).windows
        insights += layer.metrics.insights(app, since=since, limit=MAX_WINDOWS)
    rollouts = layer.deployments.list(status=_OPEN, limit=500).items
    return build_rows(configs, windows, rollouts, insights)


@dataclass(frozen=True)
class TaskPage:
    """The task page: charts with events, the active config, the history."""

    app: str
    task: str
    charts: list[Chart]
    markers: list[Marker]
    active: TaskConfig | None
    active_version: int | None
    active_json: str
    history: list[VersionView]
    decisions: list[Decision]
    deployments: list[Deployment]


def load_task(layer: ServiceLayer, app: str, task: str, now: datetime, span: timedelta) -> TaskPage:
    """Series of the task's metrics over ``span``, its decisions, rollouts and config history."""
    since = now - span
    decisions = layer.recommendations.list(app=app, task=task, limit=100).items
    listed = layer.deployments.list(app=app, task=task, limit=20).items
    deployments = [layer.deployments.get(d.id) for d in listed]
    try:
        versions = layer.configs.versions(app, limit=100)
    except NotFoundError:
        versions = []
    markers = build_markers(decisions, deployments, versions, task)
    # every period's verdict is in the events table; the charts mark only the decisive ones
    on_charts = [m for m in markers if m.kind != "verdict" or not m.label.endswith("inconclusive")]
    charts = [
        build_chart(
            f"chart-{metric}",
            title,
            unit,
            layer.metrics.series(app, metric, task=task, since=since, limit=MAX_WINDOWS),
            on_charts,
        )
        for metric, title, unit in TASK_METRICS
    ]
    newest = versions[0] if versions else None
    active = newest.tasks.get(task) if newest is not None else None
    return TaskPage(
        app=app,
        task=task,
        charts=charts,
        markers=[m for m in markers if m.at >= since],
        active=active,
        active_version=newest.version if newest is not None else None,
        active_json=msgspec.json.format(msgspec.json.encode(active), indent=2).decode()
        if active is not None
        else "",
        history=version_views(versions, task),
        decisions=decisions,
        deployments=deployments,
    )


def load_rollouts(layer: ServiceLayer, status: list[str] | None) -> list[Decision]:
    """Decisions newest first (all statuses, or those asked for)."""
    return layer.recommendations.list(status=status, limit=200).items


def load_rollout(layer: ServiceLayer, decision_id: str, *, can_act: bool) -> RolloutView:
    """One decision with its deployment and every verdict (NotFoundError when unknown)."""
    detail = layer.recommendations.get(decision_id)
    deployment = (
        layer.deployments.get(detail.deployment.id) if detail.deployment is not None else None
    )
    return build_rollout(detail.decision, deployment, can_act=can_act)


@dataclass(frozen=True)
class InsightItem:
    """An insight and, when its metric is a window metric, the series around it."""

    insight: Insight
    chart: Chart | None


def load_insights(
    layer: ServiceLayer, query: InsightQuery, now: datetime, span: timedelta
) -> list[InsightItem]:
    """Anomaly and drift insights of the last ``span`` (newest first), the first with series."""
    apps = [query.app] if query.app else layer.configs.apps()
    found: list[Insight] = []
    for app in apps:
        found += layer.metrics.insights(app, since=now - span, limit=MAX_WINDOWS)
    items = []
    for n, insight in enumerate(select_insights(found, query)):
        mapped = series_metric(insight.metric)
        chart = None
        if mapped is not None and n < MAX_INSIGHT_CHARTS:
            metric, model = mapped
            since, until = context_range(insight)
            series = layer.metrics.series(
                insight.app, metric, task=insight.task, model=model, since=since, until=until
            )
            marker = Marker(insight.window_start, "insight", f"{insight.kind} ({insight.severity})")
            chart = build_chart(f"insight-{n}", insight.metric, metric, series, [marker])
        items.append(InsightItem(insight, chart))
    return items
