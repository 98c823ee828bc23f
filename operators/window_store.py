"""The window store of one app: calls in time buckets per segment, and the windows to close.

A segment is one (task, model, variant, config version) of the app; its calls are kept in
buckets (``windower.WindowSpec.bucket`` wide) until they are more than the retention behind the
watermark. Windows are queued (a heap by end) when their first bucket appears and summarised
from their buckets when emitted; each emission of a window gets the next revision number.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from typing import NamedTuple

from core.stats import WindowKey, WindowStats
from operators.pricing import PriceTable
from operators.window_buckets import EXACT_CALLS, Bucket
from operators.window_digest import Digest, summarize_digest
from operators.window_stats import Columns, summarize_columns
from operators.windower import Window, WindowKind, WindowSpec

__all__ = ["PendingWindow", "Segment", "WindowStore"]

_FAR_PAST = -(2**62)


class PendingWindow(NamedTuple):
    """A window waiting for the watermark (heap order: by end)."""

    end: int
    kind: WindowKind
    start: int
    route: str


@dataclass(slots=True)
class Segment:
    """The buckets of one segment and the revisions of its windows emitted so far."""

    key: WindowKey
    buckets: dict[int, Bucket] = field(default_factory=dict)
    emitted: dict[tuple[int, int], int] = field(default_factory=dict)  # (kind, start) → revision


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(slots=True)
class WindowStore:
    """Segments, their buckets and the heap of windows not yet emitted."""

    spec: WindowSpec
    exact_calls: int = EXACT_CALLS  # calls a bucket holds one by one (exact percentiles)
    segments: dict[str, Segment] = field(default_factory=dict)
    pending: list[PendingWindow] = field(default_factory=list)
    queued: set[tuple[str, int, int]] = field(default_factory=set)  # (route, kind, start)
    evicted: int = _FAR_PAST  # buckets starting before this are gone

    def bucket(
        self, route: str, key: WindowKey, index: int, model: str, provider: str | None, closed: int
    ) -> Bucket:
        """The bucket ``index`` of the segment ``route`` (created, and its windows queued)."""
        segment = self.segments.get(route)
        if segment is None:
            segment = self.segments[route] = Segment(key)
        found = segment.buckets.get(index)
        if found is None:
            found = segment.buckets[index] = Bucket(model, provider, self.exact_calls)
            self._queue(route, index, closed)
        return found

    def _queue(self, route: str, index: int, closed: int) -> None:
        for kind, start, end in self.spec.windows_of_bucket(index):
            if end > closed and (route, kind, start) not in self.queued:
                self.queued.add((route, kind, start))
                heapq.heappush(self.pending, PendingWindow(end, kind, start, route))

    def next_end(self) -> int | None:
        """End of the next window to close (None: none pending)."""
        return self.pending[0].end if self.pending else None

    def last_end(self) -> int | None:
        """End of the last window pending (None: none)."""
        return max(p.end for p in self.pending) if self.pending else None

    def close_through(self, watermark: int, prices: PriceTable) -> list[WindowStats]:
        """Emit every pending window that ends at or before ``watermark``, by end."""
        out: list[WindowStats] = []
        pending = self.pending
        while pending and pending[0].end <= watermark:
            end, kind, start, route = heapq.heappop(pending)
            self.queued.discard((route, kind, start))
            out += self.emit(route, Window(WindowKind(kind), start, end), prices)
        return out

    def emit(self, route: str, window: Window, prices: PriceTable) -> list[WindowStats]:
        """The window's stats at its next revision (nothing when it holds no call)."""
        segment = self.segments[route]
        kind, start, end = window
        b = self.spec.bucket
        buckets = [
            bucket
            for i in range(start // b, end // b)
            if (bucket := segment.buckets.get(i)) is not None and len(bucket)
        ]
        if not buckets:
            return []
        revision = segment.emitted.get((kind, start), -1) + 1
        segment.emitted[(kind, start)] = revision
        span = (kind.label, _utc(start), _utc(end), segment.key)
        if all(bucket.exact for bucket in buckets):  # few calls: exact percentiles
            cols = Columns.concat([bucket.columns(prices) for bucket in buckets])
            return [summarize_columns(*span, cols, revision)]
        digest = reduce(Digest.merge, (bucket.summary(prices) for bucket in buckets))
        return [summarize_digest(*span, digest, revision)]

    def correct(self, route: str, index: int, closed: int, prices: PriceTable) -> list[WindowStats]:
        """Re-emit every window holding bucket ``index`` that the watermark already passed."""
        return [
            stats
            for window in self.spec.windows_of_bucket(index)
            if window.end <= closed
            for stats in self.emit(route, window, prices)
        ]

    def retained(self, index: int) -> bool:
        """Whether every window holding bucket ``index`` still has all its buckets."""
        return self.spec.earliest_start(index) >= self.evicted

    def evict(self, closed: int) -> bool:
        """Drop buckets that start more than the retention behind ``closed``; True if any."""
        b = self.spec.bucket
        horizon = closed - self.spec.retention
        cut = horizon - horizon % b
        if cut <= self.evicted:
            return False
        self.evicted = cut
        for segment in self.segments.values():
            for index in [i for i in segment.buckets if i * b < cut]:
                del segment.buckets[index]
            for key in [k for k in segment.emitted if k[1] < cut]:
                del segment.emitted[key]
        return True
