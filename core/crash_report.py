"""Crash reports of the processor: what it was reading when it died, for its supervisor.

The dataflow process notes the offsets of each batch it reads (per partition, the last one);
an exception that ends the process writes ``processor-crash-<pid>.json`` into the data
directory: the error and those offsets. The orchestrator reads (and removes) the report of a
process that exited, logs it and shows it in the processor's health detail, so a crash loop
names the records it keeps dying on.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["CrashReport", "install_crash_report", "note_batch", "read_crash_report"]

_lock = threading.Lock()
_positions: dict[tuple[str, int], tuple[int, int]] = {}


def note_batch(topic: str, partition: int, first_offset: int, last_offset: int) -> None:
    """Remember the offsets of the batch last read from ``topic[partition]`` (cheap)."""
    with _lock:
        _positions[(topic, partition)] = (first_offset, last_offset)


def _path(directory: Path, pid: int) -> Path:
    return directory / f"processor-crash-{pid}.json"


def install_crash_report(directory: Path) -> None:
    """Make an uncaught exception of this process write its crash report into ``directory``."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        with _lock:
            positions = [
                {"topic": t, "partition": p, "first_offset": a, "last_offset": b}
                for (t, p), (a, b) in sorted(_positions.items())
            ]
        report = {"error": f"{kind.__name__}: {exc}"[:2000], "last_batches": positions}
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _path(directory, os.getpid()).write_text(json.dumps(report))
        except OSError:
            pass  # the traceback below still says what happened
        previous(kind, exc, tb)

    sys.excepthook = hook


class CrashReport:
    """A processor's crash report as read back by its supervisor.

    Attributes:
        error: The exception that ended the process (type and message).
        last_batches: ``topic[partition]@first-last`` of the batch last read per partition.
    """

    def __init__(self, error: str, last_batches: list[str]) -> None:
        self.error = error
        self.last_batches = last_batches

    def summary(self) -> str:
        """One line: the error and the offsets read last."""
        where = ", ".join(self.last_batches) or "no batch read yet"
        return f"{self.error} (last batches read: {where})"


def read_crash_report(directory: Path, pid: int, *, remove: bool = True) -> CrashReport | None:
    """Read (and by default remove) the crash report of process ``pid``; None if it left none."""
    path = _path(directory, pid)
    try:
        data = json.loads(path.read_text())
        if remove:
            path.unlink()
    except (OSError, ValueError):
        return None
    batches = [
        f"{b['topic']}[{b['partition']}]@{b['first_offset']}-{b['last_offset']}"
        for b in data.get("last_batches", [])
    ]
    return CrashReport(str(data.get("error", "")), batches)
