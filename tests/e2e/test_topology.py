"""The production topology end to end (``make topology``): see :mod:`tests.e2e.topology`.

One run, in phases, through the processes Compose would run:

1. Everything starts at once on a fresh database and an empty broker: the orchestrator and
   both dataflow processes migrate (under one lock) and create topics; REST answers /health.
2. A gRPC ``WatchConfig`` stream is opened by a separate process.
3. The closed loop: a simulated fleet reads its config over REST (two workers) and produces
   its calls to Kafka; the 2-process cluster makes windows, insights and a decision, the canary
   is judged and promoted. Another app's calls arrive as OTLP spans through the collector.
4. The promoted config reaches the watcher process (dataflow → Redis pub/sub → gRPC server).
5. Config reads: both REST workers answer, each the promoted version.
6. Every endpoint deploy/prometheus/prometheus.yml scrapes gives its component's series.
7. Broker outage during REST ingest: both workers spill into their own folders; once the
   broker is back, every accepted event is in the topic.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from core.settings import (
    CanarySettings,
    DecisionSettings,
    KafkaSettings,
    ProcessorSettings,
    Settings,
    StorageSettings,
)
from rollout.config_manager import ConfigManager
from simulator import SCENARIOS, OtlpSink, RestConfigSource
from storage.database import create_db_engine, head_revision, session_scope
from storage.decisions import list_decisions
from storage.kafka import EmbeddedBroker
from storage.models import InsightRow, VerdictRow, WindowRow
from tests.conftest import PG_ADMIN_URL
from tests.e2e.test_closed_loop import SMALL, Loop
from tests.e2e.topology import ADMIN_KEY, REPO, Topology, wait_for
from tests.worker_sockets import answering_pid

pytestmark = pytest.mark.e2e
HEADERS = {"x-api-key": ADMIN_KEY}

#: Prometheus job → metric names its endpoint must export. The lead adds the gRPC row.
EXPECTED_SERIES: dict[str, tuple[str, ...]] = {
    "optimizer-api": ("litestar_requests_total", "litestar_request_duration_seconds_bucket"),
    "optimizer-orchestrator": (
        "service_status",
        "service_health",
        "service_restarts_total",
        "llmopt_pipeline_events_in_total",
        "llmopt_pipeline_windows_total",
        "llmopt_pipeline_decisions",
        # the in-process gRPC server's (the WatchConfig stream above ends when its client does)
        "llmopt_grpc_requests_total",
        "llmopt_grpc_request_duration_seconds_count",
    ),
    "optimizer-collector": (
        "collector_spans_received_total",
        "collector_events_accepted_total",
        "collector_spill_events",
        "collector_breaker_state",
    ),
    "optimizer-processor": (
        "bytewax_item_inp_count_total",
        "bytewax_snapshot_duration_seconds_count",
    ),
}

WATCHER = """
import json, sys
import grpc
from proto.llmopt.v1 import config_pb2, config_pb2_grpc
target, key, app = sys.argv[1:4]
with grpc.insecure_channel(target) as channel:
    stub = config_pb2_grpc.ConfigServiceStub(channel)
    request = config_pb2.WatchConfigRequest(app=app)
    for config in stub.WatchConfig(request, metadata=(("x-api-key", key),)):
        models = {name: task.model for name, task in config.tasks.items()}
        canary = {n: t.canary.weight for n, t in config.tasks.items() if t.HasField("canary")}
        line = {"version": config.version, "models": models, "canary": canary}
        print(json.dumps(line), flush=True)
