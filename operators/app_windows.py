"""Event-time windows of one app: dedup, clock, windows, store and feedback join, composed.

Pure logic (no Bytewax): the dataflow keeps one :class:`AppWindows` per app and feeds it the
app's events in arrival order. The parts follow the seams of Bytewax's own windowing:
``operators.dedup`` drops repeated event ids, ``window_clock`` keeps the watermark,
``windower`` says which tumbling and sliding windows hold a time bucket, ``window_store`` keeps
the calls in buckets and the windows still to close, ``feedback_join`` joins feedback to its
call by ``request_id``. A window is emitted once when the watermark passes its end, and again,
as a numbered *revision*, when a late call or a joined feedback changes it while its buckets
are still retained.
"""

from __future__ import annotations

import pickle
from itertools import count

import numpy as np
import numpy.typing as npt

from core.call_batch import I64, CallBatch
from core.events import Event, Feedback, LlmCall
from core.stats import StrayEvent, WindowStats
from operators.dedup import DedupState
from operators.feedback_join import CallRef, FeedbackJoin, WaitingFeedback, apply_feedback
from operators.pricing import DEFAULT_PRICES, PriceTable
from operators.window_buckets import EXACT_CALLS
from operators.window_clock import FAR_PAST, EventClock
from operators.window_store import PendingWindow, Segment, WindowStore
from operators.window_strays import late_stray, unmatched
from operators.windower import Window, WindowKind, WindowSpec

__all__ = ["AppWindows", "Output", "WindowSpec"]

Output = WindowStats | StrayEvent
_Segment = Segment  # the name recovery snapshots of earlier releases pickled


class AppWindows:
    """All window state of one app; :meth:`process` and :meth:`advance` return outputs."""

    def __init__(
        self, spec: WindowSpec, prices: PriceTable = DEFAULT_PRICES, exact_calls: int = EXACT_CALLS
    ) -> None:
        self.spec = spec
        self._prices = prices
        self._dedup = DedupState(spec.dedup_ttl)
        self._clock = EventClock(spec.lateness)
        self._store = WindowStore(spec, exact_calls)
        self._join = FeedbackJoin(spec.feedback_join)

    # -- snapshots: immutable bytes ---------------------------------------------------------
    def __getstate__(self) -> dict[str, object]:
        # Prices come from the settings of the run that resumes, not from the snapshot.
        return {k: v for k, v in self.__dict__.items() if k != "_prices"}

    def __setstate__(self, state: dict[str, object]) -> None:
        if "_max_ts" in state:  # a snapshot of a release before the parts were split out
            state = _from_flat(state)
        self.__dict__.update(state)
        self._prices = DEFAULT_PRICES

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
            state._clock.seen_at = now
        return state

    # -- watermark --------------------------------------------------------------------------
    def watermark(self, now: float | None) -> int | None:
        """Max event time minus the allowed lateness, advanced by idle system time when ``now``."""
        return self._clock.watermark(now)

    def next_close_at(self) -> float | None:
        """System time (s) at which idle time will close the next pending window."""
        end = self._store.next_end()
        return None if end is None else self._clock.close_at(end)

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
        closed_before = self._clock.closed
        dirty: set[tuple[str, int]] = set()
        if len(calls):
            dirty = self._take_calls(calls, now, out)
        if feedback:  # deduplicated together: one dedup pass per batch, not per feedback
            times = [fb.timestamp.timestamp() for fb in feedback]
            for i in self._dedup.first_sightings([fb.event_id for fb in feedback], times):
                ts = round(times[i] * 1000)
                self._feedback(feedback[i], ts, out)
                self._clock.saw(ts, now)
        wm = self._clock.current()
        end = self._store.next_end()
        if end is not None and end <= wm:
            self._close_through(wm, out)
        seen: set[tuple[str, Window]] = set()
        for route, index in sorted(dirty):
            for window in self.spec.windows_of_bucket(index):
                if window.end <= closed_before and (route, window) not in seen:
                    seen.add((route, window))
                    out += self._store.emit(route, window, self._prices)
        self._evict()
        self._expire(now, out)
        return out

    def advance(self, now: float | None) -> list[Output]:
        """Close what the idle-advanced watermark has passed (a timer, no new events)."""
        out: list[Output] = []
        wm = self._clock.watermark(now)
        end = self._store.next_end()
        if wm is not None and end is not None and end <= wm:
            self._close_through(wm, out)
        self._expire(now, out)
        return out

    def flush(self) -> list[Output]:
        """End of input: close every pending window and give up on waiting feedback."""
        out: list[Output] = []
        last = self._store.last_end()
        if last is not None:
            self._close_through(last, out)
        detail = "no call with this request_id before the input ended"
        out += [unmatched(fb, detail, self._wm()) for fb in self._join.drain()]
        return out

    # -- calls ------------------------------------------------------------------------------
    def _take_calls(
        self, calls: CallBatch, now: float | None, out: list[Output]
    ) -> set[tuple[str, int]]:
        """Dedup, judge lateness, store calls in their buckets; return buckets to correct."""
        spec, b, clock = self.spec, self.spec.bucket, self._clock
        keep = self._dedup.first_sightings(calls.event_id, (calls.ts / 1000.0).tolist())
        if not keep:
            return set()
        rows = np.asarray(keep, dtype=np.int64)
        ts = calls.ts[rows]
        previous = FAR_PAST if clock.newest is None else clock.newest
        newest_before = np.maximum(
            np.concatenate(([previous], np.maximum.accumulate(ts)[:-1])), previous
        )
        wm_before = np.maximum(newest_before - spec.lateness, clock.closed)
        late = ts < wm_before
        index = ts // b
        if late.any():
            line = wm_before - spec.retention
            line = np.maximum(line - line % b, self._store.evicted)
            expired = late & (spec.earliest_starts(index) < line)
            for j in np.flatnonzero(expired).tolist():
                out.append(late_stray(calls, int(rows[j]), int(wm_before[j]), None))
            accepted = ~expired
            rows, ts, index, late, wm_before = (
                rows[accepted],
                ts[accepted],
                index[accepted],
                late[accepted],
                wm_before[accepted],
            )
        dirty = self._store_calls(calls, rows, index, late, out)
        for j in np.flatnonzero(late).tolist():
            window_end = spec.tumbling_end(int(index[j]))
            out.append(
                late_stray(calls, int(rows[j]), int(wm_before[j]), window_end <= clock.closed)
            )
        if len(ts):
            clock.saw(int(ts.max()), now)
        return dirty

    def _store_calls(
        self,
        calls: CallBatch,
        rows: I64,
        index: I64,
        late: npt.NDArray[np.bool_],
        out: list[Output],
    ) -> set[tuple[str, int]]:
        """Append rows to their (segment, bucket); return late-touched buckets behind closed."""
        if not len(rows):
            return set()
        has_requests = any(calls.request_id)
        dirty: set[tuple[str, int]] = set()
        for group in self._store.add(calls, rows, index, self._clock.closed, self._prices):
            if has_requests:
                stored = rows[group.rows]
                indexed = zip(
                    count(group.first),
                    map(calls.request_id.__getitem__, stored.tolist()),
                    calls.ts[stored].tolist(),
                )
                for fb in self._join.index(group.route, group.bucket_index, group.bucket, indexed):
                    out.append(unmatched(fb, "arrived after the feedback join window", self._wm()))
            if late[group.rows].any():
                dirty.add((group.route, group.bucket_index))
        return dirty

    # -- feedback ---------------------------------------------------------------------------
    def _feedback(self, fb: Feedback, ts: int, out: list[Output]) -> None:
        found = self._join.find(fb, ts)
        if found is None:
            return
        route, index, pos, call_ts = found
        if abs(ts - call_ts) > self.spec.feedback_join:
            out.append(unmatched(fb, "arrived after the feedback join window", self._wm()))
            return
        if not self._store.retained(index):
            out.append(unmatched(fb, "its call's windows are no longer retained", self._wm()))
            return
        apply_feedback(self._store.segments[route].buckets[index], pos, fb)
        out += self._store.correct(route, index, self._clock.closed, self._prices)

    # -- closing ----------------------------------------------------------------------------
    def _close_through(self, wm: int, out: list[Output]) -> None:
        out += self._store.close_through(wm, self._prices)
        self._clock.closed = max(self._clock.closed, wm)
        self._evict()

    def _evict(self) -> None:
        """Drop buckets (and their calls' index entries) the retention has passed."""
        if self._store.evict(self._clock.closed):
            self._join.evict(self._store.retained)

    def _expire(self, now: float | None, out: list[Output]) -> None:
        wm = self._clock.watermark(now)
        if wm is None or not self._join.waiting:
            return
        detail = "no call with this request_id within the join window"
        out += [unmatched(fb, detail, self._wm()) for fb in self._join.expire(wm)]

    def _wm(self) -> int:
        """The watermark a stray record reports."""
        return self._clock.current()


