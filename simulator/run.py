"""Drive a fleet through simulated time: read configs, serve a tick, send it, pace.

Simulated time advances tick by tick from the scenario's start; each tick's calls are served
with the configs read at its start and handed to the sink. ``pace`` runs after each tick: a
:class:`WallClockPacer` keeps simulated time at ``speed`` times the wall clock (0: as fast as
possible); tests pass a pacer that waits for the optimizer to catch up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.app_config import PromptConfig, ShadowConfig, TaskConfig
from simulator.fleet import Fleet
from simulator.sinks import TelemetrySink
from simulator.sources import ConfigSource

__all__ = ["Simulation", "WallClockPacer", "default_start"]


def default_start(duration: timedelta, now: datetime) -> datetime:
    """A start so that simulated time ends at ``now`` (whole minutes): never in the future."""
    at = now - duration
    return at.replace(second=0, microsecond=0)


class WallClockPacer:
    """Sleeps so that simulated time runs ``speed`` times as fast as the wall clock."""

    def __init__(self, start: datetime, speed: float) -> None:
        self._start = start
        self._speed = speed
        self._wall = time.monotonic()

    def __call__(self, now: datetime) -> None:
        """Wait until the wall clock catches up with ``now`` at this speed."""
        if self._speed <= 0:
            return
        due = (now - self._start).total_seconds() / self._speed
        wait = due - (time.monotonic() - self._wall)
        if wait > 0:
            time.sleep(wait)


@dataclass
class Simulation:
    """One run of ``fleet`` against ``source`` (configs) and ``sink`` (telemetry)."""

    fleet: Fleet
    source: ConfigSource
    sink: TelemetrySink
    tick: timedelta = timedelta(seconds=10)
    pace: Callable[[datetime], None] | None = None
    events: int = 0

    def __post_init__(self) -> None:
        self.now = self.fleet.start

    def seed_configs(self, shadow: ShadowConfig | None = None) -> None:
        """Give every app without a config its tasks' default models (and ``shadow``)."""
        for app in self.fleet.apps:
            tasks = {
                t.task: TaskConfig(
                    model=t.model,
                    shadow=shadow,
                    prompt=None if t.template is None else PromptConfig(template=t.template),
                )
                for t in self.fleet.scenario.tasks
                if t.app == app
            }
            self.source.seed(app, tasks)

    def run_until(self, end: datetime, stop: Callable[[datetime], bool] | None = None) -> None:
        """Serve ticks until ``end`` (or until ``stop(now)`` says so after a tick)."""
        while self.now < end:
            following = min(self.now + self.tick, end)
            configs = {app: self.source.config(app) for app in self.fleet.apps}
            events = self.fleet.calls(self.now, following, configs)
            if events:
                self.sink.send(events)
            self.events += len(events)
            self.now = following
            if self.pace is not None:
                self.pace(self.now)
            if stop is not None and stop(self.now):
                return

    def run_for(self, duration: timedelta) -> None:
        """Serve ``duration`` more of simulated time."""
        self.run_until(self.now + duration)
