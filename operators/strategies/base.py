"""What every strategy is: a plain typed object turning one period of a task into a proposal."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar

import msgspec

from core.app_config import TaskConfig
from core.decisions import Decision
from core.decisions import Strategy as StrategyName
from core.insights import Insight
from core.stats import WindowStats

__all__ = ["Strategy", "StrategyInput", "StrategyName"]

S = TypeVar("S")


class StrategyInput(msgspec.Struct, frozen=True, kw_only=True):
    """One period of one (app, task): what a strategy judges.

    Attributes:
        windows: The period's tumbling windows of (app, task): every model and variant.
        insights: The period's insights of (app, task) and the app-wide ones (task ``"*"``).
        config: The active task config when known (REST on-demand analysis); ``None`` in the
            dataflow, where the incumbent model is the one with the most baseline traffic.
    """

    app: str
    task: str
    window_start: datetime
    window_end: datetime
    windows: list[WindowStats]
    insights: list[Insight] = msgspec.field(default_factory=list)
    config: TaskConfig | None = None


class Strategy(Protocol[S]):
    """Proposes at most one change per period for one (app, task), keeping its own state.

    ``propose`` is pure given its inputs: time comes from the period (``window_end`` is the
    decision's ``created_at``), randomness is seeded from (app, task, window_start), and the
    state it returns is picklable (it lives in recovery snapshots) and never mutated in place.
    """

    name: StrategyName

    def initial_state(self) -> S:
        """The state before the first period of a task."""
        ...

    def propose(self, state: S, period: StrategyInput) -> tuple[S, Decision | None]:
        """Judge one period of one task; periods arrive in time order."""
        ...
