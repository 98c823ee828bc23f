"""What every analyzer is: a plain typed object that turns window groups into insights."""

from __future__ import annotations

from typing import Protocol, TypeVar

from core.insights import AnalyzerName, Insight, WindowGroup

__all__ = ["Analyzer"]

S = TypeVar("S")


class Analyzer(Protocol[S]):
    """Judges one app's windows, period after period, keeping its own state (baselines).

    ``analyze`` must be pure given its inputs: it returns the next state (never mutating the
    one it got is not required, but the state must be picklable: it lives in recovery
    snapshots) and the insights of this period, each carrying its evidence.
    """

    name: AnalyzerName

    def initial_state(self) -> S:
        """The state before the first period of an app."""
        ...

    def analyze(self, state: S, group: WindowGroup) -> tuple[S, list[Insight]]:
        """Judge one period of one app; periods arrive in time order."""
        ...
