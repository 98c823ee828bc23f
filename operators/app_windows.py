"""Event-time windows of one app: dedup, watermark, tumbling + sliding windows, feedback join.

Pure logic (no Bytewax): the dataflow keeps one :class:`AppWindows` per app and feeds it the
app's events in arrival order. Calls are kept in time buckets (the gcd of the tumbling length and
the sliding step), so every window is a run of whole buckets; a window is emitted once when the
watermark passes its end, and again, as a numbered *revision*, when a late call or a joined
feedback changes it while its buckets are still retained.
"""

from __future__ import annotations

import heapq
import math
import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from itertools import count, pairwise
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.call_batch import I64, CallBatch
from core.events import Event, Feedback, LlmCall
from core.stats import StrayEvent, WindowKey, WindowStats
from operators.dedup import DedupState
from operators.pricing import DEFAULT_PRICES, PriceTable
from operators.window_buckets import EXACT_CALLS, TUMBLING, Bucket, WindowSpec
from operators.window_digest import Digest, summarize_digest
from operators.window_stats import Columns, summarize_columns

__all__ = ["AppWindows", "WindowSpec"]

Output = WindowStats | StrayEvent
WindowKind = Literal["tumbling", "sliding"]
_NAN = math.nan


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


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


def _apply(bucket: Bucket, pos: int, fb: Feedback) -> None:
    """Join a feedback's scores (served, and the shadow answer's when it has one) to its call."""
    bucket.set_quality(pos, fb.quality)
    if fb.shadow_model is not None and fb.shadow_quality is not None:
        bucket.set_shadow(pos, fb.shadow_model, fb.shadow_quality)


@dataclass(slots=True)
class _Segment:
    key: WindowKey
    buckets: dict[int, Bucket] = field(default_factory=dict)
    emitted: dict[tuple[int, int], int] = field(default_factory=dict)  # (kind, start) → revision


