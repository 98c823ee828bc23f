"""Insights (CONTRACT.md §3): what an analyzer found in the windows of one (app, task)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from core.stats import WindowStats

__all__ = [
    "APP_WIDE",
    "AnalyzerName",
    "Insight",
    "Severity",
    "WindowGroup",
    "insight_id",
    "make_insight",
]

APP_WIDE = "*"  # the task of findings about a whole app

AnalyzerName = Literal["performance", "cost", "quality", "pattern", "anomaly"]
Severity = Literal["info", "warning", "critical"]
_NAMESPACE = uuid.UUID("6f0c1c52-7d4e-4c53-9a55-5f1a3b3e7d21")


def insight_id(
    app: str, task: str, analyzer: str, kind: str, window_start: datetime, metric: str
) -> str:
    """A stable id: the same finding in a replay gets the same id (writes stay idempotent)."""
    key = "\x1f".join((app, task, analyzer, kind, window_start.isoformat(), metric))
    return str(uuid.uuid5(_NAMESPACE, key))


class Insight(msgspec.Struct, frozen=True, kw_only=True):
    """One finding, with the numbers behind it.

    ``evidence`` holds every number the analyzer used: the statistic (z, p-value, CUSUM sum…),
    sample sizes and the thresholds it compared against.
    """

    id: str
    app: str
    task: str
    analyzer: AnalyzerName
    kind: str
    severity: Severity
    window_start: datetime
    window_end: datetime
    metric: str
    value: float
    baseline: float | None
    score: float
    message: str
    evidence: dict[str, float | str] = msgspec.field(default_factory=dict)


class WindowGroup(msgspec.Struct, frozen=True, kw_only=True):
    """The tumbling windows of one app for one period: every task, model and variant.

    Analyzers judge each (app, task) from its windows; app-wide findings (budgets, total spend)
    use the task ``"*"``.
    """

    app: str
    window_start: datetime
    window_end: datetime
    windows: list[WindowStats]

    def tasks(self) -> dict[str, list[WindowStats]]:
        """The windows by task."""
        out: dict[str, list[WindowStats]] = {}
        for w in self.windows:
            out.setdefault(w.task, []).append(w)
        return out


def make_insight(
    analyzer: AnalyzerName,
    group: WindowGroup,
    task: str,
    kind: str,
    severity: Severity,
    metric: str,
    value: float,
    baseline: float | None,
    score: float,
    message: str,
    evidence: dict[str, float | str],
) -> Insight:
    """An insight about ``task`` in ``group``'s period, with its stable id.

    Analyzers bind their name once: ``_insight = functools.partial(make_insight, "cost")``.
    """
    return Insight(
        id=insight_id(group.app, task, analyzer, kind, group.window_start, metric),
        app=group.app,
        task=task,
        analyzer=analyzer,
        kind=kind,
        severity=severity,
        window_start=group.window_start,
        window_end=group.window_end,
        metric=metric,
        value=value,
        baseline=baseline,
        score=score,
        message=message,
        evidence=evidence,
    )
