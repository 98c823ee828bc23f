"""Child processes that stop when the process that started them dies (Linux).

The orchestrator runs the embedded Kafka broker, the Bytewax processes and the REST server as
child processes and stops them in order. When the orchestrator itself is killed (SIGKILL, the
OOM killer) nothing stops them: they keep the ports, the broker and the recovery store, and the
next start finds them in its way (two processors resuming one recovery store). Linux's
``PR_SET_PDEATHSIG`` sends a process a signal when its parent dies: SIGTERM here, which every
child handles as its normal, graceful stop.

Linux sends it when the *thread* that started the child ends, not the whole process: start such
children from a thread that lives as long as they should (the main thread, the event loop's, or
an executor's, which lives until the loop closes).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["stop_with_parent", "stopping_with_parent"]

_PR_SET_PDEATHSIG = 1

# The child starts as this script (an interpreter without site-packages, ~20 ms), asks for the
# signal (prctl option 1 is PR_SET_PDEATHSIG), then becomes the command with exec: the request
# survives exec, so any program (the tansu binary too) gets the signal.
_LAUNCHER = """\
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)  # the parent died before the request took effect
os.execvp(sys.argv[2], sys.argv[2:])
"""


def stop_with_parent(parent: int, signum: int = signal.SIGTERM) -> None:
    """Get ``signum`` when ``parent`` (this process's parent) dies; now, if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)


def stopping_with_parent(command: Sequence[str]) -> list[str]:
    """``command`` as a command line that gets SIGTERM when this process dies.

    Args:
        command: The program and its arguments (the program is looked up on ``PATH``).

    Returns:
        A command line for :class:`subprocess.Popen` or ``asyncio.create_subprocess_exec``;
        ``command`` itself where Linux's death signal does not exist.
    """
    if not sys.platform.startswith("linux"):
        return list(command)
    return [sys.executable, "-S", "-c", _LAUNCHER, str(os.getpid()), *command]
