"""A small real analyzer for testing the analysis wiring independently of the real analyzers."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.insights import Insight, WindowGroup, insight_id


@dataclass
class PeriodLog:
    """What the analyzer saw: one entry per period, in order."""

    periods: list[tuple[str, int]] = field(default_factory=list)  # (window_start, windows)


class BusyTaskAnalyzer:
    """Flags every task whose period has more than ``limit`` calls (a warning with evidence)."""

    name = "performance"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def initial_state(self) -> PeriodLog:
        return PeriodLog()

    def analyze(self, state: PeriodLog, group: WindowGroup) -> tuple[PeriodLog, list[Insight]]:
        state.periods.append((group.window_start.isoformat(), len(group.windows)))
        out = []
        for task, windows in sorted(group.tasks().items()):
            calls = sum(w.count for w in windows)
            if calls > self.limit:
                out.append(
                    Insight(
                        id=insight_id(
                            group.app, task, self.name, "busy", group.window_start, "count"
                        ),
                        app=group.app,
                        task=task,
                        analyzer="performance",
                        kind="busy",
                        severity="warning",
                        window_start=group.window_start,
                        window_end=group.window_end,
                        metric="count",
                        value=float(calls),
                        baseline=float(self.limit),
                        score=calls / self.limit,
                        message=f"{calls} calls > {self.limit}",
                        evidence={"calls": float(calls), "limit": float(self.limit)},
                    )
                )
        return state, out
