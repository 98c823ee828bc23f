"""Children started with core.lifetime.stopping_with_parent end when their parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from core.lifetime import stopping_with_parent
from tests.processes import running

_PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from core.lifetime import stopping_with_parent
    command = ["sleep", "60"]
    if sys.argv[1] == "wrapped":
        command = stopping_with_parent(command)
    child = subprocess.Popen(command)
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def _orphan_after_parent_killed(mode: str, wait_s: float) -> tuple[int, bool]:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, mode], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert running(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and running(child):
        time.sleep(0.05)
    return child, running(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_wrapped_child_gets_sigterm_when_its_parent_is_killed() -> None:
    _child, running = _orphan_after_parent_killed("wrapped", 10)
    assert not running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_plain_child_outlives_its_killed_parent() -> None:
    """The control: without the wrapper the same child is orphaned (what the wrapper fixes)."""
    child, running = _orphan_after_parent_killed("plain", 1)
    try:
        assert running
    finally:
        os.kill(child, signal.SIGKILL)


def test_the_wrapped_command_runs_as_itself_with_its_arguments() -> None:
    out = subprocess.run(
        stopping_with_parent(["sh", "-c", 'echo "$0 $1"', "first", "second"]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == "first second\n"
