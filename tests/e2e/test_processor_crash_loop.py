"""A processor that keeps dying is counted, reported as a crash loop and never given up.

``python -m orchestrator`` as a user runs it, with a restart budget of two; the Bytewax process
is SIGKILLed three times. Each restart counts in ``service_restarts_total{service="processor"}``
(it stayed 0 before: the processor restarts its own processes), the third death is a crash loop
(logged, the processor Degraded, not Failed) and is retried at the longest backoff, 60 s.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.optimizer_process import Optimizer, base_env
from tests.e2e.test_faults import _bytewax_pids

pytestmark = pytest.mark.e2e

KEY = "crash-loop-admin-key"


def test_a_crash_looping_processor_is_counted_reported_and_retried_at_the_longest_backoff(
    tmp_path: Path,
) -> None:
    env = base_env(tmp_path, KEY) | {
        "LLMOPT_ORCHESTRATOR__MAX_RESTARTS": "2",
        "LLMOPT_ORCHESTRATOR__HEALTH_INTERVAL": "1s",
    }
    opt = Optimizer(tmp_path, env)
    try:
        opt.poll("health", lambda: httpx.get(opt.base + "/health", timeout=2).status_code == 200)
        assert opt.metric("service_restarts_total", "processor") == 0.0
        killed: list[int] = []
        for n in (1, 2):
            [pid] = opt.poll(
                f"Bytewax process {n}",
                lambda: [p for p in _bytewax_pids(opt.proc.pid) if p not in killed],
            )
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            opt.poll(
                f"restart {n} counted",
                lambda n=n: opt.metric("service_restarts_total", "processor") == n,  # type: ignore[misc]
            )
        [pid] = opt.poll(
            "Bytewax process 3", lambda: [p for p in _bytewax_pids(opt.proc.pid) if p not in killed]
        )
        os.kill(pid, signal.SIGKILL)
        opt.poll("the crash loop reported", lambda: "processor_crash_loop" in opt.log())
        [line] = [ln for ln in opt.log().splitlines() if "processor_crash_loop" in ln]
        assert "delay_s=60.0" in line
        assert "restarts_in_a_row=3" in line
        # Not Failed (5): the processor waits its 60 s and tries again, for as long as it takes.
        opt.poll("the processor Degraded", lambda: opt.status("processor") == 2.0, timeout=90)
        assert "processor_gave_up" not in opt.log()
        assert "service_failed" not in opt.log()
    finally:
        code = opt.stop()
    assert code == 0
