"""Deduplication by ``event_id`` with an event-time TTL (pure logic; the flow wires it).

State is kept per coarse key (the app), not per event id, so a recovery snapshot holds one row
per app. Ids expire once the newest event time seen passes their own time plus the TTL, which
bounds the state by the TTL however long the stream runs.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta

__all__ = ["DedupState"]


class DedupState:
    """Event ids seen within the TTL for one key; picklable for Bytewax snapshots."""

    __slots__ = ("_expiry", "_heap", "_newest", "ttl")

    def __init__(self, ttl: timedelta) -> None:
        self.ttl = ttl
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._newest = float("-inf")

    def __len__(self) -> int:
        return len(self._expiry)

    def __getstate__(self) -> tuple[timedelta, dict[str, float], list[tuple[float, str]], float]:
        return (self.ttl, dict(self._expiry), list(self._heap), self._newest)

    def __setstate__(
        self, state: tuple[timedelta, dict[str, float], list[tuple[float, str]], float]
    ) -> None:
        self.ttl, self._expiry, self._heap, self._newest = state

    def first_sighting(self, event_id: str, event_time: datetime) -> bool:
        """Record ``event_id``; True the first time within the TTL, False for a duplicate."""
        at = event_time.timestamp()
        self._newest = max(self._newest, at)
        self._evict()
        if event_id in self._expiry:
            return False
        expires = at + self.ttl.total_seconds()
        if expires <= self._newest:
            # Older than the TTL already: it cannot be remembered, so it counts as new.
            return True
        self._expiry[event_id] = expires
        heapq.heappush(self._heap, (expires, event_id))
        return True

    def _evict(self) -> None:
        heap = self._heap
        while heap and heap[0][0] <= self._newest:
            expires, event_id = heapq.heappop(heap)
            if self._expiry.get(event_id) == expires:
                del self._expiry[event_id]
