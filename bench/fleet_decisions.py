"""Fleet mode of ``bench.decision_quality``: many binary-quality tasks through the real loop.

The seeded fleet of :mod:`simulator.binary_fleet` (one app, ``--tasks`` tasks on
``gpt-4o`` with ``gpt-4o-mini`` as the only candidate) is served for ``--hours`` of simulated
time; its telemetry goes tick by tick through the same operators as the dataflow, in process
(:class:`~simulator.InProcessOptimizer`: AppWindows → AnalysisRunner → StrategyRunner →
Actuator on a fresh SQLite database), and the simulated app reads its config from the config
manager every tick, so whatever the judge, the canary stages and model selection decide is
what the app serves next. With ``shadow`` the optimizer asks (``canary.shadow_share``), while a
model change rolls out, that the app also run the candidate on that share of its scored
requests, and the simulated app does (:mod:`simulator.shadow`); without it the share is
0 and the judge has the canary's own scores only.

Verdicts are read off the config the app served (:class:`~simulator.ConfigChange`): a
*promote* when the task's model changes to the candidate, a *rollback* when a canary of another
model ends without it, or when a promoted task goes back to its old model. The report is
computed by :mod:`bench.fleet_report`.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.fleet_report import FleetReport, TaskResult, verdicts_of
from core.settings import Settings
from rollout.config_manager import ConfigManager
from simulator import (
    CallbackSink,
    Fleet,
    InProcessOptimizer,
    ManagerConfigSource,
    Scenario,
    Simulation,
    binary_fleet,
    rollouts_from_db,
)
from simulator.binary_fleet import BIG, SMALL
from storage.database import create_db_engine, migrate

__all__ = ["FleetRun", "fleet_settings", "run_fleet"]

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class FleetRun:
    """What to run: the fleet's size and seed, how long, shadow evaluation, the tick."""

    tasks: int = 57
    scenario_seed: int = 15
    hours: float = 24.0
    tolerance: float = 0.02
    shadow: bool = False
    shadow_share: float = 0.5
    tick: timedelta = timedelta(seconds=60)  # windows close a minute late anyway (lateness)


def fleet_settings(tolerance: float, shadow_share: float = 0.0) -> Settings:
    """Default settings, ``gpt-4o-mini`` as the candidate, ``tolerance`` for every quality test.

    ``shadow_share``: the share of scored calls on which the optimizer asks apps, while a model
    change rolls out, to also run the candidate (0: never, the run without shadow evaluation).
    """
    s = Settings()
    return s.with_overrides(
        canary=dataclasses.replace(s.canary, shadow_share=shadow_share),
        decisions=dataclasses.replace(
            s.decisions, candidates=(SMALL,), quality_tolerance=tolerance
        ),
    )


def run_fleet(
    run: FleetRun, settings: Settings | None = None, scenario: Scenario | None = None
) -> FleetReport:
    """Simulate ``run`` through the optimizer in process and report against the oracle.

    Args:
        run: The fleet's size, seed, duration, tolerance, shadow and tick.
        settings: The optimizer's settings (default: :func:`fleet_settings`).
        scenario: Another fleet of one app, gpt-4o with gpt-4o-mini (tests); default: the
            seeded :func:`~simulator.binary_fleet` of ``run``.
    """
    settings = settings or fleet_settings(run.tolerance, run.shadow_share if run.shadow else 0.0)
    scenario = scenario or binary_fleet(
        run.tasks, run.scenario_seed, hours=run.hours, tolerance=run.tolerance
    )
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{Path(tmp) / 'fleet.sqlite3'}")
        migrate(engine)
        fleet = Fleet(scenario, start=START)
        clock = {"now": START}
        manager = ConfigManager(engine, clock=lambda: clock["now"])
        optimizer = InProcessOptimizer(settings, engine)
        sim = Simulation(
            fleet, ManagerConfigSource(manager), CallbackSink(optimizer.feed), tick=run.tick
        )
        sim.seed_configs()  # shadow evaluation, when on, is asked for by the canary controller

        def tick(now: datetime) -> bool:
            clock["now"] = now
            return False

        sim.run_until(START + timedelta(hours=run.hours), stop=tick)
        optimizer.finish()
        pairs, _ = rollouts_from_db(engine, fleet.apps)
        engine.dispose()
    deployments: dict[str, int] = {}
    for dep, decision in pairs:
        key = f"{decision.strategy}/{dep.status}"
        deployments[key] = deployments.get(key, 0) + 1
    results: list[TaskResult] = []
    for t in scenario.tasks:
        ledger = fleet.ledgers[(t.app, t.task)]
        results.append(
            TaskResult(
                task=t.task,
                rate_per_s=t.rate_per_s,
                coverage=t.quality_share,
                rho=t.difficulty_rho,
                delay_s=t.feedback_delay_s if t.feedback_share > 0 else 0.0,
                acc_big=t.models[BIG].quality_mean,
                acc_small=t.models[SMALL].quality_mean,
                oracle_model=fleet.oracle(t, sim.now),
                final_model=ledger.baseline_model or t.model,
                verdicts=verdicts_of(ledger.changes, START, BIG),
                calls=ledger.calls,
                canary_calls=ledger.canary_calls,
                shadow_calls=ledger.shadow_calls,
                explore_quality_lost=ledger.explore_quality_lost,
                explore_usd=ledger.explore_usd,
                shadow_usd=ledger.shadow_usd,
                default_usd=ledger.default_usd,
                served_usd=ledger.served_usd,
                oracle_usd=ledger.oracle_usd,
            )
        )
    probe = scenario.tasks[0]
    return FleetReport(
        tasks=results,
        hours=run.hours,
        tolerance=run.tolerance,
        shadow=run.shadow,
        cost_big=fleet.expected_cost(probe, BIG, probe.models[BIG]),
        cost_small=fleet.expected_cost(probe, SMALL, probe.models[SMALL]),
        deployments=deployments,
        events=sim.events,
        wall_s=time.monotonic() - began,
        periods=optimizer.counts.periods,
    )