class AppWindows:
    """All window state of one app; :meth:`process` and :meth:`advance` return outputs."""

    def __init__(
        self, spec: WindowSpec, prices: PriceTable = DEFAULT_PRICES, exact_calls: int = EXACT_CALLS
    ) -> None:
        self.spec = spec
        self._prices = prices
        self._exact_calls = exact_calls  # calls a bucket holds one by one (exact percentiles)
        self._dedup = DedupState(spec.dedup_ttl)
        self._max_ts: int | None = None
        self._seen_at = 0.0  # system time (s) when _max_ts last grew
        self._closed = -(2**62)  # watermark up to which windows are emitted
        self._evicted = -(2**62)  # buckets starting before this are gone
        self._segments: dict[str, _Segment] = {}
        self._pending: list[tuple[int, int, int, str]] = []  # (end, kind, start, route)
        self._queued: set[tuple[str, int, int]] = set()
        self._requests: dict[str, tuple[str, int, int, int]] = {}  # rid → route, bucket, pos, ts
        # rids by the bucket they were indexed in: eviction drops whole buckets' worth of them
        # instead of testing every request held (up to the retention's worth of calls).
        self._request_buckets: dict[int, list[str]] = {}
        self._waiting: dict[str, tuple[Feedback, int]] = {}  # feedback before its call

    # -- snapshots: immutable bytes ---------------------------------------------------------
    def __getstate__(self) -> dict[str, object]:
        # Prices come from the settings of the run that resumes, not from the snapshot.
        return {k: v for k, v in self.__dict__.items() if k != "_prices"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._prices = DEFAULT_PRICES
        self.__dict__.setdefault("_exact_calls", EXACT_CALLS)
        if "_request_buckets" not in state:  # a snapshot from before the index existed
            self._request_buckets = {}
            for rid, (_, index, _, _) in self._requests.items():
                self._request_buckets.setdefault(index, []).append(rid)

    def snapshot(self) -> bytes:
        """The whole state as immutable bytes (a Bytewax recovery snapshot)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def restore(
        snapshot: bytes, now: float | None, prices: PriceTable = DEFAULT_PRICES
    ) -> AppWindows:
        """Rebuild from :meth:`snapshot`; downtime does not count as idle time."""
        state: AppWindows = pickle.loads(snapshot)  # noqa: S301 - our own recovery store
        state._prices = prices
        if now is not None:
            state._seen_at = now
        return state

    # -- watermark --------------------------------------------------------------------------
    def watermark(self, now: float | None) -> int | None:
        """Max event time minus the allowed lateness, advanced by idle system time when ``now``."""
        if self._max_ts is None:
            return None
        wm = self._max_ts - self.spec.lateness
        if now is not None:
            wm += max(0, round((now - self._seen_at) * 1000))
        return wm

    def _current_watermark(self) -> int:
        """The watermark events are judged against: never behind what was already closed."""
        if self._max_ts is None:
            return self._closed
        return max(self._closed, self._max_ts - self.spec.lateness)

    def next_close_at(self) -> float | None:
        """System time (s) at which idle time will close the next pending window."""
        if not self._pending or self._max_ts is None:
            return None
        wait_ms = self._pending[0][0] - (self._max_ts - self.spec.lateness)
        return self._seen_at + max(0, wait_ms) / 1000

    # -- input ------------------------------------------------------------------------------
    def process(self, events: list[Event], now: float | None) -> list[Output]:
        """Take the app's next events (arrival order); return closed windows and strays.

        Consecutive calls are handled as one batch (see :meth:`process_batch`).
        """
        out: list[Output] = []
        calls: list[LlmCall] = []
        app = events[0].app if events else ""
        for event in events:
            if isinstance(event, Feedback):
                if calls:
                    out += self.process_batch(CallBatch.from_events(app, calls), [], now)
                    calls = []
                out += self.process_batch(CallBatch.from_events(app, []), [event], now)
            else:
                calls.append(event)
        if calls:
            out += self.process_batch(CallBatch.from_events(app, calls), [], now)
        return out

    def process_batch(
        self, calls: CallBatch, feedback: list[Feedback], now: float | None
    ) -> list[Output]:
        """Take the app's next calls (columns, arrival order) and feedback; return outputs.

        Each call is judged against the watermark it arrived at (late or not, retained or
        expired), so the result does not depend on how the stream is cut into batches; windows
        the batch moves the watermark past are emitted at its end, and windows already emitted
        that received late calls are re-emitted once, as their next revision.
        """
        out: list[Output] = []
        closed_before = self._closed
        dirty: set[tuple[str, int]] = set()
        if len(calls):
            dirty = self._take_calls(calls, now, out)
        if feedback:  # deduplicated together: one dedup pass per batch, not per feedback
            times = [fb.timestamp.timestamp() for fb in feedback]
            for i in self._dedup.first_sightings([fb.event_id for fb in feedback], times):
                ts = round(times[i] * 1000)
                self._feedback(feedback[i], ts, out)
                self._saw(ts, now)
        wm = self._current_watermark()
        if self._pending and self._pending[0][0] <= wm:
            self._close_through(wm, out)
        seen: set[tuple[str, int, int]] = set()
        for route, index in sorted(dirty):
            segment = self._segments[route]
            for kind, start, end in self.spec.windows_of_bucket(index):
                if end <= closed_before and (route, kind, start) not in seen:
                    seen.add((route, kind, start))
                    self._emit(segment, kind, start, end, out)
        self._evict()
        self._expire(now, out)
        return out

    def advance(self, now: float | None) -> list[Output]:
        """Close what the idle-advanced watermark has passed (a timer, no new events)."""
        out: list[Output] = []
        wm = self.watermark(now)
        if wm is not None and self._pending and self._pending[0][0] <= wm:
            self._close_through(wm, out)
        self._expire(now, out)
        return out

    def flush(self) -> list[Output]:
        """End of input: close every pending window and give up on waiting feedback."""
        out: list[Output] = []
        if self._pending:
            self._close_through(max(e for e, *_ in self._pending), out)
        for rid, (fb, _ts) in list(self._waiting.items()):
            out.append(self._unmatched(fb, "no call with this request_id before the input ended"))
            del self._waiting[rid]
        return out

    # -- calls ------------------------------------------------------------------------------
    def _take_calls(
        self, calls: CallBatch, now: float | None, out: list[Output]
    ) -> set[tuple[str, int]]:
        """Dedup, judge lateness, store calls in their buckets; return buckets to correct."""
        spec, b = self.spec, self.spec.bucket
        keep = self._dedup.first_sightings(calls.event_id, (calls.ts / 1000.0).tolist())
        if not keep:
            return set()
        rows = np.asarray(keep, dtype=np.int64)
        ts = calls.ts[rows]
        floor = -(2**62)
        previous = floor if self._max_ts is None else self._max_ts
        newest_before = np.maximum(
            np.concatenate(([previous], np.maximum.accumulate(ts)[:-1])), previous
        )
        wm_before = np.maximum(newest_before - spec.lateness, self._closed)
        late = ts < wm_before
        index = ts // b
        if late.any():
            line = wm_before - spec.retention
            line = np.maximum(line - line % b, self._evicted)
            expired = late & (self._min_start(index) < line)
            for j in np.flatnonzero(expired).tolist():
                out.append(self._late_stray(calls, int(rows[j]), int(wm_before[j]), None))
            accepted = ~expired
            rows, ts, index, late, wm_before = (
                rows[accepted],
                ts[accepted],
                index[accepted],
                late[accepted],
                wm_before[accepted],
            )
        dirty = self._store(calls, rows, index, late, out)
        for j in np.flatnonzero(late).tolist():
            window_end = int(index[j]) * b - int(index[j]) * b % spec.tumbling + spec.tumbling
            out.append(
                self._late_stray(calls, int(rows[j]), int(wm_before[j]), window_end <= self._closed)
            )
        if len(ts):
            self._saw(int(ts.max()), now)
        return dirty

    def _saw(self, ts: int, now: float | None) -> None:
        """Event time ``ts`` was seen: it may move the watermark (and reset the idle clock)."""
        if self._max_ts is None or ts > self._max_ts:
            self._max_ts = ts
            if now is not None:
                self._seen_at = now

    def _store(
        self,
        calls: CallBatch,
        rows: I64,
        index: I64,
        late: npt.NDArray[np.bool_],
        out: list[Output],
    ) -> set[tuple[str, int]]:
        """Append rows to their (segment, bucket); return late-touched buckets behind _closed."""
        if not len(rows):
            return set()
        segment_of = _segment_codes(calls)[rows]
        # Segment routes as strings, not tuples: strings are invisible to the garbage collector.
        routes: dict[int, str] = {}
        order = np.lexsort((index, segment_of))  # stable: arrival order within a group
        keys = segment_of[order] * (1 << 40) + index[order]
        cuts = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist(), len(order)]
        has_requests = any(calls.request_id)
        dirty: set[tuple[str, int]] = set()
        for g0, g1 in pairwise(cuts):
            group = order[g0:g1]
            r0 = int(rows[group[0]])
            code = int(segment_of[group[0]])
            route = routes.get(code)
            version = calls.config_version[r0]
            if route is None:
                route = routes[code] = "\x1f".join(
                    (
                        calls.task[r0],
                        calls.model[r0],
                        calls.variant[r0],
                        "" if version is None else str(version),
                    )
                )
            bucket_index = int(index[group[0]])
            segment = self._segments.get(route)
            if segment is None:
                segment = self._segments[route] = _Segment(
                    WindowKey(
                        calls.app, calls.task[r0], calls.model[r0], calls.variant[r0], version
                    )
                )
            bucket = segment.buckets.get(bucket_index)
            if bucket is None:
                bucket = segment.buckets[bucket_index] = Bucket(
                    calls.model[r0], calls.provider[r0], self._exact_calls
                )
                self._queue(route, bucket_index)
            batch_rows = rows[group]
            first = bucket.extend(calls, batch_rows, self._prices)
            if has_requests:
                where = (route, bucket_index, bucket, first)
                self._index_requests(calls, batch_rows, where, out)
            if late[group].any():
                dirty.add((route, bucket_index))
        return dirty

    def _index_requests(
        self,
        calls: CallBatch,
        rows: I64,
        where: tuple[str, int, Bucket, int],
        out: list[Output],
    ) -> None:
        route, index, bucket, first = where
        join = self.spec.feedback_join
        requests, waiting = self._requests, self._waiting
        indexed = self._request_buckets.setdefault(index, [])
        rids = map(calls.request_id.__getitem__, rows.tolist())
        for pos, rid, ts in zip(count(first), rids, calls.ts[rows].tolist()):
            if not rid:
                continue
            requests[rid] = (route, index, pos, ts)
            indexed.append(rid)
            found = waiting.pop(rid, None) if waiting else None
            if found is not None:
                fb, fb_ts = found
                if abs(fb_ts - ts) <= join:
                    _apply(bucket, pos, fb)
                else:
                    out.append(self._unmatched(fb, "arrived after the feedback join window"))

    def _min_start(self, index: I64) -> I64:
        """Earliest start of the windows holding each bucket."""
        spec = self.spec
        start = index * spec.bucket
        tumbling = start - start % spec.tumbling
        sliding = start - start % spec.step + spec.step - spec.sliding
        result: I64 = np.minimum(tumbling, sliding)
        return result

    def _queue(self, route: str, index: int) -> None:
        for kind, start, end in self.spec.windows_of_bucket(index):
            if end > self._closed and (route, kind, start) not in self._queued:
                self._queued.add((route, kind, start))
                heapq.heappush(self._pending, (end, kind, start, route))

    # -- feedback ---------------------------------------------------------------------------
    def _feedback(self, fb: Feedback, ts: int, out: list[Output]) -> None:
        found = self._requests.get(fb.request_id)
        if found is None:
            self._waiting[fb.request_id] = (fb, ts)
            return
        route, index, pos, call_ts = found
        if abs(ts - call_ts) > self.spec.feedback_join:
            out.append(self._unmatched(fb, "arrived after the feedback join window"))
            return
        if not self._retained(index):
            out.append(self._unmatched(fb, "its call's windows are no longer retained"))
            return
        segment = self._segments[route]
        _apply(segment.buckets[index], pos, fb)
        self._correct(segment, index, out)

    # -- closing ----------------------------------------------------------------------------
    def _close_through(self, wm: int, out: list[Output]) -> None:
        pending = self._pending
        while pending and pending[0][0] <= wm:
            end, kind, start, route = heapq.heappop(pending)
            self._queued.discard((route, kind, start))
            self._emit(self._segments[route], kind, start, end, out)
        self._closed = max(self._closed, wm)
        self._evict()

    def _emit(self, segment: _Segment, kind: int, start: int, end: int, out: list[Output]) -> None:
        b = self.spec.bucket
        buckets = [
            bucket
            for i in range(start // b, end // b)
            if (bucket := segment.buckets.get(i)) is not None and len(bucket)
        ]
        if not buckets:
            return
        revision = segment.emitted.get((kind, start), -1) + 1
        segment.emitted[(kind, start)] = revision
        name: WindowKind = "tumbling" if kind == TUMBLING else "sliding"
        if all(bucket.exact for bucket in buckets):  # few calls: exact percentiles
            cols = Columns.concat([bucket.columns(self._prices) for bucket in buckets])
            out.append(summarize_columns(name, _utc(start), _utc(end), segment.key, cols, revision))
            return
        digest = reduce(Digest.merge, (bucket.summary(self._prices) for bucket in buckets))
        out.append(summarize_digest(name, _utc(start), _utc(end), segment.key, digest, revision))

    def _correct(self, segment: _Segment, index: int, out: list[Output]) -> None:
        """Re-emit every window holding bucket ``index`` that the watermark already passed."""
        for kind, start, end in self.spec.windows_of_bucket(index):
            if end <= self._closed:
                self._emit(segment, kind, start, end, out)

    def _retained(self, index: int) -> bool:
        """Whether every window holding bucket ``index`` still has all its buckets."""
        return min(start for _, start, _ in self.spec.windows_of_bucket(index)) >= self._evicted

    def _evict(self) -> None:
        """Drop buckets that start more than the retention behind the watermark."""
        b = self.spec.bucket
        horizon = self._closed - self.spec.retention
        cut = horizon - horizon % b
        if cut <= self._evicted:
            return
        self._evicted = cut
        for segment in self._segments.values():
            for index in [i for i in segment.buckets if i * b < cut]:
                del segment.buckets[index]
            for key in [k for k in segment.emitted if k[1] < cut]:
                del segment.emitted[key]
        requests = self._requests
        for index in [i for i in self._request_buckets if not self._retained(i)]:
            for rid in self._request_buckets.pop(index):
                found = requests.get(rid)
                if found is not None and found[1] == index:  # not indexed again since
                    del requests[rid]

    def _expire(self, now: float | None, out: list[Output]) -> None:
        wm = self.watermark(now)
        if wm is None or not self._waiting:
            return
        for rid, (fb, ts) in list(self._waiting.items()):
            if ts + self.spec.feedback_join < wm:
                detail = "no call with this request_id within the join window"
                out.append(self._unmatched(fb, detail))
                del self._waiting[rid]

    # -- strays -----------------------------------------------------------------------------
    @staticmethod
    def _late_stray(calls: CallBatch, row: int, wm: int, corrected: bool | None) -> StrayEvent:
        """The record of a late call: ``corrected`` None means its state had expired."""
        ts = int(calls.ts[row])
        if corrected is None:
            detail = "state expired"
        else:
            detail = "window corrected" if corrected else "its window was still open"
        return StrayEvent(
            kind="late",
            event_id=calls.event_id[row],
            app=calls.app,
            task=calls.task[row],
            event_time=_utc(ts),
            watermark=_utc(wm),
            in_window=corrected is not None,
            detail=f"{(wm - ts) / 1000:.3f}s behind the watermark; {detail}",
        )

    def _unmatched(self, fb: Feedback, detail: str) -> StrayEvent:
        wm = self._current_watermark()
        return StrayEvent(
            kind="unmatched_feedback",
            event_id=fb.event_id,
            app=fb.app,
            task=fb.task or "default",
            event_time=fb.timestamp,
            watermark=_utc(wm),
            in_window=False,
            detail=f"request_id {fb.request_id!r}: {detail}",
        )
