"""``python -m orchestrator`` as a user runs it, for the end-to-end tests: settings, the process,
polling, and ``llmopt produce``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from storage.kafka import free_port


def base_env(tmp_path: Path, admin_key: str) -> dict[str, str]:
    """Embedded defaults under ``tmp_path``, free ports, fast windows and snapshots."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMOPT_")},
        "LLMOPT_ENV": "development",
        "LLMOPT_STORAGE__DATA_DIR": str(tmp_path / "var"),
        "LLMOPT_API__PORT": str(free_port()),
        "LLMOPT_API__BOOTSTRAP_ADMIN_KEY": admin_key,
        "LLMOPT_ORCHESTRATOR__METRICS_PORT": str(free_port()),
        "LLMOPT_COLLECTOR__HTTP_PORT": "0",
        "LLMOPT_COLLECTOR__GRPC_PORT": "0",
        "LLMOPT_GRPC__PORT": "0",
        "LLMOPT_PROCESSOR__ALLOWED_LATENESS": "1s",
        "LLMOPT_PROCESSOR__SNAPSHOT_INTERVAL": "1s",
    }


class Optimizer:
    """One ``python -m orchestrator`` process with its log."""

    def __init__(self, tmp_path: Path, env: dict[str, str], name: str = "orchestrator") -> None:
        self.env = env
        self.log_path = tmp_path / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator"],
            cwd=tmp_path,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{env['LLMOPT_API__PORT']}"
        self.metrics_url = f"http://127.0.0.1:{env['LLMOPT_ORCHESTRATOR__METRICS_PORT']}/metrics"

    def log(self) -> str:
        return self.log_path.read_text()

    def poll(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"orchestrator exited while waiting for {what}"
            try:
                found = check()
            except httpx.HTTPError:
                found = None
            if found:
                return found
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log()[-3000:]}")

    def status(self, service: str) -> float | None:
        for line in httpx.get(self.metrics_url, timeout=5).text.splitlines():
            if line.startswith(f'service_status{{service="{service}"}}'):
                return float(line.split()[-1])
        return None

    def metric(self, name: str, service: str) -> float | None:
        """One ``NAME{service="SERVICE"}`` sample of the orchestrator's metrics."""
        for line in httpx.get(self.metrics_url, timeout=5).text.splitlines():
            if line.startswith(f'{name}{{service="{service}"}}'):
                return float(line.split()[-1])
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def produce(
    opt: Optimizer, bootstrap: str, tmp_path: Path, name: str, events: list[dict[str, Any]]
) -> None:
    """``llmopt produce`` of ``events`` into the broker at ``bootstrap``; every one delivered."""
    source = tmp_path / f"{name}.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    produced = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "produce",
            str(source),
            "--bootstrap",
            bootstrap,
        ],
        cwd=tmp_path,
        env=opt.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr
    assert f"delivered {len(events)}, failed 0" in produced.stderr