"""


@pytest.fixture
def topology(redis_url: str, tmp_path: Path) -> Iterator[Topology]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"llmopt_topo_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))  # nothing migrated
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    topo = Topology(tmp_path, url, redis_url)
    try:
        topo.start()
        yield topo
    finally:
        topo.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Watcher:
    """``WatchConfig`` in its own process; its lines are read on a thread."""

    def __init__(self, topo: Topology, app: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WATCHER, f"127.0.0.1:{topo.ports['grpc']}", ADMIN_KEY, app],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=(topo.root / "watcher.log").open("wb"),
        )
        self.seen: queue.Queue[dict[str, Any]] = queue.Queue()
        self.all: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.seen.put(json.loads(line))

    def until(self, version: int, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.seen.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, "the watcher process exited"
                continue
            self.all.append(got)
            if got["version"] >= version:
                return got
        raise AssertionError(f"the watcher did not see version {version}: {self.all}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def _loop_settings(topo: Topology) -> Settings:
    """What the simulated fleet needs to know: the broker and topic, the database (pacing)."""
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=topo.broker.bootstrap, tail=True),
        storage=StorageSettings(database_url=topo.database_url, data_dir=str(topo.data_dir)),
        processor=ProcessorSettings(),
        canary=CanarySettings(),
        decisions=DecisionSettings(),
    )


def _otlp_events(app: str, start: datetime, seconds: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{app}-{i}",
            "timestamp": int((start + timedelta(seconds=i)).timestamp() * 1000),
            "app": app,
            "task": "summarise",
            "model": "gpt-4o",
            "latency_ms": 1500.0,  # above the 1 s p95 SLO: a latency_slo insight, every minute
            "input_tokens": 100,
            "output_tokens": 20,
        }
        for i in range(seconds)
    ]


def _scrape(url: str) -> set[str]:
    names = set()
    for line in httpx.get(url, timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def _has(url: str, names: set[str]) -> bool | None:
    return names <= _scrape(url) or None


def _prometheus_jobs() -> dict[str, list[str]]:
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    return {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
        if job["job_name"] != "prometheus"
    }


def _spilled_folders(topo: Topology) -> set[Path]:
    root = topo.data_dir / "rest-spill"
    return {p.parent for p in root.glob("owner-*/*.spill")}


def _topic_event_ids(bootstrap: str, topic: str, prefix: str, want: set[str]) -> set[str]:
    """Event ids starting with ``prefix`` in the topic, read from the start of every partition
    until all of ``want`` are found or nothing more comes for 5 s (tansu's high watermarks count
    batches, not records, so they cannot tell where a partition ends)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    found: set[str] = set()
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        last = time.monotonic()
        while not want <= found and time.monotonic() - last < 5:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            last = time.monotonic()
            event_id = json.loads(msg.value() or b"{}").get("event_id", "")
            if event_id.startswith(prefix):
                found.add(event_id)
    finally:
        consumer.close()
    return found


