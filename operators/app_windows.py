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
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np

from core.events import Event, Feedback, LlmCall
from core.settings import ProcessorSettings
from core.stats import StrayEvent, WindowKey, WindowStats
from operators.dedup import DedupState
from operators.pricing import DEFAULT_PRICES, PriceTable
from operators.window_stats import Columns, summarize_columns

__all__ = ["AppWindows", "WindowSpec"]

Output = WindowStats | StrayEvent
_TUMBLING, _SLIDING = 0, 1
_NAN = math.nan


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window geometry and time limits, in milliseconds."""

    tumbling: int
    sliding: int
    step: int
    lateness: int
    feedback_join: int
    dedup_ttl: timedelta

    @property
    def bucket(self) -> int:
        """Bucket width: every window start and end is a multiple of it."""
        return math.gcd(self.tumbling, self.step)

    @property
    def retention(self) -> int:
        """How long behind the watermark buckets stay, for corrections and feedback."""
        return max(self.tumbling, self.sliding) + max(self.feedback_join, self.lateness)

    @staticmethod
    def from_settings(p: ProcessorSettings) -> WindowSpec:
        """The spec of the processor settings."""
        return WindowSpec(
            tumbling=_ms(p.tumbling_window),
            sliding=_ms(p.sliding_window),
            step=_ms(p.sliding_step),
            lateness=_ms(p.allowed_lateness),
            feedback_join=_ms(p.feedback_join_window),
            dedup_ttl=p.dedup_ttl,
        )

    def windows_of_bucket(self, index: int) -> list[tuple[int, int, int]]:
        """(kind, start, end) of every window that holds bucket ``index``."""
        start = index * self.bucket
        t_start = start - start % self.tumbling
        out = [(_TUMBLING, t_start, t_start + self.tumbling)]
        end = start - start % self.step + self.step
        while end - self.sliding <= start:
            out.append((_SLIDING, end - self.sliding, end))
            end += self.step
        return out


class _Bucket:
    """The calls of one time bucket of one segment, as compact columns (cheap to snapshot).

    Calls without ``cost_usd`` of the bucket's model and provider are priced per bucket,
    vectorised, when the columns are built.
    """

    _FIELDS = (
        "model",
        "provider",
        "ts",
        "latency",
        "ttft",
        "quality",
        "cost",
        "tokens",
        "ok",
        "errors",
        "prompts",
    )
    __slots__ = (*_FIELDS, "_cols")

    def __init__(self, model: str, provider: str | None) -> None:
        self.model, self.provider = model, provider
        self.ts, self.latency, self.ttft = array("d"), array("d"), array("d")
        self.quality, self.cost = array("d"), array("d")
        self.tokens = array("q")  # input, output, cache read per call
        self.ok = array("b")
        self.errors: list[str] = []
        self.prompts: list[str] = []
        self._cols: Columns | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self._FIELDS, state, strict=True):
            setattr(self, name, value)
        self._cols = None

    def add(self, call: LlmCall, ts_s: float, prices: PriceTable) -> int:
        """Append a call; returns its position."""
        self.ts.append(ts_s)
        self.latency.append(call.latency_ms)
        self.ttft.append(_NAN if call.ttft_ms is None else call.ttft_ms)
        self.quality.append(_NAN if call.quality is None else call.quality)
        if call.cost_usd is not None:
            self.cost.append(call.cost_usd)
        elif call.provider == self.provider:
            self.cost.append(_NAN)  # priced in columns()
        else:
            self.cost.append(prices.call_cost(call) or 0.0)
        self.tokens.extend((call.input_tokens, call.output_tokens, call.cache_read_tokens or 0))
        ok = call.status == "ok"
        self.ok.append(ok)
        if not ok:
            self.errors.append(call.error_type or "unknown")
        if call.prompt_hash:
            self.prompts.append(call.prompt_hash)
        self._cols = None
        return len(self.ts) - 1

    def set_quality(self, position: int, quality: float) -> None:
        """Apply a joined feedback score."""
        self.quality[position] = quality
        self._cols = None

    def columns(self, prices: PriceTable) -> Columns:
        """The bucket as numpy columns (cached until the bucket changes)."""
        if self._cols is None:
            tokens = np.array(self.tokens, dtype=np.int64).reshape(-1, 3)
            cost = np.array(self.cost, dtype=np.float64)
            unpriced = np.isnan(cost)
            if unpriced.any():
                priced = prices.tokens_cost(self.model, self.provider, tokens[unpriced])
                cost[unpriced] = 0.0 if priced is None else priced
            self._cols = Columns(
                ts=np.array(self.ts, dtype=np.float64),
                latency=np.array(self.latency, dtype=np.float64),
                ttft=np.array(self.ttft, dtype=np.float64),
                quality=np.array(self.quality, dtype=np.float64),
                cost=cost,
                tokens=tokens,
                ok=np.array(self.ok, dtype=np.bool_),
                error_types=tuple(self.errors),
                prompt_hashes=tuple(self.prompts),
            )
        return self._cols


@dataclass(slots=True)
class _Segment:
    key: WindowKey
    buckets: dict[int, _Bucket] = field(default_factory=dict)
    emitted: dict[tuple[int, int], int] = field(default_factory=dict)  # (kind, start) → revision


class AppWindows:
    """All window state of one app; :meth:`process` and :meth:`advance` return outputs."""

    def __init__(self, spec: WindowSpec, prices: PriceTable = DEFAULT_PRICES) -> None:
        self.spec = spec
        self._prices = prices
        self._dedup = DedupState(spec.dedup_ttl)
        self._max_ts: int | None = None
        self._seen_at = 0.0  # system time (s) when _max_ts last grew
        self._closed = -(2**62)  # watermark up to which windows are emitted
        self._evicted = -(2**62)  # buckets starting before this are gone
        self._segments: dict[str, _Segment] = {}
        self._pending: list[tuple[int, int, int, str]] = []  # (end, kind, start, route)
        self._queued: set[tuple[str, int, int]] = set()
        self._requests: dict[str, tuple[str, int, int, int]] = {}  # rid → route, bucket, pos, ts
        self._waiting: dict[str, tuple[Feedback, int]] = {}  # feedback before its call

    # -- snapshots: immutable bytes ---------------------------------------------------------
    def __getstate__(self) -> dict[str, object]:
        # Prices come from the settings of the run that resumes, not from the snapshot.
        return {k: v for k, v in self.__dict__.items() if k != "_prices"}

    def __setstate__(self, state: dict[str, object]) -> None:
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
        """Take the app's next events (arrival order); return closed windows and strays."""
        out: list[Output] = []
        dedup = self._dedup
        for event in events:
            ts_s = event.timestamp.timestamp()
            if not dedup.first_sighting(event.event_id, ts_s):
                continue
            ts = round(ts_s * 1000)
            if isinstance(event, Feedback):
                self._feedback(event, ts, out)
            else:
                self._call(event, ts, ts_s, out)
            if self._max_ts is None or ts > self._max_ts:
                self._max_ts = ts
                if now is not None:
                    self._seen_at = now
            if self._pending and self._pending[0][0] <= self._current_watermark():
                self._close_through(self._current_watermark(), out)
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
    def _call(self, call: LlmCall, ts: int, ts_s: float, out: list[Output]) -> None:
        spec = self.spec
        index = ts // spec.bucket
        route = f"{call.task}\x1f{call.model}\x1f{call.variant}"
        segment = self._segments.get(route)
        if segment is None:
            segment = self._segments[route] = _Segment(
                WindowKey(call.app, call.task, call.model, call.variant)
            )
        wm = self._current_watermark()
        late = ts < wm
        if late and not self._retained(index):
            out.append(self._stray_late(call, ts, wm, in_window=False, detail="state expired"))
            return
        rid = call.request_id
        if rid and rid in self._waiting:
            fb, fb_ts = self._waiting.pop(rid)
            if abs(fb_ts - ts) <= spec.feedback_join:
                call = msgspec.structs.replace(call, quality=fb.quality)
            else:
                out.append(self._unmatched(fb, "arrived after the feedback join window"))
        bucket = segment.buckets.get(index)
        if bucket is None:
            bucket = segment.buckets[index] = _Bucket(call.model, call.provider)
            self._queue(route, index)
        position = bucket.add(call, ts_s, self._prices)
        if rid:
            self._requests[rid] = (route, index, position, ts)
        if late:
            corrected = self._correct(segment, index, out)
            detail = "window corrected" if corrected else "its window was still open"
            out.append(self._stray_late(call, ts, wm, in_window=True, detail=detail))

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
        segment.buckets[index].set_quality(pos, fb.quality)
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
        parts = [
            bucket.columns(self._prices)
            for i in range(start // b, end // b)
            if (bucket := segment.buckets.get(i)) is not None and len(bucket)
        ]
        if not parts:
            return
        revision = segment.emitted.get((kind, start), -1) + 1
        segment.emitted[(kind, start)] = revision
        out.append(
            summarize_columns(
                "tumbling" if kind == _TUMBLING else "sliding",
                _utc(start),
                _utc(end),
                segment.key,
                Columns.concat(parts),
                revision,
            )
        )

    def _correct(self, segment: _Segment, index: int, out: list[Output]) -> bool:
        """(Re-)emit every window holding bucket ``index`` that the watermark already passed.

        Such a window was emitted before (this is a numbered correction) or had no call until
        now (this is its first emission); windows still ahead of the watermark are pending.
        """
        emitted = False
        for kind, start, end in self.spec.windows_of_bucket(index):
            if end <= self._closed:
                self._emit(segment, kind, start, end, out)
                emitted = True
        return emitted

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
        for rid in [r for r, (_, index, _, _) in requests.items() if not self._retained(index)]:
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
    def _stray_late(
        self, call: LlmCall, ts: int, wm: int, *, in_window: bool, detail: str
    ) -> StrayEvent:
        return StrayEvent(
            kind="late",
            event_id=call.event_id,
            app=call.app,
            task=call.task,
            event_time=call.timestamp,
            watermark=_utc(wm),
            in_window=in_window,
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
