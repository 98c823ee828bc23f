"""The window store of one app: calls in time buckets per segment, and the windows to close.

A segment is one (task, model, variant, config version) of the app; its calls are kept in
buckets (``windower.WindowSpec.bucket`` wide) until they are more than the retention behind the
watermark. Windows are queued (a heap by end) when their first bucket appears and summarised
from their buckets when emitted; each emission of a window gets the next revision number.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from functools import reduce
from itertools import pairwise
from typing import NamedTuple

import numpy as np

from core.call_batch import I64, CallBatch
from core.stats import WindowKey, WindowStats
from operators.pricing import PriceTable
from operators.window_buckets import EXACT_CALLS, Bucket
from operators.window_digest import Digest, summarize_digest
from operators.window_stats import Columns, summarize_columns
from operators.window_strays import utc
from operators.windower import Window, WindowKind, WindowSpec

__all__ = ["PendingWindow", "Segment", "StoredGroup", "WindowStore"]

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


def _segment_codes(calls: CallBatch) -> I64:
    """One int per call, equal for calls of the same (task, model, variant, config_version).

    Each column is coded on its own and the codes combined: no per-call string or tuple is built.
    """
    codes = np.zeros(len(calls), np.int64)
    columns: tuple[list[str], list[str], list[str], list[int | None]] = (
        calls.task,
        calls.model,
        calls.variant,
        calls.config_version,
    )
    for column in columns:
        values = {value: code for code, value in enumerate(dict.fromkeys(column))}
        if len(values) > 1:
            codes *= len(values)
            codes += np.fromiter(map(values.__getitem__, column), np.int64, len(column))
    if len(codes) and codes.max() >= 1 << 20:  # many distinct values: make the codes dense
        codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
    return codes


def _route(calls: CallBatch, row: int) -> tuple[str, WindowKey]:
    """The segment route (a string) and key of the call at ``row``."""
    version = calls.config_version[row]
    task, model, variant = calls.task[row], calls.model[row], calls.variant[row]
    route = "\x1f".join((task, model, variant, "" if version is None else str(version)))
    return route, WindowKey(calls.app, task, model, variant, version)


class StoredGroup(NamedTuple):
    """Calls of one batch stored in one bucket: which, where, and the first one's position."""

    route: str
    bucket_index: int
    bucket: Bucket
    first: int
    rows: I64  # positions in the batch's accepted rows, in arrival order


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

    def add(
        self, calls: CallBatch, rows: I64, index: I64, closed: int, prices: PriceTable
    ) -> list[StoredGroup]:
        """Append the calls at ``rows`` (bucket ``index`` each) to their segments' buckets."""
        segment_of = _segment_codes(calls)[rows]
        # Segment routes as strings, not tuples: strings are invisible to the garbage collector.
        routes: dict[int, tuple[str, WindowKey]] = {}
        order = np.lexsort((index, segment_of))  # stable: arrival order within a group
        keys = segment_of[order] * (1 << 40) + index[order]
        cuts = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist(), len(order)]
        out: list[StoredGroup] = []
        for g0, g1 in pairwise(cuts):
            group = order[g0:g1]
            r0 = int(rows[group[0]])
            code = int(segment_of[group[0]])
            found = routes.get(code)
            if found is None:
                found = routes[code] = _route(calls, r0)
            route, key = found
            bucket_index = int(index[group[0]])
            bucket = self.bucket(
                route, key, bucket_index, calls.model[r0], calls.provider[r0], closed
            )
            first = bucket.extend(calls, rows[group], prices)
            out.append(StoredGroup(route, bucket_index, bucket, first, group))
        return out

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
        span = (kind.label, utc(start), utc(end), segment.key)
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