@pytest.mark.timeout(1800)  # many processes on a busy machine; every wait has its own deadline
def test_the_compose_topology_closes_the_loop_and_loses_nothing(topology: Topology) -> None:
    topo = topology
    started = time.monotonic()

    # 1. Up: both REST workers' lifespan, every service, both dataflow processes.
    wait_for(
        "REST /health 200",
        lambda: httpx.get(topo.api + "/health", timeout=5).status_code == 200 or None,
        300,
        topo.alive,
    )
    engine = create_db_engine(topo.database_url)
    with engine.connect() as conn:  # three racers, one migration, at this code's head
        assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
            (head_revision(),)
        ]

    # 2. The watcher process, before anything is configured.
    watcher = Watcher(topo, "shop")
    try:
        # 3. The closed loop over REST config reads and Kafka, judged by the cluster.
        source = RestConfigSource(topo.api, ADMIN_KEY, poll_interval=0.5)
        loop = Loop(_loop_settings(topo), engine, SCENARIOS["cheaper-good"](), source=source)
        loop.procs = [topo.procs["processor-0"], topo.procs["processor-1"]]
        otlp_start = loop.start
        OtlpSink(f"http://127.0.0.1:{topo.ports['otlp_http']}").send(
            _otlp_events("otlp-app", otlp_start, 150)
        )
        done = loop.run_until(
            lambda d: d.status in ("promoted", "watching", "rolled_back"), timedelta(minutes=40)
        )
        assert done.status in ("promoted", "watching"), done.reason
        with session_scope(engine) as s:
            decisions = list_decisions(s, app="shop").items
            verdicts = s.scalar(select(func.count()).select_from(VerdictRow))
            insights = s.scalars(
                select(InsightRow.kind).where(InsightRow.app == "otlp-app").distinct()
            ).all()
            otlp_windows = s.execute(
                select(WindowRow.window_start, WindowRow.count)
                .where(WindowRow.app == "otlp-app", WindowRow.kind == "tumbling")
                .order_by(WindowRow.window_start)
            ).all()
        assert [(d.strategy, d.action["model"]) for d in decisions] == [("model_selection", SMALL)]
        assert (verdicts or 0) >= 2
        assert "latency_slo" in insights  # the OTLP app's calls, judged by the cluster
        assert [tuple(w) for w in otlp_windows[:2]] == [
            (otlp_start, 60),
            (otlp_start + timedelta(minutes=1), 60),
        ]
        stored = ConfigManager(engine).active("shop")
        assert stored.tasks["classify"].model == SMALL

        def rest_config() -> dict[str, Any] | None:  # a replica's cache trusts for config_cache_ttl
            got = httpx.get(topo.api + "/api/v1/config/shop", headers=HEADERS, timeout=10).json()
            return got if got["version"] == stored.version else None

        active = wait_for("REST to serve the promoted config", rest_config, 60, topo.alive)
        assert active["tasks"]["classify"]["model"] == SMALL

        # 4. The promoted config reached the other process over Redis pub/sub and gRPC.
        seen = watcher.until(active["version"])
        assert seen["version"] == active["version"]
        assert seen["models"]["classify"] == SMALL
    finally:
        watcher.close()

    # 5. Both workers answer config reads, each with the promoted version.
    answers: dict[int, int] = {}

    def both_workers() -> bool | None:
        with httpx.Client(base_url=topo.api, timeout=10) as client:  # a new connection
            response = client.get("/api/v1/config/shop", headers=HEADERS)
            pid = answering_pid(topo.ports["api"], response)
        assert response.status_code == 200
        answers[pid] = response.json()["version"]
        return len(answers) >= 2 or None

    wait_for("config reads from both REST workers", both_workers, 120, topo.alive)
    assert set(answers.values()) == {active["version"]}

    # 6. Every endpoint Prometheus scrapes.
    targets = topo.scrape_targets()
    for job, hosts in _prometheus_jobs().items():
        assert job in EXPECTED_SERIES, f"no expectation for the scrape job {job}"
        for host in hosts:
            url = targets[host]
            wanted = set(EXPECTED_SERIES[job])
            # Some series appear with their first sample (the pipeline's, every 15 s).
            with contextlib.suppress(AssertionError):
                wait_for(f"{job} series", partial(_has, url, wanted), 120, topo.alive)
            found = _scrape(url)
            missing = wanted - found
            assert not missing, f"{job} at {host} lacks {sorted(missing)}; has {sorted(found)}"

    # 7. Broker outage during REST ingest with two workers: nothing is lost.
    port = topo.broker.port
    topo.broker.stop()
    sent: set[str] = set()
    batch = 0

    def send_batch() -> None:
        nonlocal batch
        events = _otlp_events("outage-app", datetime.now(UTC) - timedelta(minutes=5), 20)
        for e in events:
            e["event_id"] = f"outage-{batch}-{e['event_id']}"
        batch += 1
        with httpx.Client(base_url=topo.api, timeout=60) as client:  # a new connection each
            response = client.post("/api/v1/telemetry", json=events, headers=HEADERS)
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == len(events), response.text
        sent.update(e["event_id"] for e in events)

    def spilled_by_both() -> bool | None:
        send_batch()
        return (batch >= 10 and len(_spilled_folders(topo)) >= 2) or None

    wait_for("both REST workers to spill", spilled_by_both, 300, lambda: topo.alive("optimizer"))
    topo.broker = EmbeddedBroker(port, log_path=topo.root / "broker-2.log")
    topo.broker.start()
    for _ in range(5):  # while the spill is replayed
        send_batch()
    telemetry = "llm.telemetry"
    wait_for(
        "every accepted event in the topic",
        lambda: sent <= _topic_event_ids(topo.broker.bootstrap, telemetry, "outage-", sent) or None,
        300,
        lambda: topo.alive("optimizer"),
    )
    wait_for("the spill folders to drain", lambda: not _spilled_folders(topo) or None, 120,
             lambda: topo.alive("optimizer"))  # fmt: skip
    engine.dispose()
    print(f"topology e2e: {time.monotonic() - started:.0f}s after start")
