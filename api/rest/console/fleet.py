"""The fleet page's data: one row per (app, task) with the last day's numbers, filtered, sorted.

Pure functions over what the service layer returns (window stats, deployments, insights, the
active configs), so the page logic is tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.app_config import AppConfig
from core.decisions import Deployment
from core.insights import Insight
from core.stats import WindowStats

__all__ = [
    "SORT_KEYS",
    "FleetFilter",
    "FleetRow",
    "build_rows",
    "select_rows",
    "weighted_quantile",
]

SortKey = Literal["app", "cost_per_call", "p95", "error_rate", "quality", "calls", "insights"]
SORT_KEYS: tuple[SortKey, ...] = (
    "app",
    "calls",
    "cost_per_call",
    "p95",
    "error_rate",
    "quality",
    "insights",
)


@dataclass(frozen=True)
class FleetRow:
    """One task of one app over the last day."""

    app: str
    task: str
    model: str | None
    calls: int
    cost_per_call: float | None
    p95_ms: float | None
    error_rate: float | None
    quality: float | None
    rollout: Deployment | None
    insights: int
    critical: int
    config_version: int | None


@dataclass(frozen=True)
class FleetFilter:
    """What the fleet page's form asks for (query parameters)."""

    q: str = ""
    """Part of the app or task name (case-insensitive)."""
    rollout_only: bool = False
    with_insights: bool = False
    sort: SortKey = "app"
    descending: bool = False
    models: tuple[str, ...] = field(default=())


def weighted_quantile(pairs: Iterable[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of values with weights (``None`` without any weight)."""
    ordered = sorted((v, w) for v, w in pairs if w > 0)
    total = sum(w for _, w in ordered)
    if total <= 0:
        return None
    seen = 0.0
    for value, weight in ordered:
        seen += weight
        if seen >= q * total:
            return value
    return ordered[-1][0]


def _p95(windows: Sequence[WindowStats]) -> float | None:
    """p95 over the windows: each window's latency sample stands for its calls."""
    pairs: list[tuple[float, float]] = []
    for w in windows:
        if w.latency_sample:
            share = w.count / len(w.latency_sample)
            pairs += [(v, share) for v in w.latency_sample]
        elif w.count:
            pairs.append((w.latency_ms.p95, float(w.count)))
    return weighted_quantile(pairs, 0.95)


def _row(
    app: str,
    task: str,
    windows: Sequence[WindowStats],
    config: AppConfig | None,
    rollout: Deployment | None,
    insights: Sequence[Insight],
) -> FleetRow:
    calls = sum(w.count for w in windows)
    errors = sum(w.error_count for w in windows)
    cost = sum(w.cost_usd for w in windows)
    scored = sum(w.quality.count for w in windows)
    quality = (
        sum((w.quality.mean or 0.0) * w.quality.count for w in windows) / scored if scored else None
    )
    task_config = config.tasks.get(task) if config is not None else None
    return FleetRow(
        app=app,
        task=task,
        model=task_config.model if task_config is not None else None,
        calls=calls,
        cost_per_call=cost / calls if calls else None,
        p95_ms=_p95(windows),
        error_rate=errors / calls if calls else None,
        quality=quality,
        rollout=rollout,
        insights=len(insights),
        critical=sum(1 for i in insights if i.severity == "critical"),
        config_version=config.version if config is not None else None,
    )


def build_rows(
    configs: Mapping[str, AppConfig | None],
    windows: Iterable[WindowStats],
    rollouts: Iterable[Deployment],
    insights: Iterable[Insight],
) -> list[FleetRow]:
    """One row per (app, task) known from a config or a window.

    Args:
        configs: Active config per app (``None``: an app with windows but no config).
        windows: The last day's tumbling windows of those apps.
        rollouts: Open deployments (running, paused, watching); the newest per task wins.
        insights: The last day's insights.
    """
    by_task: dict[tuple[str, str], list[WindowStats]] = {}
    for w in windows:
        by_task.setdefault((w.app, w.task), []).append(w)
    for app, config in configs.items():
        for task in config.tasks if config is not None else ():
            by_task.setdefault((app, task), [])
    open_by_task: dict[tuple[str, str], Deployment] = {}
    for d in sorted(rollouts, key=lambda d: d.started_at):
        open_by_task[(d.app, d.task)] = d
    found: dict[tuple[str, str], list[Insight]] = {}
    for i in insights:
        found.setdefault((i.app, i.task), []).append(i)
    return [
        _row(
            app,
            task,
            ws,
            configs.get(app),
            open_by_task.get((app, task)),
            found.get((app, task), []),
        )
        for (app, task), ws in sorted(by_task.items())
    ]


def _sort_value(row: FleetRow, key: SortKey) -> tuple[int, float | str]:
    """Rows without the value sort last either way (the flag comes first)."""
    if key == "app":
        return (0, f"{row.app}\x00{row.task}")
    value: float | None = {
        "calls": float(row.calls),
        "cost_per_call": row.cost_per_call,
        "p95": row.p95_ms,
        "error_rate": row.error_rate,
        "quality": row.quality,
        "insights": float(row.insights),
    }[key]
    return (0, value) if value is not None else (1, 0.0)


def select_rows(rows: Sequence[FleetRow], wanted: FleetFilter) -> list[FleetRow]:
    """The rows the filter keeps, in the order it asks for (missing values last)."""
    needle = wanted.q.strip().lower()
    kept = [
        r
        for r in rows
        if (not needle or needle in r.app.lower() or needle in r.task.lower())
        and (not wanted.rollout_only or r.rollout is not None)
        and (not wanted.with_insights or r.insights > 0)
        and (not wanted.models or r.model in wanted.models)
    ]
    present = [r for r in kept if _sort_value(r, wanted.sort)[0] == 0]
    missing = [r for r in kept if _sort_value(r, wanted.sort)[0] == 1]
    present.sort(key=lambda r: _sort_value(r, wanted.sort)[1], reverse=wanted.descending)
    return present + missing
