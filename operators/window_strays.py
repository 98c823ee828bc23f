"""The stray records of the window state: late calls and unmatched feedback (CONTRACT.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from core.call_batch import CallBatch
from core.events import Feedback
from core.stats import StrayEvent

__all__ = ["late_stray", "unmatched", "utc"]


def utc(ms: int) -> datetime:
    """An epoch-millisecond time as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def late_stray(calls: CallBatch, row: int, wm: int, corrected: bool | None) -> StrayEvent:
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
        event_time=utc(ts),
        watermark=utc(wm),
        in_window=corrected is not None,
        detail=f"{(wm - ts) / 1000:.3f}s behind the watermark; {detail}",
    )


def unmatched(fb: Feedback, detail: str, watermark: int) -> StrayEvent:
    """The record of a feedback that joined no call."""
    return StrayEvent(
        kind="unmatched_feedback",
        event_id=fb.event_id,
        app=fb.app,
        task=fb.task or "default",
        event_time=fb.timestamp,
        watermark=utc(watermark),
        in_window=False,
        detail=f"request_id {fb.request_id!r}: {detail}",
    )
