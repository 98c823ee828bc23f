"""Runs every analyzer over one app's closed tumbling windows, period by period.

Windows arrive in the order the window state closes them: all segments of one period together,
periods in time order. The runner gathers one period's windows into a :class:`WindowGroup` and
hands it to each analyzer when the next period starts (or the input ends). Corrections
(revisions > 0) and periods older than the last analyzed one do not re-run the analyzers: a
baseline must see each period once, in order.

A period may hold several windows of one (task, model, variant), one per config version the
calls were served under: the analyzers judge the segment as a whole, so they get them merged
(:func:`operators.window_merge.merge_versions`); the :class:`Period` keeps them apart for the
strategies and the canary judge.

An analyzer that reads another's state (:class:`operators.analyzers.base.PeerReader`, e.g. the
anomaly analyzer reading the pattern analyzer's profiles) gets that state as it was before the
period, when that analyzer runs here too, instead of learning its own copy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from msgspec.structs import replace

from core.insights import Insight, WindowGroup
from core.stats import WindowStats
from operators.analyzers.base import Analyzer, PeerReader
from operators.window_merge import merge_versions

_log = logging.getLogger(__name__)

__all__ = ["AnalysisRunner", "Period"]


class Period(msgspec.Struct, frozen=True):
    """One analyzed period of one app: its windows and what the analyzers found."""

    group: WindowGroup
    insights: list[Insight]


class AnalysisRunner:
    """One app's analyzer states and the period being gathered; picklable."""

    def __init__(self, analyzers: Sequence[Analyzer[Any]]) -> None:
        self._analyzers = list(analyzers)
        self._states: dict[str, Any] = {a.name: a.initial_state() for a in self._analyzers}
        self._pending: list[WindowStats] = []
        self._last_start: datetime | None = None
        self.skipped = 0  # corrections and out-of-order periods not analyzed
        self.failures: dict[str, int] = {}  # analyzer → periods it raised on
        self._raised: list[tuple[str, BaseException, WindowGroup]] = []  # since take_failures

    def __getstate__(self) -> dict[str, Any]:
        # Analyzers are configuration: the resuming run brings its own (current settings).
        return {k: v for k, v in self.__dict__.items() if k not in ("_analyzers", "_raised")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._analyzers = []
        self._raised = []

    def take_failures(self) -> list[tuple[str, BaseException, WindowGroup]]:
        """The analyzer failures since the last call: (analyzer, exception, period)."""
        out, self._raised = self._raised, []
        return out

    def with_analyzers(self, analyzers: Sequence[Analyzer[Any]]) -> AnalysisRunner:
        """Attach the analyzers of this run after a restore (new ones start fresh)."""
        self._analyzers = list(analyzers)
        for a in self._analyzers:
            self._states.setdefault(a.name, a.initial_state())
        return self

    def take(self, windows: Sequence[WindowStats]) -> list[Insight]:
        """Add closed windows; returns the insights of every period they complete."""
        return [i for period in self.take_periods(windows) for i in period.insights]

    def flush(self) -> list[Insight]:
        """End of input: analyze the period still being gathered."""
        return [i for period in self.flush_periods() for i in period.insights]

    def take_periods(self, windows: Sequence[WindowStats]) -> list[Period]:
        """Add closed windows; returns every period they complete, with its insights."""
        out: list[Period] = []
        for w in windows:
            if w.kind != "tumbling":
                continue
            if w.revision > 0 or (
                self._last_start is not None and w.window_start <= self._last_start
            ):
                self.skipped += 1
                continue
            if self._pending and w.window_start != self._pending[0].window_start:
                out.append(self._run())
            self._pending.append(w)
        return out

    def flush_periods(self) -> list[Period]:
        """End of input: the period still being gathered, analyzed."""
        return [self._run()] if self._pending else []

    def _run(self) -> Period:
        first = self._pending[0]
        group = WindowGroup(
            app=first.app,
            window_start=first.window_start,
            window_end=first.window_end,
            windows=self._pending,
        )
        self._pending = []
        self._last_start = group.window_start
        merged = merge_versions(group.windows)
        judged = group if len(merged) == len(group.windows) else replace(group, windows=merged)
        out: list[Insight] = []
        before = dict(self._states)  # the peers' states before this period
        running = {a.name for a in self._analyzers}
        for analyzer in self._analyzers:
            try:
                if isinstance(analyzer, PeerReader) and analyzer.reads in running:
                    state, insights = analyzer.analyze_with(
                        self._states[analyzer.name], judged, before[analyzer.reads]
                    )
                else:
                    state, insights = analyzer.analyze(self._states[analyzer.name], judged)
            except Exception as exc:
                # One analyzer's bug must not stop the processor (it would crash-loop on the
                # same period): log it, keep its previous state, let the others judge.
                self.failures[analyzer.name] = self.failures.get(analyzer.name, 0) + 1
                self._raised.append((analyzer.name, exc, group))
                _log.exception(
                    "analyzer %s failed on app %s, period %s",
                    analyzer.name,
                    group.app,
                    group.window_start.isoformat(),
                )
                continue
            self._states[analyzer.name] = state
            out += insights
        return Period(group=group, insights=out)
