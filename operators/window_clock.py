"""The event-time clock of one app: newest event time, watermark, idle advance.

Bytewax's windowing calls this the clock: the watermark is the newest event time seen minus the
allowed lateness; with no new events it moves on with system time (idle advance), so the last
windows of a quiet app still close. ``closed`` is how far windows were emitted: the watermark
events are judged against never falls behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAR_PAST", "EventClock"]

FAR_PAST = -(2**62)
"""An event time (ms) before every real one."""


@dataclass(slots=True)
class EventClock:
    """Newest event time and watermark of one app, in epoch milliseconds."""

    lateness: int
    newest: int | None = None  # the newest event time seen
    seen_at: float = 0.0  # system time (s) when ``newest`` last grew
    closed: int = FAR_PAST  # watermark up to which windows were emitted

    def watermark(self, now: float | None) -> int | None:
        """Newest event time minus the lateness, advanced by idle system time when ``now``."""
        if self.newest is None:
            return None
        wm = self.newest - self.lateness
        if now is not None:
            wm += max(0, round((now - self.seen_at) * 1000))
        return wm

    def current(self) -> int:
        """The watermark events are judged against: never behind what was already closed."""
        if self.newest is None:
            return self.closed
        return max(self.closed, self.newest - self.lateness)

    def saw(self, ts: int, now: float | None) -> None:
        """Event time ``ts`` was seen: it may move the watermark (and reset the idle clock)."""
        if self.newest is None or ts > self.newest:
            self.newest = ts
            if now is not None:
                self.seen_at = now

    def close_at(self, end: int) -> float | None:
        """System time (s) at which idle time moves the watermark to ``end``."""
        if self.newest is None:
            return None
        wait_ms = end - (self.newest - self.lateness)
        return self.seen_at + max(0, wait_ms) / 1000
