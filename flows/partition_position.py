"""Where the processor stands in a Kafka partition, and whether it is still the one it read.

A topic can be deleted and recreated under the processor (the in-memory embedded broker
restarted, an operator recreated it): its offsets start again at 0, and a resume offset kept from
the old topic would skip the new topic's first records without a trace. The position therefore
keeps a *mark* of the last record read (a digest of its value): on resume the source reads that
record again, and when it is gone or different the partition is read from its start, counted in
``resets`` and ``reread`` (exported by the orchestrator as ``llmopt_pipeline_topic_resets`` and
``llmopt_pipeline_topic_reread_records``).

The snapshot is a plain dict (no class to import when the orchestrator reads the recovery store);
a bare ``int``, the state of earlier versions, is read as a position without a mark.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypedDict

__all__ = ["PartitionPosition", "PositionState", "Verdict", "check_resume", "record_mark"]


class PositionState(TypedDict):
    """The snapshot of a partition of the telemetry topic (pickled by Bytewax recovery)."""

    offset: int  # the next offset to read
    mark: bytes | None  # digest of the record at offset - 1, None when unknown
    partitions: int | None  # partitions the topic had when this was taken
    resets: int  # times the partition was found recreated and read again from its start
    reread: int  # records read again that the old resume offset would have skipped


def record_mark(value: bytes | None) -> bytes:
    """The mark of a record: a 16-byte digest of its value."""
    return hashlib.blake2b(value or b"", digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    """A partition's resume state, decoded from a snapshot (or a fresh start)."""

    offset: int = 0
    mark: bytes | None = None
    partitions: int | None = None
    resets: int = 0
    reread: int = 0

    @classmethod
    def from_state(cls, state: Any) -> PartitionPosition:
        """Decode a snapshot: a :class:`PositionState`, a bare offset (older versions) or None."""
        if state is None:
            return cls()
        if isinstance(state, int):
            return cls(offset=max(0, state))
        return cls(
            offset=max(0, int(state["offset"])),
            mark=state.get("mark"),
            partitions=state.get("partitions"),
            resets=int(state.get("resets", 0)),
            reread=int(state.get("reread", 0)),
        )

    def state(self) -> PositionState:
        """The snapshot of this position."""
        return PositionState(
            offset=self.offset,
            mark=self.mark,
            partitions=self.partitions,
            resets=self.resets,
            reread=self.reread,
        )

    @property
    def verify_from(self) -> int | None:
        """The offset to read first to check the partition (None: nothing to check)."""
        if self.offset == 0:
            return None
        return self.offset - 1 if self.mark is not None else self.offset


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the first records read after a resume say about the partition.

    Attributes:
        recreated: The partition is not the one the position was taken on.
        drop: How many leading records to drop (the re-read marked record).
        reason: Why it was found recreated (for the log).
    """

    recreated: bool
    drop: int = 0
    reason: str = ""


def check_resume(
    position: PartitionPosition, first_offset: int, first_value: bytes | None
) -> Verdict:
    """Judge a partition from the first record read at :attr:`PartitionPosition.verify_from`.

    The consumer resets an offset beyond the partition's end to its start, so a first record
    *before* the asked-for offset means the old offset no longer exists; a record at that offset
    with another value means the partition was refilled. A first record after it means the
    records in between were deleted by retention: nothing to check, nothing to re-read.
    """
    start = position.verify_from
    if start is None or first_offset > start:
        return Verdict(recreated=False)
    if first_offset < start:
        return Verdict(
            recreated=True,
            reason=f"resume offset {position.offset} is beyond the partition's end",
        )
    if position.mark is None:
        return Verdict(recreated=False)
    if record_mark(first_value) != position.mark:
        return Verdict(
            recreated=True,
            reason=f"the record at offset {first_offset} is not the one read before",
        )
    return Verdict(recreated=False, drop=1)
