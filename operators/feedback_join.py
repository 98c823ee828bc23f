"""The feedback join: scores of ``feedback`` events joined to their calls by ``request_id``.

Calls with a request id are indexed by where they are stored (segment route, bucket, position);
a feedback finds its call there, or waits for it (a feedback may arrive first) until the
watermark passes its time plus the join window. Index entries go with their buckets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from core.events import Feedback
from operators.window_buckets import Bucket

__all__ = ["CallRef", "FeedbackJoin", "WaitingFeedback", "apply_feedback"]


class CallRef(NamedTuple):
    """Where a call with a request id is stored, and its event time (ms)."""

    route: str
    bucket: int
    pos: int
    ts: int


class WaitingFeedback(NamedTuple):
    """A feedback that arrived before its call, and its event time (ms)."""

    feedback: Feedback
    ts: int


def apply_feedback(bucket: Bucket, pos: int, fb: Feedback) -> None:
    """Join a feedback's scores (served, and the shadow answer's when it has one) to its call."""
    bucket.set_quality(pos, fb.quality)
    if fb.shadow_model is not None and fb.shadow_quality is not None:
        bucket.set_shadow(pos, fb.shadow_model, fb.shadow_quality)


@dataclass(slots=True)
class FeedbackJoin:
    """The request index and the feedback waiting for its call, of one app."""

    window: int  # the join window (ms): |feedback time - call time| at most this
    requests: dict[str, CallRef] = field(default_factory=dict)
    # Request ids by the bucket they were indexed in: eviction drops whole buckets' worth of
    # them instead of testing every request held (up to the retention's worth of calls).
    by_bucket: dict[int, list[str]] = field(default_factory=dict)
    waiting: dict[str, WaitingFeedback] = field(default_factory=dict)

    def index(
        self, route: str, index: int, bucket: Bucket, calls: Iterable[tuple[int, str | None, int]]
    ) -> list[Feedback]:
        """Index ``calls`` (position, request id, time) of one bucket.

        The feedback that waited for them is applied; the waiting feedback too far in time from
        its call is returned (unmatched).
        """
        unmatched: list[Feedback] = []
        requests, waiting, window = self.requests, self.waiting, self.window
        indexed = self.by_bucket.setdefault(index, [])
        for pos, rid, ts in calls:
            if not rid:
                continue
            requests[rid] = CallRef(route, index, pos, ts)
            indexed.append(rid)
            found = waiting.pop(rid, None) if waiting else None
            if found is not None:
                if abs(found.ts - ts) <= window:
                    apply_feedback(bucket, pos, found.feedback)
                else:
                    unmatched.append(found.feedback)
        return unmatched

    def find(self, fb: Feedback, ts: int) -> CallRef | None:
        """The call of ``fb`` (None: not indexed, and ``fb`` now waits for it)."""
        found = self.requests.get(fb.request_id)
        if found is None:
            self.waiting[fb.request_id] = WaitingFeedback(fb, ts)
        return found

    def expire(self, watermark: int) -> list[Feedback]:
        """Give up on the waiting feedback whose join window the watermark has passed."""
        gone = [w for w in self.waiting.values() if w.ts + self.window < watermark]
        for w in gone:
            del self.waiting[w.feedback.request_id]
        return [w.feedback for w in gone]

    def drain(self) -> list[Feedback]:
        """Every waiting feedback (end of input), no longer waiting."""
        gone = [w.feedback for w in self.waiting.values()]
        self.waiting.clear()
        return gone

    def evict(self, retained: Callable[[int], bool]) -> None:
        """Forget the calls of buckets no longer ``retained``."""
        requests = self.requests
        for index in [i for i in self.by_bucket if not retained(i)]:
            for rid in self.by_bucket.pop(index):
                found = requests.get(rid)
                if found is not None and found[1] == index:  # not indexed again since
                    del requests[rid]
