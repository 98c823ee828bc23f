"""The optimizer in-process, period by period, through the same operators as the dataflow.

``decode_records`` → :class:`AppWindows` (per app) → :class:`AnalysisRunner` →
:class:`StrategyRunner` → :class:`Actuator` on a database: what ``flows.pipeline`` wires with
Bytewax, minus Bytewax (no watermark from idle time: a closed period is the events' own). Used
by ``bench.decision_quality`` and ``llmopt simulate --target inprocess``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from core.app_config import AppConfig
from core.events import decode_records
from core.settings import Settings
from core.stats import WindowStats
from operators.analyzers import AnalysisRunner, Analyzer, build_analyzers
from operators.analyzers.runner import Period
from operators.app_windows import AppWindows, Output, WindowSpec
from operators.pricing import PriceTable
from operators.strategies import Strategy, StrategyRunner, build_strategies
from sinks.actuator import Actuator, PeriodWork

__all__ = ["InProcessOptimizer"]


@dataclass(slots=True)
class _App:
    windows: AppWindows
    analysis: AnalysisRunner
    strategies: StrategyRunner


@dataclass(slots=True)
class _Counts:
    records: int = 0
    rejected: int = 0
    periods: int = 0
    proposals: int = 0
    started: int = 0
    strays: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class InProcessOptimizer:
    """Feeds JSON records through the optimizer's operators and its actuator.

    Args:
        settings: Windows, analyzers, strategies, canary and decision settings.
        engine: The actuator's database (migrated).
        publish: Receives each config the actuator changes (optional).
        on_period: Called with each period's work after the actuator applied it.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        publish: Callable[[AppConfig], None] | None = None,
        on_period: Callable[[PeriodWork], None] | None = None,
    ) -> None:
        self._spec = WindowSpec.from_settings(settings.processor)
        self._prices = PriceTable(settings.processor.prices)
        self._analyzers: list[Analyzer[Any]] = list(build_analyzers(settings))
        self._strategies: list[Strategy[Any]] = list(build_strategies(settings))
        self._actuator = Actuator(engine, settings, publish)
        self._apps: dict[str, _App] = {}
        self._on_period = on_period
        self.counts = _Counts()

    def _app(self, app: str) -> _App:
        found = self._apps.get(app)
        if found is None:
            found = self._apps[app] = _App(
                AppWindows(self._spec, self._prices),
                AnalysisRunner(self._analyzers),
                StrategyRunner(self._strategies),
            )
        return found

    def feed(self, records: list[bytes]) -> None:
        """Take records in arrival order; closed periods go through strategies and actuator."""
        decoded = decode_records(records, None)
        self.counts.records += len(records)
        self.counts.rejected += len(decoded.rejected)
        for _, reason in decoded.rejected:
            self.counts.reasons[reason] = self.counts.reasons.get(reason, 0) + 1
        for app, events in decoded.apps.items():
            state = self._app(app)
            self._outputs(state, state.windows.process_batch(events.calls, events.feedback, None))

    def finish(self) -> None:
        """End of input: close every window and run the last periods."""
        for state in self._apps.values():
            self._outputs(state, state.windows.flush())
            for period in state.analysis.flush_periods():
                self._act(state, period)

    def _outputs(self, state: _App, outputs: list[Output]) -> None:
        closed = [o for o in outputs if isinstance(o, WindowStats) and o.kind == "tumbling"]
        self.counts.strays += sum(1 for o in outputs if not isinstance(o, WindowStats))
        for period in state.analysis.take_periods(closed):
            self._act(state, period)

    def _act(self, state: _App, period: Period) -> None:
        group = period.group
        work = PeriodWork.of(group, state.strategies.take(group, period.insights))
        self.counts.periods += 1
        self.counts.proposals += len(work.proposals)
        self.counts.started += len(self._actuator.apply(work))
        if self._on_period is not None:
            self._on_period(work)
