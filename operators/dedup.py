"""Deduplication by ``event_id`` with an event-time TTL (pure logic; the flow wires it).

State is kept per coarse key (the app), not per event id, so a recovery snapshot holds one
entry per app. An id is a duplicate while the newest event time seen is less than its own time
plus the TTL; ids leave the state once that has passed, which bounds it by the TTL.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

__all__ = ["DedupState"]


class DedupState:
    """Event ids seen within the TTL for one key; picklable for Bytewax snapshots."""

    __slots__ = ("_newest", "_order_ids", "_order_ts", "_seen", "_ttl_s")

    def __init__(self, ttl: timedelta) -> None:
        self._ttl_s = ttl.total_seconds()
        self._seen: dict[str, float] = {}  # id → event time (s)
        # Arrival order as two deques of atomic values: the garbage collector never scans them
        # (a deque of (time, id) tuples made every collection walk every remembered id).
        self._order_ts: deque[float] = deque()
        self._order_ids: deque[str] = deque()
        self._newest = float("-inf")

    @property
    def ttl(self) -> timedelta:
        """How long (event time) an id is remembered."""
        return timedelta(seconds=self._ttl_s)

    def __len__(self) -> int:
        return len(self._seen)

    def __getstate__(self) -> tuple[float, dict[str, float], float]:
        # The eviction order is rebuilt on restore: snapshots stay half the size.
        return (self._ttl_s, self._seen, self._newest)

    def __setstate__(self, state: tuple[float, dict[str, float], float]) -> None:
        self._ttl_s, self._seen, self._newest = state
        ordered = sorted((at, event_id) for event_id, at in self._seen.items())
        self._order_ts = deque(at for at, _ in ordered)
        self._order_ids = deque(event_id for _, event_id in ordered)

    def first_sighting(self, event_id: str, event_time: datetime | float) -> bool:
        """Record ``event_id``; True the first time within the TTL, False for a duplicate.

        ``event_time`` is an aware datetime or epoch seconds.
        """
        at = event_time if isinstance(event_time, float) else event_time.timestamp()
        ttl = self._ttl_s
        if at > self._newest:
            self._newest = at
            self._evict()
        seen = self._seen.get(event_id)
        if seen is not None and seen + ttl > self._newest:
            return False
        if at + ttl <= self._newest:
            # Older than the TTL already: it cannot be remembered, so it counts as new.
            return True
        self._seen[event_id] = at
        self._order_ts.append(at)
        self._order_ids.append(event_id)
        return True

    def _evict(self) -> None:
        # Arrival order is nearly time order; an out-of-order id may stay a little longer than
        # its TTL, which first_sighting ignores, but never leaves early.
        times, ids, seen = self._order_ts, self._order_ids, self._seen
        horizon = self._newest - self._ttl_s
        while times and times[0] <= horizon:
            at, event_id = times.popleft(), ids.popleft()
            if seen.get(event_id) == at:
                del seen[event_id]

    def first_sightings(self, event_ids: list[str], times_s: list[float]) -> list[int]:
        """Batch form of :meth:`first_sighting`: the positions of the first sightings, in order.

        Same answers as calling :meth:`first_sighting` for each id in turn.
        """
        ttl, seen = self._ttl_s, self._seen
        newest = max(self._newest, max(times_s, default=self._newest))
        if (
            len(set(event_ids)) == len(event_ids)
            and seen.keys().isdisjoint(event_ids)
            and (not times_s or min(times_s) + ttl > newest)
        ):
            # The common batch: all new, distinct, none already older than the TTL.
            seen.update(zip(event_ids, times_s, strict=True))
            self._order_ts.extend(times_s)
            self._order_ids.extend(event_ids)
            if newest > self._newest:
                self._newest = newest
                self._evict()
            return list(range(len(event_ids)))
        newest = self._newest
        keep: list[int] = []
        for i, (event_id, at) in enumerate(zip(event_ids, times_s, strict=True)):
            if at > newest:
                newest = at
            known = seen.get(event_id)
            if known is not None and known + ttl > newest:
                continue
            keep.append(i)
            if at + ttl > newest:
                seen[event_id] = at
                self._order_ts.append(at)
                self._order_ids.append(event_id)
        if newest > self._newest:
            self._newest = newest
            self._evict()
        return keep