def _from_flat(state: dict[str, object]) -> dict[str, object]:
    """The state of a snapshot from before the split, in today's parts."""
    spec = state["spec"]
    assert isinstance(spec, WindowSpec)
    clock = EventClock(spec.lateness, state["_max_ts"], state["_seen_at"], state["_closed"])  # type: ignore[arg-type]
    store = WindowStore(
        spec,
        EXACT_CALLS,
        state["_segments"],  # type: ignore[arg-type]
        [PendingWindow(e, WindowKind(k), s, r) for e, k, s, r in state["_pending"]],  # type: ignore[attr-defined]
        state["_queued"],  # type: ignore[arg-type]
        state["_evicted"],  # type: ignore[arg-type]
    )
    requests: dict[str, tuple[str, int, int, int]] = state["_requests"]  # type: ignore[assignment]
    by_bucket: dict[int, list[str]] | None = state.get("_request_buckets")  # type: ignore[assignment]
    if by_bucket is None:  # a snapshot from before the index by bucket existed
        by_bucket = {}
        for rid, (_, index, _, _) in requests.items():
            by_bucket.setdefault(index, []).append(rid)
    waiting: dict[str, tuple[Feedback, int]] = state["_waiting"]  # type: ignore[assignment]
    join = FeedbackJoin(
        spec.feedback_join,
        {rid: CallRef(*ref) for rid, ref in requests.items()},
        by_bucket,
        {rid: WaitingFeedback(*w) for rid, w in waiting.items()},
    )
    return {
        "spec": spec,
        "_dedup": state["_dedup"],
        "_clock": clock,
        "_store": store,
        "_join": join,
    }
