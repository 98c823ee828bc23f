"""The simulator against the optimizer's operators in-process, on PostgreSQL (no Bytewax)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from core.settings import Settings
from orchestrator.cli import app
from rollout.config_manager import ConfigManager
from simulator import (
    SCENARIOS,
    CallbackSink,
    Fleet,
    InProcessOptimizer,
    ManagerConfigSource,
    Simulation,
    build_report,
    rollouts_from_db,
)
from storage.database import create_db_engine

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _settings() -> Settings:
    s = Settings()
    return s.with_overrides(
        canary=dataclasses.replace(
            s.canary, min_stage_duration=timedelta(minutes=2), min_samples=30
        ),
        decisions=dataclasses.replace(s.decisions, candidates=("gpt-4o-mini",)),
    )


def test_worse_candidate_is_caught_in_process_and_reported(
    fresh_database: Callable[[], str],
) -> None:
    engine = create_db_engine(fresh_database())
    clock = {"now": T0}
    fleet = Fleet(SCENARIOS["cheaper-worse"](), start=T0)
    optimizer = InProcessOptimizer(_settings(), engine)
    sim = Simulation(
        fleet,
        ManagerConfigSource(ConfigManager(engine, clock=lambda: clock["now"])),
        CallbackSink(optimizer.feed),
    )
    sim.seed_configs()

    def tick(now: datetime) -> bool:
        clock["now"] = now
        return False

    sim.run_until(T0 + timedelta(minutes=15), stop=tick)
    optimizer.finish()
    pairs, decisions = rollouts_from_db(engine, fleet.apps)
    engine.dispose()
    report = build_report(fleet, sim.now, pairs, decisions, events=sim.events)
    summary = report.summary()
    assert optimizer.counts.records == sim.events
    assert optimizer.counts.rejected == 0
    assert (summary["bad_canaries"], summary["bad_caught"]) == (1, 1)
    assert report.rollouts[0].weight < 0.25
    assert report.tasks[0].final_model == "gpt-4o"
    assert report.decisions == {"model_selection/rolled_back": 1}
    assert 0 < fleet.ledgers[("shop", "classify")].canary_calls < 0.05 * sim.events


def test_llmopt_simulate_in_process_prints_the_report(tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "simulate", "--scenario", "cheaper-good", "--duration", "12min",
            "--target", "inprocess", "--seed", "5", "--report", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "scenario cheaper-good" in result.output
    assert "model rollouts 1" in result.output
    import json

    data = json.loads(out.read_text())
    assert data["summary"]["model_rollouts"] == 1
    assert data["rollouts"][0]["model"] == "gpt-4o-mini"
