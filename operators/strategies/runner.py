"""Runs every strategy over one app's periods: per (app, task) states, proposals out.

The runner gets one period of one app at a time (the analysis runner's :class:`WindowGroup` and
the insights it produced), splits it by task and gives each strategy its own state of that
(app, task). Periods not newer than the last one taken are skipped (a recovery replay must not
propose twice); a strategy that raises is logged and skipped for that period, keeping its state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from core.app_config import TaskConfig
from core.decisions import Decision
from core.insights import APP_WIDE, Insight, WindowGroup
from operators.strategies.base import Strategy, StrategyInput

_log = logging.getLogger(__name__)

__all__ = ["StrategyRunner"]


class StrategyRunner:
    """Per-(app, task) states of every strategy; picklable (strategies are re-attached)."""

    def __init__(self, strategies: Sequence[Strategy[Any]]) -> None:
        self._strategies = list(strategies)
        self._states: dict[tuple[str, str], dict[str, Any]] = {}
        self._last: dict[str, datetime] = {}  # app → start of the last period taken
        self.skipped = 0  # periods not newer than the last one of their app
        self.failures: dict[str, int] = {}  # strategy → periods it raised on
        self._raised: list[tuple[str, BaseException, StrategyInput]] = []  # since take_failures

    def __getstate__(self) -> dict[str, Any]:
        # Strategies are configuration: the resuming run brings its own (current settings).
        return {k: v for k, v in self.__dict__.items() if k not in ("_strategies", "_raised")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._strategies = []
        self._raised = []

    def take_failures(self) -> list[tuple[str, BaseException, StrategyInput]]:
        """The strategy failures since the last call: (strategy, exception, its input)."""
        out, self._raised = self._raised, []
        return out

    def with_strategies(self, strategies: Sequence[Strategy[Any]]) -> StrategyRunner:
        """Attach the strategies of this run after a restore (new ones start fresh)."""
        self._strategies = list(strategies)
        return self

    def take(
        self,
        group: WindowGroup,
        insights: Sequence[Insight],
        configs: Mapping[str, TaskConfig] | None = None,
    ) -> list[Decision]:
        """One period of one app → proposals, at most one per strategy and task.

        Args:
            group: The app's tumbling windows of the period.
            insights: The period's insights of the app (any task, app-wide ones included).
            configs: The active config of each task, when known (task → config).

        Returns:
            The proposals, by task then strategy order.
        """
        last = self._last.get(group.app)
        if last is not None and group.window_start <= last:
            self.skipped += 1
            return []
        self._last[group.app] = group.window_start
        out: list[Decision] = []
        for task, windows in sorted(group.tasks().items()):
            if task == APP_WIDE:
                continue
            period = StrategyInput(
                app=group.app,
                task=task,
                window_start=group.window_start,
                window_end=group.window_end,
                windows=windows,
                insights=[i for i in insights if i.task in (task, APP_WIDE)],
                config=(configs or {}).get(task),
            )
            states = self._states.setdefault((group.app, task), {})
            for strategy in self._strategies:
                state = states.get(strategy.name)
                if state is None:
                    state = strategy.initial_state()
                try:
                    state, decision = strategy.propose(state, period)
                except Exception as exc:
                    # One strategy's bug must not stop the processor: log, keep its state.
                    self.failures[strategy.name] = self.failures.get(strategy.name, 0) + 1
                    self._raised.append((strategy.name, exc, period))
                    _log.exception(
                        "strategy %s failed on %s/%s, period %s",
                        strategy.name, group.app, task, group.window_start.isoformat(),
                    )  # fmt: skip
                    continue
                states[strategy.name] = state
                if decision is not None:
                    out.append(decision)
        return out
