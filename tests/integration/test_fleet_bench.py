"""The fleet mode of bench.decision_quality: a small binary fleet through the real operators."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from bench.fleet_decisions import FleetRun, fleet_settings, run_fleet
from simulator import binary_fleet
from simulator.binary_fleet import BIG, SMALL

pytestmark = pytest.mark.integration


def test_fleet_report_matches_the_truth_and_the_deployments() -> None:
    base = binary_fleet(tasks=3, seed=15, hours=1.5)
    accs = [(0.80, 0.60), (0.70, 0.72), (0.85, 0.84)]  # worse, better, within tolerance
    tasks = tuple(
        dataclasses.replace(
            t,
            rate_per_s=5.0,
            quality_share=1.0,
            feedback_share=float(i == 1),
            feedback_delay_s=60.0,
            models={
                BIG: dataclasses.replace(t.models[BIG], quality_mean=big),
                SMALL: dataclasses.replace(t.models[SMALL], quality_mean=small),
            },
        )
        for i, (t, (big, small)) in enumerate(zip(base.tasks, accs, strict=True))
    )
    scenario = dataclasses.replace(base, tasks=tasks)
    s = fleet_settings(0.02, shadow_share=0.5)
    settings = s.with_overrides(
        canary=dataclasses.replace(
            s.canary, min_stage_duration=timedelta(minutes=2), min_samples=30
        )
    )
    run = FleetRun(tasks=3, hours=1.5, shadow=True, shadow_share=0.5)
    report = run_fleet(run, settings, scenario)

    assert [t.oracle_model for t in report.tasks] == [BIG, SMALL, SMALL]
    assert [(t.acc_big, t.acc_small) for t in report.tasks] == accs
    per_call = {BIG: report.cost_big, SMALL: report.cost_small}
    assert 15 <= report.cost_big / report.cost_small <= 20
    saved = sum(5.0 * (report.cost_big - per_call[t.oracle_model]) for t in report.tasks)
    assert report.oracle_savings == pytest.approx(saved / (15.0 * report.cost_big))
    saved = sum(5.0 * (report.cost_big - per_call[t.final_model]) for t in report.tasks)
    assert report.loop_savings == pytest.approx(saved / (15.0 * report.cost_big))
    assert [t.task for t in report.degraded()] == [
        t.task for t in report.tasks[:1] if t.final_model == SMALL
    ]
    assert [t.task for t in report.wrongly_left()] == [
        t.task for t in report.tasks[1:] if t.final_model == BIG
    ]
    for t in report.tasks:  # the final model is where the last verdict left the task
        promoted = [v for v in t.verdicts if v.kind == "promote"]
        if t.final_model == SMALL:
            assert t.verdicts
            assert t.verdicts[-1].kind == "promote"
        assert all(0 < v.hours <= 1.5 for v in t.verdicts)
        assert len(promoted) <= sum(1 for v in t.verdicts if v.kind == "rollback") + 1
        assert t.calls > 0.9 * 5.0 * 1.5 * 3600
        assert t.shadow_calls > 0  # the shadow ran while the task was on gpt-4o
        assert t.shadow_usd == pytest.approx(t.shadow_calls * report.cost_small, rel=0.05)
    counts = report.verdict_counts()
    rollbacks = sum(n for k, n in counts.items() if k.startswith("rollback"))
    promotes = sum(n for k, n in counts.items() if k.startswith("promote"))
    assert rollbacks == report.deployments.get("model_selection/rolled_back", 0)
    finished = sum(
        report.deployments.get(f"model_selection/{s}", 0)
        for s in ("watching", "promoted", "rolled_back")
    )
    assert promotes + rollbacks >= finished > 0  # the worse candidate at least gets a verdict
    explore = report.exploration()
    assert explore["shadow_calls"] == sum(t.shadow_calls for t in report.tasks)
    assert explore["wrong_answers"] >= 0.0
    assert report.periods > 80
    assert "of the oracle's" in report.render() or report.oracle_savings == 0
