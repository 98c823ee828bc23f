"""One spill folder per process, and nothing left behind by processes that are gone.

Several processes buffer into the same spill root (the REST server's workers each run their
own ingest pipeline; collector replicas may share a volume). Each takes a folder of its own
under the root, ``<root>/owner-<n>``, guarded by its :class:`collector.spill.SpillBuffer`'s
owner lock, which the kernel releases when the process ends however it ends:

- :func:`claim` (at start) takes the first folder nobody holds, so a restarted worker owns
  (and replays) what its predecessor spilled; when every folder is held, it makes a new one.
- :func:`adopt_orphans` (at start and periodically) moves the records of every other folder
  nobody holds (a worker that is gone for good, fewer workers than before) into the caller's
  buffer, then removes the folder; the caller's replay delivers them. Segments left directly
  in the root by a version without owner folders are adopted the same way.

A folder is adopted at least once: a crash between appending its records to the adopter's
buffer and deleting its segments delivers them twice (the dataflow drops duplicates by
``event_id``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from collector.spill import SpillBuffer, SpillDirectoryInUseError, SpillFullError

__all__ = ["adopt_orphans", "claim"]

_log = structlog.get_logger(__name__)
_PREFIX = "owner-"
_CLAIM_LOCK = ".claim.lock"


@contextmanager
def _claiming(root: Path) -> Iterator[None]:
    """Serialise claims and adoptions under ``root`` across processes (held briefly)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / _CLAIM_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _folders(root: Path) -> list[Path]:
    found = [p for p in root.glob(_PREFIX + "*") if p.is_dir() and p.name[len(_PREFIX) :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))


def claim(root: Path, max_bytes: int, segment_bytes: int) -> SpillBuffer:
    """Open a spill buffer in a folder of ``root`` that this process alone owns.

    Args:
        root: The spill root shared by every process of a deployment.
        max_bytes: Bound of this process's buffer.
        segment_bytes: Segment size of this process's buffer.

    Returns:
        The buffer, holding its folder's owner lock until closed or the process ends.
    """
    with _claiming(root):
        folders = _folders(root)
        for folder in folders:
            try:
                buffer = SpillBuffer(folder, max_bytes, segment_bytes)
            except SpillDirectoryInUseError:
                continue
            if buffer.records:
                _log.info("spill_folder_taken_over", folder=str(folder), records=buffer.records)
            return buffer
        n = int(folders[-1].name[len(_PREFIX) :]) + 1 if folders else 0
        return SpillBuffer(root / f"{_PREFIX}{n}", max_bytes, segment_bytes)


def _move(source: SpillBuffer, into: SpillBuffer) -> tuple[int, bool]:
    """Append each segment of ``source`` to ``into``, removing it once written.

    Returns:
        The records moved, and whether all were (False: ``into`` is full; the rest stays).
    """
    moved = 0
    while (oldest := source.oldest()) is not None:
        seq, records = oldest
        try:
            into.append(records)
        except SpillFullError:
            return moved, False
        source.remove(seq)
        moved += len(records)
    return moved, True


def adopt_orphans(root: Path, into: SpillBuffer) -> int:
    """Move the records of every unowned folder under ``root`` into ``into``.

    Returns:
        The records moved (0 when there was nothing to adopt, or ``into`` was full).
    """
    moved = 0
    with _claiming(root):
        candidates = [f for f in _folders(root) if f != into.directory]
        if any(root.glob("*.spill")):
            candidates.append(root)  # segments of the single-folder layout
        for folder in candidates:
            try:
                orphan = SpillBuffer(folder, into.max_bytes, 1 << 62)
            except SpillDirectoryInUseError:
                continue  # a live owner
            n, complete = _move(orphan, into)
            orphan.close()
            moved += n
            if not complete:
                _log.warning("spill_adoption_postponed", folder=str(folder), moved=n)
                break
            if n:
                _log.warning("spill_folder_adopted", folder=str(folder), records=n)
            if folder != root:
                shutil.rmtree(folder, ignore_errors=True)
    return moved
