"""Deduplication by ``event_id`` with an event-time TTL (pure logic; the flow wires it).

State is kept per coarse key (the app), not per event id, so a recovery snapshot holds one
entry per app. An id is a duplicate while the newest event time seen is less than its own time
plus the TTL, exactly; the state holds ids for at most the TTL plus one slice (1/16 of it).

Ids are kept as 64-bit xxh3 hashes: recent ones in a dict, older ones in one sorted numpy
array (merged and pruned every 1/16 of the TTL), so a million remembered ids cost 16 MB and
snapshot as plain bytes (a dict of strings cost ~110 bytes an id and dominated the recovery
snapshots).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import xxhash

from core.call_batch import F64

__all__ = ["DedupState"]

U64 = npt.NDArray[np.uint64]
_SLICES = 16
_hash = xxhash.xxh3_64_intdigest


def _hashes(event_ids: list[str]) -> list[int]:
    return list(map(_hash, map(str.encode, event_ids)))


class DedupState:
    """Event ids seen within the TTL for one key; picklable for Bytewax snapshots."""

    __slots__ = ("_newest", "_open", "_open_since", "_sealed_keys", "_sealed_times", "_ttl_s")

    def __init__(self, ttl: timedelta) -> None:
        self._ttl_s = ttl.total_seconds()
        self._open: dict[int, float] = {}  # hash → event time (s), ids of the current slice
        self._open_since = float("-inf")  # newest event time when the open slice began
        self._sealed_keys: U64 = np.empty(0, np.uint64)  # sorted hashes of older ids
        self._sealed_times: F64 = np.empty(0, np.float64)
        self._newest = float("-inf")

    @property
    def ttl(self) -> timedelta:
        """How long (event time) an id is remembered."""
        return timedelta(seconds=self._ttl_s)

    def __len__(self) -> int:
        """Ids still remembered (within the TTL of the newest event time)."""
        horizon = self._newest - self._ttl_s
        live = sum(1 for at in self._open.values() if at > horizon)
        return live + int((self._sealed_times > horizon).sum())

    def stored(self) -> int:
        """Ids held, including expired ones whose slice has not been dropped yet."""
        return len(self._open) + len(self._sealed_keys)

    def __getstate__(self) -> tuple[object, ...]:
        keys = np.fromiter(self._open.keys(), np.uint64, len(self._open))
        times = np.fromiter(self._open.values(), np.float64, len(self._open))
        return (
            self._ttl_s,
            self._newest,
            self._open_since,
            keys,
            times,
            self._sealed_keys,
            self._sealed_times,
        )

    def __setstate__(self, state: tuple[object, ...]) -> None:
        (
            self._ttl_s,
            self._newest,
            self._open_since,
            keys,
            times,
            self._sealed_keys,
            self._sealed_times,
        ) = state  # type: ignore[assignment]
        self._open = dict(zip(keys.tolist(), times.tolist(), strict=True))  # type: ignore[attr-defined]

    def first_sighting(self, event_id: str, event_time: datetime | float) -> bool:
        """Record ``event_id``; True the first time within the TTL, False for a duplicate.

        ``event_time`` is an aware datetime or epoch seconds.
        """
        at = event_time if isinstance(event_time, float) else event_time.timestamp()
        return bool(self.first_sightings([event_id], [at]))

    def first_sightings(self, event_ids: list[str], times_s: list[float]) -> list[int]:
        """Batch form of :meth:`first_sighting`: the positions of the first sightings, in order.

        Same answers as calling :meth:`first_sighting` for each id in turn.
        """
        if not event_ids:
            return []
        ttl = self._ttl_s
        hashes = _hashes(event_ids)
        known = self._known(hashes)
        newest = max(self._newest, max(times_s))
        if not known and len(set(hashes)) == len(hashes) and min(times_s) + ttl > newest:
            # The common batch: all new, distinct, none already older than the TTL.
            self._open.update(zip(hashes, times_s, strict=True))
            self._advance(newest)
            return list(range(len(hashes)))
        newest = self._newest
        keep: list[int] = []
        seen = self._open
        for i, (h, at) in enumerate(zip(hashes, times_s, strict=True)):
            if at > newest:
                newest = at
            previous = seen.get(h, known.get(h))
            if previous is not None and previous + ttl > newest:
                continue
            keep.append(i)
            if at + ttl > newest:
                seen[h] = at
        self._advance(newest)
        return keep

    def _known(self, hashes: list[int]) -> dict[int, float]:
        """Times of the batch's ids already held (open dict first, then the sealed slices)."""
        found = {h: self._open[h] for h in hashes if h in self._open}
        sealed = self._sealed_keys
        if len(sealed):
            wanted = np.fromiter(hashes, np.uint64, len(hashes))
            at = np.searchsorted(sealed, wanted)
            at[at == len(sealed)] = 0
            for j in np.flatnonzero(sealed[at] == wanted).tolist():
                h = hashes[j]
                found[h] = max(found.get(h, float("-inf")), float(self._sealed_times[at[j]]))
        return found

    def _advance(self, newest: float) -> None:
        """Move the newest event time: seal the open slice when due, drop expired slices."""
        if newest <= self._newest:
            return
        self._newest = newest
        width = self._ttl_s / _SLICES
        if self._open_since == float("-inf"):
            self._open_since = newest
        elif newest - self._open_since >= width and self._open:
            horizon = newest - self._ttl_s
            keys = np.concatenate(
                (self._sealed_keys, np.fromiter(self._open.keys(), np.uint64, len(self._open)))
            )
            times = np.concatenate(
                (self._sealed_times, np.fromiter(self._open.values(), np.float64, len(self._open)))
            )
            live = times > horizon
            keys, times = keys[live], times[live]
            order = np.argsort(keys, kind="stable")
            self._sealed_keys, self._sealed_times = keys[order], times[order]
            self._open = {}
            self._open_since = newest
