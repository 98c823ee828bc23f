"""A bounded on-disk buffer of Kafka records for while the broker is away.

Append-only segment files ``<dir>/<seq:016d>.spill`` hold frames
``[u32 length][u32 crc32][msgpack OutRecord]``. :meth:`SpillBuffer.append` writes a whole batch
then fsyncs, so a batch that was acknowledged survives a crash; a torn or corrupt tail (a crash
during a write) is cut off when the buffer is opened again. Records are read back oldest
segment first, in the order they were appended, and a segment is removed only after its
records were confirmed delivered (:meth:`SpillBuffer.remove`), or rewritten with the ones that
were not (:meth:`SpillBuffer.rewrite`). The total size is bounded: a batch that does not fit is
refused whole (:class:`SpillFullError`), never partly written.

Thread-safe; the pipeline calls it from worker threads. One owner per folder: the buffer holds
an exclusive ``fcntl`` lock on ``<dir>/.owner.lock`` from opening to :meth:`SpillBuffer.close`
(or its process's end), and a second buffer on the same folder, in this process or another, is
refused (:class:`SpillDirectoryInUseError`). :mod:`collector.spill_owner` gives each process a
folder of its own and hands orphaned ones to whoever finds them.
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import weakref
import zlib
from collections.abc import Sequence
from pathlib import Path

import msgspec

from collector.records import OutRecord

__all__ = ["OWNER_LOCK", "SpillBuffer", "SpillDirectoryInUseError", "SpillFullError"]

_HEADER = struct.Struct(">II")
_SUFFIX = ".spill"
#: The lock file of a spill folder's owner.
OWNER_LOCK = ".owner.lock"
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(OutRecord)


class SpillFullError(Exception):
    """The batch does not fit within the buffer's bound; nothing of it was written."""


class SpillDirectoryInUseError(Exception):
    """Another spill buffer (this process's or another's) owns the folder."""


def _lock_owner(directory: Path) -> int:
    """Take the folder's owner lock without waiting; the open descriptor holds it."""
    fd = os.open(directory / OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise SpillDirectoryInUseError(f"spill folder {directory} has another owner") from exc
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _frames(records: Sequence[OutRecord]) -> bytes:
    parts = []
    for record in records:
        payload = _ENCODER.encode(record)
        parts.append(_HEADER.pack(len(payload), zlib.crc32(payload)))
        parts.append(payload)
    return b"".join(parts)


def _read_frames(data: bytes) -> tuple[list[OutRecord], int]:
    """The records of a segment's bytes and the length of its intact prefix."""
    records: list[OutRecord] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        payload = data[pos + _HEADER.size : end]
        if end > len(data) or zlib.crc32(payload) != crc:
            break
        try:
            records.append(_DECODER.decode(payload))
        except msgspec.DecodeError:
            break
        pos = end
    return records, pos


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpillBuffer:
    """Segments on disk, oldest first.

    Args:
        directory: Folder of the segment files (created when missing).
        max_bytes: Bound on the total size of all segments.
        segment_bytes: Size from which the segment being appended to is sealed.

    Raises:
        SpillDirectoryInUseError: Another buffer owns ``directory``.
    """

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sizes: dict[int, tuple[int, int]] = {}  # seq -> (bytes, records)
        self._active: int | None = None  # the segment appends go to
        directory.mkdir(parents=True, exist_ok=True)
        # Closing the descriptor releases the lock: on close(), or when the buffer is collected.
        self._release = weakref.finalize(self, os.close, _lock_owner(directory))
        for tmp in directory.glob("*.tmp"):  # a rewrite interrupted by a crash
            tmp.unlink()
        for path in sorted(directory.glob("*" + _SUFFIX)):
            self._recover(path)
        if self._sizes:
            self._active = max(self._sizes)

    def close(self) -> None:
        """Give up the folder (its segments stay for the next owner). Idempotent."""
        self._release()

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:016d}{_SUFFIX}"

    def _recover(self, path: Path) -> None:
        data = path.read_bytes()
        records, intact = _read_frames(data)
        if intact < len(data):  # torn tail of a crash mid-write: cut it off
            with open(path, "r+b") as fh:
                fh.truncate(intact)
                fh.flush()
                os.fsync(fh.fileno())
        if not records:
            path.unlink()
            return
        self._sizes[int(path.stem)] = (intact, len(records))

    @property
    def size_bytes(self) -> int:
        """Bytes on disk."""
        with self._lock:
            return sum(b for b, _ in self._sizes.values())

    @property
    def records(self) -> int:
        """Records waiting."""
        with self._lock:
            return sum(n for _, n in self._sizes.values())

    @property
    def empty(self) -> bool:
        """True when nothing waits."""
        with self._lock:
            return not self._sizes

    def append(self, records: Sequence[OutRecord]) -> None:
        """Write ``records`` after everything already buffered, then fsync.

        Raises:
            SpillFullError: The batch would take the buffer beyond ``max_bytes``.
        """
        if not records:
            return
        data = _frames(records)
        with self._lock:
            total = sum(b for b, _ in self._sizes.values())
            if total + len(data) > self.max_bytes:
                raise SpillFullError(
                    f"spill buffer full: {total} + {len(data)} bytes > {self.max_bytes}"
                )
            seq = self._active
            if seq is None or self._sizes[seq][0] >= self._segment_bytes:
                seq = max(self._sizes, default=0) + 1
                self._active = seq
                self._sizes[seq] = (0, 0)
                created = True
            else:
                created = False
            with open(self._path(seq), "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if created:
                _fsync_dir(self.directory)
            size, count = self._sizes[seq]
            self._sizes[seq] = (size + len(data), count + len(records))

    def oldest(self) -> tuple[int, list[OutRecord]] | None:
        """The oldest segment's number and records (sealing it if appends still go to it)."""
        with self._lock:
            if not self._sizes:
                return None
            seq = min(self._sizes)
            if seq == self._active:
                self._active = None
            records, _ = _read_frames(self._path(seq).read_bytes())
            return seq, records

    def remove(self, seq: int) -> None:
        """Forget segment ``seq``: every record of it was delivered."""
        with self._lock:
            self._path(seq).unlink(missing_ok=True)
            self._sizes.pop(seq, None)
            _fsync_dir(self.directory)

    def rewrite(self, seq: int, remaining: Sequence[OutRecord]) -> None:
        """Keep only ``remaining`` of segment ``seq`` (the rest was delivered), atomically."""
        if not remaining:
            self.remove(seq)
            return
        data = _frames(remaining)
        with self._lock:
            tmp = self._path(seq).with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(seq))
            _fsync_dir(self.directory)
            self._sizes[seq] = (len(data), len(remaining))
