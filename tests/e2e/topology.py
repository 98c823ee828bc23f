"""The Compose topology (deploy/docker-compose.yml) as processes on this machine.

PostgreSQL (a fresh, unmigrated database on the machine's server), Redis, the tansu broker
(stands in for Kafka), ``python -m orchestrator`` with ``api.workers=2`` and the processor
unsupervised, and a 2-process Bytewax cluster (``-i/-a`` as ``BYTEWAX_PROCESS_ID`` /
``BYTEWAX_ADDRESSES``, as Compose sets them) in tail mode with a recovery store made the way
``processor-init`` makes it. Every process reads ``deploy/optimizer.env`` and the variables the
Compose file sets (``x-llmopt-env`` and the optimizer's ``environment:``), with host names and
ports replaced by this machine's and a few durations shortened for a test (:data:`TEST_ONLY`).
Everything starts at once, as ``docker compose up`` starts it: the orchestrator and both
dataflow processes race to migrate the fresh database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from storage.kafka import EmbeddedBroker, free_port

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "topology-admin-key"
RECOVERY_PARTITIONS = 8  # LLMOPT_RECOVERY_PARTITIONS' default in Compose

#: Shortened for the test (the loop judges a canary within minutes of simulated time).
TEST_ONLY = {
    "LLMOPT_CANARY__MIN_STAGE_DURATION": "2min",
    "LLMOPT_CANARY__POST_PROMOTION_WATCH": "2min",
    "LLMOPT_DECISIONS__CANDIDATES": '@json ["gpt-4o-mini"]',
    "LLMOPT_COLLECTOR__DELIVERY_TIMEOUT": "2s",
    "LLMOPT_ORCHESTRATOR__HEALTH_INTERVAL": "2s",
    # two REST workers, a 2-process cluster and the tests' other processes start at once on a
    # busy 2-core machine: a service may need longer than the default 60 s to answer
    "LLMOPT_ORCHESTRATOR__START_TIMEOUT": "180s",
}


def env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a Compose env file (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value
    return out


def wait_for(
    what: str, check: Callable[[], T | None], timeout: float, alive: Callable[[], None]
) -> T:
    """Poll ``check`` until it returns a truthy value; ``alive`` raises when a process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        try:
            found = check()
        except (httpx.HTTPError, OSError):
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Topology:
    """The processes of the Compose file, started and stopped by PID."""

    def __init__(self, root: Path, database_url: str, redis_url: str) -> None:
        self.root = root
        self.broker = EmbeddedBroker(log_path=root / "broker.log")
        self.ports = {
            name: free_port()
            for name in ("api", "grpc", "metrics", "otlp_http", "otlp_grpc", "proc0", "proc1")
        }
        self.database_url = database_url
        self.redis_url = redis_url
        self.recovery = root / "recovery"
        self.data_dir = root / "var"
        self.addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"  # -a
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    # ---- the environment of each service -------------------------------------------------

    def shared_env(self) -> dict[str, str]:
        """optimizer.env, then Compose's ``x-llmopt-env`` with this machine's addresses."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPT_")}
        env.update(env_file(REPO / "deploy" / "optimizer.env"))
        env.update(
            {
                "LLMOPT_ENV": "production",
                "LLMOPT_KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap,
                "LLMOPT_KAFKA__PARTITIONS": "3",
                "LLMOPT_STORAGE__DATABASE_URL": self.database_url,
                "LLMOPT_STORAGE__REDIS_URL": self.redis_url,
                "LLMOPT_PROCESSOR__WORKERS": "1",
                "LLMOPT_PROCESSOR__RECOVERY_DIR": str(self.recovery),
                "LLMOPT_LOG_LEVEL": "INFO",
                "LLMOPT_STORAGE__DATA_DIR": str(self.data_dir),
                **TEST_ONLY,
            }
        )
        return env

    def optimizer_env(self) -> dict[str, str]:
        """The optimizer service's ``environment:`` (and its published ports, here free ones)."""
        p = self.ports
        return {
            **self.shared_env(),
            "LLMOPT_API__HOST": "127.0.0.1",
            "LLMOPT_COLLECTOR__HOST": "127.0.0.1",
            "LLMOPT_API__BOOTSTRAP_ADMIN_KEY": f"@str {ADMIN_KEY}",
            "LLMOPT_ORCHESTRATOR__SUPERVISE_PROCESSOR": "false",
            "LLMOPT_ORCHESTRATOR__PROCESSOR_ENDPOINTS": json.dumps(
                [f"127.0.0.1:{p['proc0']}", f"127.0.0.1:{p['proc1']}"]
            ),
            "LLMOPT_API__WORKERS": "2",
            "LLMOPT_API__PORT": str(p["api"]),
            "LLMOPT_GRPC__PORT": str(p["grpc"]),
            "LLMOPT_ORCHESTRATOR__METRICS_PORT": str(p["metrics"]),
            "LLMOPT_COLLECTOR__HTTP_PORT": str(p["otlp_http"]),
            "LLMOPT_COLLECTOR__GRPC_PORT": str(p["otlp_grpc"]),
        }

    def processor_env(self, index: int) -> dict[str, str]:
        """processor-N's ``environment:`` (Bytewax's own variables instead of -i/-a flags)."""
        p = self.ports
        return {
            **self.shared_env(),
            "BYTEWAX_PROCESS_ID": str(index),
            "BYTEWAX_ADDRESSES": self.addresses,
            "BYTEWAX_WORKERS_PER_PROCESS": "1",
            "BYTEWAX_DATAFLOW_API_ENABLED": "true",
            "BYTEWAX_DATAFLOW_API_PORT": str(p[f"proc{index}"]),
        }

    # ---- lifecycle ------------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: dict[str, str], cwd: Path) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{name}.log").open("wb")
        self._logs.append(log)
        self.procs[name] = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def start(self) -> None:
        """The broker, the recovery store (processor-init), then everything else at once."""
        self.broker.start()
        self.recovery.mkdir(parents=True)  # the volume Compose mounts
        init = subprocess.run(
            [
                sys.executable,
                "-m",
                "bytewax.recovery",
                str(self.recovery),
                str(RECOVERY_PARTITIONS),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert init.returncode == 0, init.stderr.decode()[-2000:]
        command = [
            sys.executable, "-m", "bytewax.run", "flows.main",
            "--recovery-directory", str(self.recovery),
            "--snapshot-interval", "10", "--backup-interval", "10",
        ]  # fmt: skip
        self._spawn(
            "optimizer",
            [sys.executable, "-m", "orchestrator"],
            self.optimizer_env(),
            self.root / "optimizer",
        )
        self._spawn("processor-0", command, self.processor_env(0), self.root / "processor-0")
        self._spawn("processor-1", command, self.processor_env(1), self.root / "processor-1")

    def alive(self, *names: str) -> None:
        """Raise (with its log) when one of ``names`` (default: all) has exited."""
        for name in names or tuple(self.procs):
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(
                    f"{name} exited with {proc.returncode}\n{self.log(name)[-4000:]}"
                )

    def log(self, name: str) -> str:
        """The output of one process so far."""
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM the optimizer, SIGINT the processors (Compose's stop signals), the broker."""
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if name == "optimizer" else signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
        self.broker.stop()
        for log in self._logs:
            log.close()

    @property
    def api(self) -> str:
        """The REST base URL."""
        return f"http://127.0.0.1:{self.ports['api']}"

    def scrape_targets(self) -> dict[str, str]:
        """Compose ``host:port`` (as prometheus.yml names them) → this machine's ``/metrics``."""
        p = self.ports
        local = {
            "optimizer:8080": p["api"],
            "optimizer:9090": p["metrics"],
            "optimizer:4318": p["otlp_http"],
            "processor-0:3030": p["proc0"],
            "processor-1:3030": p["proc1"],
        }
        return {host: f"http://127.0.0.1:{port}/metrics" for host, port in local.items()}
