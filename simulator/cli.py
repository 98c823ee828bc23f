"""``llmopt simulate``: wiring of the simulator for the command line (orchestrator/cli.py)."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.console import Console

from core.durations import parse_duration
from core.settings import Settings
from rollout.config_manager import ConfigManager
from simulator.fleet import Fleet
from simulator.loop import InProcessOptimizer
from simulator.otlp import OtlpSink
from simulator.profiles import Scenario, load_scenario
from simulator.report import Report, build_report, rollouts_from_db, rollouts_from_rest
from simulator.run import Simulation, WallClockPacer, default_start
from simulator.scenarios import SCENARIOS
from simulator.sinks import CallbackSink, KafkaSink, RestSink, TelemetrySink
from simulator.sources import ConfigSource, ManagerConfigSource, RestConfigSource
from storage.database import create_db_engine, migrate

__all__ = ["SimulateOptions", "resolve_scenario", "simulate_command"]

_TARGETS = ("kafka", "rest", "otlp", "inprocess")


@dataclass(frozen=True)
class SimulateOptions:
    """The options of ``llmopt simulate``."""

    scenario: str = "fleet"
    duration: str | None = None
    speed: float = 60.0
    target: str = "kafka"
    bootstrap: str | None = None
    topic: str | None = None
    api_url: str | None = None
    api_key: str | None = None
    otlp_url: str | None = None
    config_source: str | None = None
    seed: int | None = None
    tick: float = 10.0
    report: Path | None = None


def resolve_scenario(name: str) -> Scenario:
    """A built-in scenario by name, else a scenario file."""
    if name in SCENARIOS:
        return SCENARIOS[name]()
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"no scenario {name!r}: a file, or one of {', '.join(sorted(SCENARIOS))}")
    return load_scenario(path)


_ANY = frozenset({"0.0.0.0", "::"})  # noqa: S104 - compared, never bound


def _loopback(host: str) -> str:
    """Where to reach a server bound to ``host`` from this machine."""
    return "127.0.0.1" if host in _ANY else host


def _api(settings: Settings, options: SimulateOptions) -> tuple[str, str]:
    host = _loopback(settings.api.host)
    url = options.api_url or f"http://{host}:{settings.api.port}"
    return url, options.api_key or settings.api.bootstrap_admin_key


def simulate_command(settings: Settings, options: SimulateOptions, console: Console) -> int:
    """Run the simulation the options describe; print the report. Returns the exit code."""
    if options.target not in _TARGETS:
        raise ValueError(f"--target must be one of {', '.join(_TARGETS)}, not {options.target!r}")
    scenario = resolve_scenario(options.scenario)
    if options.duration:
        scenario = Scenario(
            scenario.name, scenario.tasks, scenario.incidents,
            parse_duration(options.duration), scenario.start, scenario.seed,
        )  # fmt: skip
    start = scenario.start or default_start(scenario.duration, datetime.now(UTC))
    fleet = Fleet(scenario, start=start, prices=None, seed=options.seed)
    api_url, api_key = _api(settings, options)
    source_kind = options.config_source or ("db" if options.target == "inprocess" else "rest")
    cleanup: list[Any] = []
    engine = None
    if source_kind == "db" or options.target == "inprocess":
        url = settings.storage.resolved_database_url
        if options.target == "inprocess":
            url = f"sqlite:///{tempfile.mkdtemp(prefix='llmopt-sim-')}/optimizer.sqlite3"
        engine = create_db_engine(url)
        migrate(engine)
        cleanup.append(engine.dispose)
    clock = {"now": start}
    source: ConfigSource
    if source_kind == "db":
        assert engine is not None
        source = ManagerConfigSource(ConfigManager(engine, clock=lambda: clock["now"]))
    elif source_kind == "rest":
        rest_source = RestConfigSource(api_url, api_key)
        cleanup.append(rest_source.close)
        source = rest_source
    else:
        raise ValueError(f"--config-source must be rest or db, not {source_kind!r}")
    sink: TelemetrySink
    optimizer: InProcessOptimizer | None = None
    if options.target == "kafka":
        bootstrap = (
            options.bootstrap
            or settings.kafka.bootstrap_servers
            or f"127.0.0.1:{settings.kafka.embedded_port}"
        )
        sink = KafkaSink(bootstrap, options.topic or settings.kafka.telemetry_topic)
    elif options.target == "rest":
        rest_sink = RestSink(api_url, api_key)
        cleanup.append(rest_sink.close)
        sink = rest_sink
    elif options.target == "otlp":
        host = _loopback(settings.collector.host)
        otlp_sink = OtlpSink(options.otlp_url or f"http://{host}:{settings.collector.http_port}")
        cleanup.append(otlp_sink.close)
        sink = otlp_sink
    else:
        assert engine is not None
        optimizer = InProcessOptimizer(_with_candidates(settings, scenario, console), engine)
        sink = CallbackSink(optimizer.feed)
    pace = WallClockPacer(start, options.speed if options.target != "inprocess" else 0.0)
    sim = Simulation(fleet, source, sink, tick=timedelta(seconds=options.tick), pace=pace)
    console.print(
        f"simulating {scenario.name}: {len(scenario.tasks)} tasks of {len(fleet.apps)} apps, "
        f"{start.isoformat()} + {scenario.duration} at {options.speed:g}x → {options.target}"
    )
    try:
        sim.seed_configs()

        def progress(now: datetime) -> bool:
            clock["now"] = now
            if (now - start) % timedelta(minutes=10) < sim.tick:
                console.print(f"  {now:%H:%M} simulated, {sim.events} calls")
            return False

        sim.run_until(start + scenario.duration, stop=progress)
    except KeyboardInterrupt:
        console.print("interrupted: reporting what ran")
    if optimizer is not None:
        optimizer.finish()
    report = _report(fleet, sim, engine if source_kind == "db" else None, api_url, api_key)
    console.print(report.render(), markup=False, highlight=False, soft_wrap=True)
    if not pairs_hint(report) and not (
        settings.decisions.candidates or settings.decisions.app_candidates
    ):
        console.print(
            "no model rollouts: give the optimizer candidates, e.g. "
            "LLMOPT_DECISIONS__CANDIDATES='[\"gpt-4o-mini\"]'",
            soft_wrap=True,
        )
    if options.report is not None:
        options.report.write_text(json.dumps(_plain(report), indent=2, default=str))
    for close in cleanup:
        close()
    return 0


def pairs_hint(report: Report) -> bool:
    """Whether the optimizer rolled anything out."""
    return bool(report.rollouts)


def _with_candidates(settings: Settings, scenario: Scenario, console: Console) -> Settings:
    """In-process runs without configured candidates try every model the scenario knows."""
    d = settings.decisions
    if d.candidates or d.app_candidates:
        return settings
    models = tuple(sorted({m for t in scenario.tasks for m in t.models}))
    console.print(f"decisions.candidates is empty: the in-process optimizer tries {models}")
    return settings.with_overrides(decisions=dataclasses.replace(d, candidates=models))


def _report(fleet: Fleet, sim: Simulation, engine: Any, api_url: str, api_key: str) -> Report:
    if engine is not None:
        pairs, decisions = rollouts_from_db(engine, fleet.apps)
    else:
        with httpx.Client(base_url=api_url, headers={"x-api-key": api_key}, timeout=30.0) as client:
            pairs, decisions = rollouts_from_rest(client, fleet.apps)
    return build_report(fleet, sim.now, pairs, decisions, events=sim.events)


def _plain(report: Report) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(
        {"summary": report.summary(), "tasks": report.tasks, "rollouts": report.rollouts,
         "decisions": report.decisions}
    )  # fmt: skip
    return data
