"""The closed loop end to end: the simulator, the real broker, the real processor, PostgreSQL.

The processor runs as the orchestrator runs it (``python -m bytewax.run flows.main`` with
recovery, tailing the topic); the simulated fleet reads its config from the config manager
(the database the actuator writes), serves calls with it and its canary, and produces them to
Kafka. Simulated time runs ahead of the wall clock (starting two hours in the past so no event
is dated beyond the clock); after each minute of simulated time the fleet waits until the
processor has closed that period, so the actuator's answer reaches the next calls.

The last test is the user's path: ``python -m orchestrator`` with embedded defaults, then
``llmopt simulate`` reading configs over REST and producing to the embedded broker, and once
more exporting OTLP spans to the collector.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from core.decisions import Deployment
from core.settings import (
    CanarySettings,
    DecisionSettings,
    KafkaSettings,
    ProcessorSettings,
    Settings,
    StorageSettings,
)
from rollout.config_manager import ConfigManager
from simulator import (
    SCENARIOS,
    ConfigSource,
    Fleet,
    KafkaSink,
    ManagerConfigSource,
    ModelProfile,
    RestConfigSource,
    Scenario,
    Simulation,
    TaskProfile,
)
from storage.database import create_db_engine, session_scope
from storage.decisions import get_deployment, list_decisions, list_deployments
from storage.kafka import free_port
from storage.models import AppConfigRow, VerdictRow, WindowRow
from storage.outbox import list_outbox
from tests import processor_runs

pytestmark = pytest.mark.e2e

SMALL, BIG = "gpt-4o-mini", "gpt-4o"
LATENESS = timedelta(seconds=30)
PERIOD = timedelta(minutes=1)


def _settings(
    bootstrap: str, topics: dict[str, str], url: str, tmp: Path, watch: timedelta
) -> Settings:
    return Settings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap,
            telemetry_topic=topics["telemetry"],
            dlq_topic=topics["dlq"],
            tail=True,
        ),
        storage=StorageSettings(database_url=url, data_dir=str(tmp)),
        processor=dataclasses.replace(ProcessorSettings(), snapshot_interval=timedelta(seconds=1)),
        canary=dataclasses.replace(
            CanarySettings(),
            min_stage_duration=timedelta(minutes=2),
            post_promotion_watch=watch,
        ),
        decisions=dataclasses.replace(DecisionSettings(), candidates=(SMALL,)),
    )


class Loop:
    """The simulator against the running processor; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        scenario: Scenario,
        source: ConfigSource | None = None,
        hours_back: float = 2.0,
    ) -> None:
        self.settings = settings
        self.engine = engine
        start = (datetime.now(UTC) - timedelta(hours=hours_back)).replace(second=0, microsecond=0)
        self.clock = {"now": start}
        self.fleet = Fleet(scenario, start=start)
        manager = ConfigManager(engine, clock=lambda: self.clock["now"])
        self.sink = KafkaSink(settings.kafka.bootstrap_servers, settings.kafka.telemetry_topic)
        self.sim = Simulation(
            self.fleet, source or ManagerConfigSource(manager), self.sink, pace=self._pace
        )
        self.sim.seed_configs()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.start = start

    def start_processor(self) -> None:
        self.procs = processor_runs.start(self.settings)

    def kill_processor(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL

    def stop_processor(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(15)

    def _pace(self, now: datetime) -> None:
        """At each period's close, wait until the processor has emitted that period."""
        self.clock["now"] = now
        if (now - self.start) % PERIOD != timedelta(seconds=40):
            return  # the watermark passes a period's end 30 s after it: wait on the next tick
        closed = now - LATENESS
        due = closed - (closed - self.start) % PERIOD
        if due <= self.start:
            return  # no period has ended yet
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert all(p.poll() is None for p in self.procs), "the processor exited"
            with session_scope(self.engine) as s:
                last = s.scalar(
                    select(func.max(WindowRow.window_end)).where(WindowRow.kind == "tumbling")
                )
            if last is not None and last >= due:
                time.sleep(0.3)  # the actuator step runs right after the window sink
                return
            time.sleep(0.05)
        raise AssertionError(f"the processor did not close the period ending {due}")

    def deployment(self) -> Deployment | None:
        with session_scope(self.engine) as s:
            found, _ = list_deployments(s, limit=10)
            return get_deployment(s, found[0].id) if found else None

    def run_until(self, done: Callable[[Deployment], bool], limit: timedelta) -> Deployment:
        def stop(_now: datetime) -> bool:
            d = self.deployment()
            return d is not None and done(d)

        self.sim.run_until(self.sim.now + limit, stop=stop)
        d = self.deployment()
        assert d is not None, "no deployment started"
        return d


@contextlib.contextmanager
def rest_loop(
    settings: Settings,
    engine: Engine,
    scenario: Scenario,
    topics: dict[str, str],
    hours_back: float,
) -> Iterator[tuple[Loop, RestConfigSource]]:
    """A running :class:`Loop` whose apps read their configs over REST (the API in-process).

    ``settings`` name the database, Redis and broker; the processor runs until the block ends.
    """
    from litestar.testing import TestClient

    from api.rest.app import create_app
    from tests.unit.api.rest_support import ADMIN_KEY, rest_settings

    api = rest_settings(
        settings.storage.database_url, settings.storage.redis_url,
        kafka_bootstrap=settings.kafka.bootstrap_servers, topics=topics,
        config_cache_ttl=timedelta(seconds=1),
    )  # fmt: skip
    with TestClient(create_app(api)) as client:
        source = RestConfigSource("", ADMIN_KEY, poll_interval=0.0, client=client)
        loop = Loop(settings, engine, scenario, source=source, hours_back=hours_back)
        loop.start_processor()
        try:
            yield loop, source
        finally:
            loop.stop_processor()
            loop.sink.close()


@pytest.fixture
def loop_factory(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fresh_database: Callable[[], str],
    tmp_path: Path,
) -> Iterator[Callable[[Scenario, timedelta], Loop]]:
    loops: list[Loop] = []
    engines: list[Engine] = []

    def make(scenario: Scenario, watch: timedelta) -> Loop:
        url = fresh_database()
        engine = create_db_engine(url)
        engines.append(engine)
        settings = _settings(kafka_bootstrap, topics, url, tmp_path, watch)
        loop = Loop(settings, engine, scenario)
        loops.append(loop)
        loop.start_processor()
        return loop

    yield make
    for loop in loops:
        loop.stop_processor()
        loop.sink.close()
    for engine in engines:
        engine.dispose()


def _cost_per_call(engine: Engine, since: datetime, until: datetime) -> float:
    with session_scope(engine) as s:
        cost, calls = s.execute(
            select(func.sum(WindowRow.cost_usd), func.sum(WindowRow.count)).where(
                WindowRow.kind == "tumbling",
                WindowRow.window_start >= since,
                WindowRow.window_start < until,
            )
        ).one()
    return float(cost) / int(calls)


def _active_model(loop: Loop) -> str | None:
    config = ManagerConfigSource(ConfigManager(loop.engine)).config("shop")
    assert config is not None
    return config.tasks["classify"].model


def test_cheaper_model_as_good_is_promoted_and_cost_falls(
    loop_factory: Callable[[Scenario, timedelta], Loop],
) -> None:
    loop = loop_factory(SCENARIOS["cheaper-good"](), timedelta(minutes=2))
    done = loop.run_until(lambda d: d.status in ("promoted", "rolled_back"), timedelta(minutes=30))
    assert done.status == "promoted", done.reason
    weights = [v.weight for v in done.verdicts]
    assert weights[0] == 0.01
    assert weights == sorted(weights)  # planned from the evidence, never down
    assert weights[-1] == 1.0  # promoted: the watch judges the promoted config
    assert _active_model(loop) == SMALL
    loop.sim.run_for(3 * PERIOD)  # the app applies the last config a little after it is written
    before = _cost_per_call(loop.engine, loop.start, done.started_at)
    after = _cost_per_call(loop.engine, loop.sim.now - 2 * PERIOD, loop.sim.now)
    assert after < 0.2 * before, (before, after)
    ledger = loop.fleet.ledgers[("shop", "classify")]
    assert ledger.baseline_model == SMALL
    with session_scope(loop.engine) as s:
        decisions = list_decisions(s, app="shop").items
    assert [(d.strategy, d.status, d.action["model"]) for d in decisions] == [
        ("model_selection", "promoted", SMALL)
    ]


def test_cheaper_worse_model_is_rolled_back_before_25_percent(
    loop_factory: Callable[[Scenario, timedelta], Loop],
) -> None:
    loop = loop_factory(SCENARIOS["cheaper-worse"](), timedelta(minutes=2))
    done = loop.run_until(lambda d: d.status in ("promoted", "rolled_back"), timedelta(minutes=20))
    assert done.status == "rolled_back", done.reason
    assert done.weight < 0.25
    assert "quality" in done.reason
    assert _active_model(loop) == BIG
    calls_before = loop.fleet.ledgers[("shop", "classify")].canary_calls
    loop.sim.run_for(2 * PERIOD)
    assert loop.fleet.ledgers[("shop", "classify")].canary_calls == calls_before


def test_latency_regression_after_promotion_is_rolled_back_by_the_health_watch(
    loop_factory: Callable[[Scenario, timedelta], Loop],
) -> None:
    loop = loop_factory(SCENARIOS["cheaper-good"](), timedelta(minutes=10))
    promoted = loop.run_until(lambda d: d.status != "running", timedelta(minutes=30))
    assert promoted.status == "watching", promoted.reason
    loop.fleet.add_incident_now(loop.sim.now, model=SMALL, latency_factor=3.0)
    done = loop.run_until(lambda d: d.status != "watching", timedelta(minutes=8))
    assert done.status == "rolled_back", done.reason
    assert "after promotion" in done.reason
    assert "latency" in done.reason
    assert _active_model(loop) == BIG


def test_crash_mid_canary_resumes_and_applies_nothing_twice(
    loop_factory: Callable[[Scenario, timedelta], Loop],
) -> None:
    loop = loop_factory(SCENARIOS["cheaper-good"](), timedelta(minutes=2))
    mid = loop.run_until(lambda d: d.stage >= 1, timedelta(minutes=20))
    assert (mid.status, mid.stage) == ("running", 1)
    loop.kill_processor()
    loop.start_processor()  # resumes from its recovery store
    done = loop.run_until(lambda d: d.status in ("promoted", "rolled_back"), timedelta(minutes=30))
    assert done.status == "promoted", done.reason
    with session_scope(loop.engine) as s:
        keys = list(s.scalars(select(AppConfigRow.decision_key).order_by(AppConfigRow.version)))
        verdicts = s.execute(select(VerdictRow.stage, VerdictRow.window_end)).all()
        events = [e.event_type for e in list_outbox(s, limit=10_000)]
        decisions = list_decisions(s, app="shop").items
    decision = decisions[0].id
    # each weight once, in order, then promotion; after the watch the holdback is removed
    stages = keys[1:-2]
    assert len(stages) >= 2
    assert stages == [f"{decision}:stage:{i}" for i in range(len(stages))]
    assert keys[0] is None
    assert keys[-2:] == [f"{decision}:promote", f"{decision}:finish"]
    assert len(verdicts) == len(set(verdicts))
    assert len(decisions) == 1
    assert events.count("decision") == 1
    assert "rollback" not in events


def test_llmopt_simulate_against_the_orchestrator_as_a_user_runs_it(tmp_path: Path) -> None:
    """``python -m orchestrator`` (embedded defaults), then ``llmopt simulate`` (Kafka, REST)."""
    api_port, kafka_port, otlp_port = free_port(), free_port(), free_port()
    key = "e2e-sim-key"
    env = {
        **os.environ,
        "LLMOPT_ENV": "development",
        "LLMOPT_STORAGE__DATA_DIR": str(tmp_path / "var"),
        "LLMOPT_API__PORT": str(api_port),
        "LLMOPT_API__BOOTSTRAP_ADMIN_KEY": key,
        "LLMOPT_KAFKA__EMBEDDED_PORT": str(kafka_port),
        "LLMOPT_ORCHESTRATOR__METRICS_PORT": str(free_port()),
        "LLMOPT_COLLECTOR__HTTP_PORT": str(otlp_port),
        "LLMOPT_COLLECTOR__GRPC_PORT": "0",
        "LLMOPT_GRPC__PORT": str(free_port()),
        "LLMOPT_DECISIONS__CANDIDATES": '@json ["gpt-4o-mini"]',
        "LLMOPT_CANARY__MIN_STAGE_DURATION": "2min",
    }
    for name in ("KAFKA__BOOTSTRAP_SERVERS", "STORAGE__DATABASE_URL", "STORAGE__REDIS_URL"):
        env.pop(f"LLMOPT_{name}", None)
    log = (tmp_path / "orchestrator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "orchestrator.log").read_text()[-3000:]
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the orchestrator did not become healthy"
            time.sleep(0.25)
        report = tmp_path / "report.json"
        done = subprocess.run(
            [
                sys.executable, "-m", "orchestrator.cli", "simulate",
                "--scenario", "cheaper-worse", "--duration", "20min", "--speed", "40",
                "--target", "kafka", "--bootstrap", f"127.0.0.1:{kafka_port}",
                "--api-url", base, "--api-key", key, "--report", str(report),
            ],
            cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        summary = json.loads(report.read_text())["summary"]
        assert summary["events"] > 30_000
        assert (summary["bad_canaries"], summary["bad_caught"]) == (1, 1), summary
        config = httpx.get(base + "/api/v1/config/shop", headers={"x-api-key": key}).json()
        assert config["tasks"]["classify"]["model"] == "gpt-4o"
        assert config["tasks"]["classify"]["canary"] is None

        # The same fleet as OpenTelemetry spans through the collector's OTLP/HTTP receiver.
        scenario = tmp_path / "otlp.json"
        scenario.write_text(json.dumps({
            "name": "otlp", "seed": 5, "tasks": [{
                "app": "otlp-app", "task": "classify", "model": "gpt-4o", "rate_per_s": 30,
                "feedback_share": 0.5,
                "models": {"gpt-4o": {}, "gpt-4o-mini": {"quality_mean": 0.75}},
            }],
        }))  # fmt: skip
        otlp_report = tmp_path / "otlp-report.json"
        done = subprocess.run(
            [
                sys.executable, "-m", "orchestrator.cli", "simulate",
                "--scenario", str(scenario), "--duration", "8min", "--speed", "40",
                "--target", "otlp", "--otlp-url", f"http://127.0.0.1:{otlp_port}",
                "--api-url", base, "--api-key", key, "--report", str(otlp_report),
            ],
            cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        otlp_summary = json.loads(otlp_report.read_text())["summary"]
        assert otlp_summary["model_rollouts"] == 1, otlp_summary  # the loop ran on its spans
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _binary_task(task: str, big: float, small: float) -> TaskProfile:
    """A busy task scored 0/1 on every call, the two models' answers correlated per prompt."""
    return TaskProfile(
        app="shop",
        task=task,
        model=BIG,
        models={
            BIG: ModelProfile(quality_mean=big, quality_sd=0.0, latency_median_ms=500.0),
            SMALL: ModelProfile(quality_mean=small, quality_sd=0.0, latency_median_ms=400.0),
        },
        rate_per_s=5.0,
        quality_share=1.0,
        feedback_share=0.0,
        binary_quality=True,
        difficulty_rho=0.8,
        quality_tolerance=0.02,
    )


def test_binary_fleet_over_rest_ends_each_task_on_the_right_model(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fresh_database: Callable[[], str],
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Sparse 0/1 quality, four tasks at once, configs read over REST, shadow evaluation on.

    Two tasks whose cheap model is as good or better must end on it; two whose cheap model is
    worse than the 0.02 tolerance must end on the expensive one; no task may end degraded.
    """
    truth = {"better": (0.70, 0.85), "tie": (0.80, 0.82), "worse": (0.85, 0.65),
             "slightly-worse": (0.80, 0.72)}  # fmt: skip
    scenario = Scenario(
        "binary-e2e",
        tuple(_binary_task(t, big, small) for t, (big, small) in truth.items()),
        duration=timedelta(hours=4),
        seed=11,
    )
    url = fresh_database()
    engine = create_db_engine(url)
    base = _settings(kafka_bootstrap, topics, url, tmp_path, timedelta(minutes=2))
    settings = base.with_overrides(
        storage=dataclasses.replace(base.storage, redis_url=redis_url),
        canary=dataclasses.replace(base.canary, shadow_share=0.5),
    )
    with rest_loop(settings, engine, scenario, topics, hours_back=5.0) as (loop, source):

        def settled(_now: datetime) -> bool:
            with session_scope(engine) as s:
                done, _ = list_deployments(s, status=["promoted", "rolled_back"], limit=100)
            return len({d.task for d in done}) == len(truth)

        loop.sim.run_until(loop.sim.now + timedelta(hours=3), stop=settled)
        config = source.config("shop")
    assert config is not None
    final = {t: config.tasks[t].model for t in truth}
    right = {t: SMALL if small >= big - 0.02 else BIG for t, (big, small) in truth.items()}
    assert final == right
    degraded = [t for t, (big, small) in truth.items() if final[t] == SMALL and small < big - 0.02]
    assert degraded == []
    with session_scope(engine) as s:
        deployments, _ = list_deployments(s, limit=100)
        promoted = [get_deployment(s, d.id) for d in deployments if d.status == "promoted"]
    engine.dispose()
    for d in promoted:  # each promotion explains itself with the band that decided it
        deciding = next(v for v in d.verdicts if v.outcome == "pass" and v.weight < 1.0)
        quality = next(c for c in deciding.checks if c.metric == "quality")
        assert quality.passed is True
        assert quality.test.startswith("noninferiority_cs")
        assert quality.threshold == -0.02
