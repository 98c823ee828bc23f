"""The task page's data: charts per model and variant, events on the time axis, config history.

A chart is plain data (:class:`Chart`) that the page embeds as JSON for uPlot and also shows as a
table, so the page reads without JavaScript.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from api.service.series import TimeSeries
from core.app_config import ConfigVersion
from core.decisions import Decision, Deployment

__all__ = [
    "TASK_METRICS",
    "Chart",
    "ChartSeries",
    "DiffRow",
    "Marker",
    "VersionView",
    "build_chart",
    "build_markers",
    "version_views",
]

#: (series metric, chart title, unit) of the task page's charts, in page order.
TASK_METRICS: tuple[tuple[str, str, str], ...] = (
    ("count", "Calls per window", "calls"),
    ("cost_usd", "Cost per window", "USD"),
    ("latency_p95", "p95 latency", "ms"),
    ("quality_mean", "Quality (mean score)", "0..1"),
    ("error_rate", "Error rate", "share"),
)

MarkerKind = Literal["decision", "stage", "verdict", "config", "insight"]


@dataclass(frozen=True)
class Marker:
    """Something that happened at a time: drawn as a vertical line, listed in a table."""

    at: datetime
    kind: MarkerKind
    label: str
    href: str | None = None


@dataclass(frozen=True)
class ChartSeries:
    """One line: a model on a variant, values aligned with the chart's times."""

    label: str
    values: list[float | None]


@dataclass(frozen=True)
class Chart:
    """One metric over time with the events of the page."""

    id: str
    title: str
    unit: str
    times: list[datetime]
    series: list[ChartSeries]
    markers: list[Marker]

    @property
    def empty(self) -> bool:
        """Whether there is nothing to draw."""
        return not self.times

    def to_json(self) -> str:
        """The chart for the page's script (times in epoch seconds), safe inside ``<script>``."""
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "x": [t.timestamp() for t in self.times],
            "series": [{"label": s.label, "values": s.values} for s in self.series],
            "markers": [
                {"t": m.at.timestamp(), "kind": m.kind, "label": m.label} for m in self.markers
            ],
        }
        return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e")

    def rows(self) -> list[tuple[datetime, list[float | None]]]:
        """Table rows: a time and each series' value at it."""
        return [(t, [s.values[i] for s in self.series]) for i, t in enumerate(self.times)]


def _with_gaps(times: list[datetime]) -> list[datetime]:
    """``times`` with one empty slot after each stretch without windows (the line breaks there).

    The step is the shortest distance between two windows; a distance over twice that is a gap.
    """
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    if not steps:
        return times
    step = min(steps)
    out = times[:1]
    for t in times[1:]:
        if t - out[-1] > 2 * step:
            out.append(out[-1] + step)
        out.append(t)
    return out


def build_chart(
    chart_id: str, title: str, unit: str, series: TimeSeries, markers: Sequence[Marker]
) -> Chart:
    """Align the segments of ``series`` on one time axis (a gap where a segment has no window)."""
    times = _with_gaps(sorted({p.t for s in series.series for p in s.points}))
    index = {t: i for i, t in enumerate(times)}
    lines = []
    for s in series.series:
        values: list[float | None] = [None] * len(times)
        for p in s.points:
            values[index[p.t]] = p.value
        lines.append(ChartSeries(label=f"{s.model} · {s.variant}", values=values))
    if times:
        markers = [m for m in markers if times[0] <= m.at <= times[-1]]
    return Chart(
        id=chart_id, title=title, unit=unit, times=times, series=lines, markers=list(markers)
    )


def build_markers(
    decisions: Iterable[Decision],
    deployments: Iterable[Deployment],
    versions: Iterable[ConfigVersion],
    task: str,
) -> list[Marker]:
    """Decisions, stages, verdicts and config versions of ``task``, oldest first."""
    out: list[Marker] = []
    for d in decisions:
        target = d.action.get("model") or d.strategy
        out.append(
            Marker(
                d.created_at,
                "decision",
                f"decision {d.strategy} → {target} ({d.status})",
                f"/console/rollouts/{d.id}",
            )
        )
    for dep in deployments:
        out.append(Marker(dep.started_at, "stage", f"canary started, version {dep.canary_version}"))
        for v in dep.verdicts:
            out.append(
                Marker(
                    v.window_end,
                    "verdict",
                    f"stage {v.stage} at {v.weight:.0%}: {v.outcome}",
                    f"/console/rollouts/{dep.decision_id}",
                )
            )
        if dep.finished_at is not None:
            out.append(Marker(dep.finished_at, "stage", f"rollout {dep.status}"))
    for version in versions:
        touches = any(k == task or k.startswith(task + ".") for k in version.diff)
        if touches or not version.diff:  # a change of this task, or the first version
            out.append(Marker(version.created_at, "config", f"config v{version.version}"))
    return sorted(out, key=lambda m: (m.at, m.kind, m.label))


@dataclass(frozen=True)
class DiffRow:
    """One changed field: ``task.field`` and its values before and after."""

    field: str
    before: str
    after: str


@dataclass(frozen=True)
class VersionView:
    """One config version as the history lists it."""

    version: int
    created_at: datetime
    author: str
    reason: str
    changes: list[DiffRow]
    decision_key: str | None


def _show(value: Any) -> str:
    return "—" if value is None else json.dumps(value, sort_keys=True, default=str)


def _flatten(key: str, before: Any, after: Any) -> list[DiffRow]:
    """Rows of what differs; two objects are compared field by field (``task.canary.weight``)."""
    if isinstance(before, dict) and isinstance(after, dict):
        rows: list[DiffRow] = []
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                rows += _flatten(f"{key}.{name}", before.get(name), after.get(name))
        return rows
    return [DiffRow(key, _show(before), _show(after))]


def version_views(versions: Iterable[ConfigVersion], task: str | None = None) -> list[VersionView]:
    """Versions newest first with their diff rows (only ``task``'s fields when given)."""
    out = []
    for v in sorted(versions, key=lambda v: v.version, reverse=True):
        rows = [
            row
            for key, change in sorted(v.diff.items())
            if task is None or key == task or key.startswith(task + ".")
            for row in _flatten(key, change.get("from"), change.get("to"))
        ]
        out.append(
            VersionView(
                version=v.version,
                created_at=v.created_at,
                author=v.author,
                reason=v.reason,
                changes=rows,
                decision_key=v.decision_key,
            )
        )
    return out
