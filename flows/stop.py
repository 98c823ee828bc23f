"""Graceful stop of a processor process on SIGINT or SIGTERM.

Python's default SIGINT handler raises ``KeyboardInterrupt`` in whatever Python code runs at
that moment; inside a step Bytewax turns it into a ``BytewaxRuntimeError`` (a traceback, exit
code 1). Instead, the first signal only asks the Kafka source to end its partitions: the
dataflow reaches end of input, Bytewax writes its last snapshots, and the process exits 0. Window
state is *not* flushed on such a stop: the windows still open
stay open in the snapshot and close after the restart, once, as if nothing had happened
(``stopping`` of :func:`flows.pipeline.build_flow`). A second signal stops at once (Python's
default behaviour).
"""

from __future__ import annotations

import atexit
import signal
import threading
from types import FrameType

__all__ = ["install_stop_handlers", "stop_requested"]

_requested = threading.Event()


def stop_requested() -> bool:
    """Whether SIGINT or SIGTERM asked this process to stop."""
    return _requested.is_set()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _requested.is_set():  # the second one: stop now
        signal.signal(signum, signal.SIG_DFL)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.raise_signal(signum)
        return
    _requested.set()


def _ignore_stops_while_exiting() -> None:
    """Once the process is exiting, a stop signal has nothing left to stop.

    Python's finalization resets every handler written in Python to the default action, so a
    SIGINT or SIGTERM landing in the (long, with this many modules) teardown after a finished
    run killed the process (exit -2/-15, no output). An ignored signal is left ignored.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def install_stop_handlers() -> None:
    """Route SIGINT and SIGTERM to :func:`stop_requested` (call from the main thread)."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    atexit.register(_ignore_stops_while_exiting)
