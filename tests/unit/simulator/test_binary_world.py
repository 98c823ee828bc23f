"""The binary-quality world: correlated 0/1 scores, the seeded fleet, shadow evaluation.

Statistical checks draw many calls with fixed seeds and allow >= 5 standard errors, so they
are deterministic and far from their limits.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from core.app_config import AppConfig, CanaryConfig, ShadowConfig, TaskConfig
from simulator import (
    Fleet,
    ModelProfile,
    Scenario,
    TaskProfile,
    binary_fleet,
    correct,
    score_correlation,
)
from simulator.binary_fleet import BIG, SMALL

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def _phi(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.corrcoef(a.astype(float), b.astype(float))[0, 1])


@pytest.mark.parametrize(("acc", "rho"), [(0.3, 0.5), (0.62, 0.9), (0.93, 0.7), (0.5, 0.0)])
def test_each_model_is_right_with_its_accuracy(acc: float, rho: float) -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    hits = correct(rng.standard_normal(n), rng.standard_normal(n), acc, rho)
    assert abs(hits.mean() - acc) < 5 * math.sqrt(acc * (1 - acc) / n)


@pytest.mark.parametrize(
    ("acc_a", "acc_b", "rho"), [(0.9, 0.7, 0.9), (0.6, 0.55, 0.5), (0.8, 0.8, 0.0)]
)
def test_scores_on_the_same_prompts_correlate_as_the_model_says(
    acc_a: float, acc_b: float, rho: float
) -> None:
    rng = np.random.default_rng(2)
    n = 200_000
    u = rng.standard_normal(n)
    a = correct(u, rng.standard_normal(n), acc_a, rho)
    b = correct(u, rng.standard_normal(n), acc_b, rho)
    expected = score_correlation(acc_a, acc_b, rho)
    assert abs(_phi(a, b) - expected) < 5 / math.sqrt(n)
    if rho == 0.0:
        assert expected == pytest.approx(0.0, abs=1e-9)
    else:
        assert expected > 0.1  # a hard prompt is hard for both


def test_score_correlation_grows_with_rho() -> None:
    values = [score_correlation(0.8, 0.7, rho) for rho in (0.0, 0.3, 0.6, 0.9)]
    assert values == sorted(values)
    assert values[0] == pytest.approx(0.0, abs=1e-9)


# -- the seeded fleet -------------------------------------------------------------------------


def _gaps(scenario: Scenario) -> np.ndarray[Any, Any]:
    return np.array(
        [t.models[SMALL].quality_mean - t.models[BIG].quality_mean for t in scenario.tasks]
    )


def test_fleet_is_as_specified_and_seeded() -> None:
    fleet = binary_fleet()
    assert len(fleet.tasks) == 57
    assert {t.app for t in fleet.tasks} == {"fleet"}
    assert len({t.task for t in fleet.tasks}) == 57
    for t in fleet.tasks:
        assert t.model == BIG
        assert set(t.models) == {BIG, SMALL}
        assert t.binary_quality
        assert 0.5 <= t.models[BIG].quality_mean <= 0.95
        assert 0.2 <= t.models[SMALL].quality_mean <= 0.98
        assert 0.5 <= t.difficulty_rho <= 0.9
        assert 0.2 <= t.rate_per_s <= 5.0
        assert 0.3 <= t.quality_share <= 1.0
        assert t.feedback_share in (0.0, 1.0)
        assert 10.0 <= t.feedback_delay_s <= 480.0
    gaps = _gaps(fleet)
    assert gaps.min() >= -0.3
    assert gaps.max() <= 0.3
    assert gaps.min() < -0.2
    assert gaps.max() > 0.2
    assert np.mean(np.abs(gaps) <= 0.2) > 0.6  # most within 0.2 in magnitude
    assert binary_fleet() == fleet
    assert binary_fleet(seed=16) != fleet
    assert binary_fleet(tasks=5).tasks == fleet.tasks[:5]


def test_fleet_distributions_over_many_tasks() -> None:
    fleet = binary_fleet(tasks=4000, seed=3)
    gaps = _gaps(fleet)
    n = len(gaps)
    ties = np.mean(np.abs(gaps) <= 0.02)
    moderate = np.mean((np.abs(gaps) > 0.02) & (np.abs(gaps) <= 0.2))
    large = np.mean(np.abs(gaps) > 0.2)
    se = math.sqrt(0.25 / n)
    assert abs(ties - 0.2) < 5 * se
    assert abs(moderate - 0.6) < 5 * se
    assert abs(large - 0.2) < 5 * se
    outside = np.abs(gaps) > 0.02
    assert abs(np.mean(gaps[outside] < 0) - 0.75) < 5 * se * 2
    oracle_cheap = np.mean(gaps >= -0.02)
    assert abs(oracle_cheap - (0.2 + 0.8 * 0.25)) < 5 * se
    rates = np.log([t.rate_per_s for t in fleet.tasks])  # log-uniform: uniform in log
    assert abs(np.median(rates) - (math.log(0.2) + math.log(5.0)) / 2) < 0.15
    inline = np.mean([t.feedback_share == 0.0 for t in fleet.tasks])
    assert abs(inline - 0.3) < 5 * se
    coverage = np.array([t.quality_share for t in fleet.tasks])
    assert abs(coverage.mean() - 0.65) < 0.02


def test_cheap_model_costs_15_to_20_times_less() -> None:
    scenario = binary_fleet(tasks=1)
    fleet = Fleet(scenario, start=T0)
    task = scenario.tasks[0]
    ratio = fleet.expected_cost(task, BIG, task.models[BIG]) / fleet.expected_cost(
        task, SMALL, task.models[SMALL]
    )
    assert 15 <= ratio <= 20
    assert fleet.oracle(task, T0) == (SMALL if _gaps(scenario)[0] >= -0.02 else BIG)


# -- served calls -----------------------------------------------------------------------------


def _binary_task(**kw: Any) -> TaskProfile:
    fields: dict[str, Any] = {
        "app": "fleet",
        "task": "t",
        "model": BIG,
        "models": {
            BIG: ModelProfile(quality_mean=0.8, quality_sd=0.0),
            SMALL: ModelProfile(quality_mean=0.7, quality_sd=0.0),
        },
        "rate_per_s": 100.0,
        "binary_quality": True,
        "difficulty_rho": 0.8,
        "quality_share": 0.6,
    }
    fields.update(kw)
    return TaskProfile(**fields)


def _run(
    task: TaskProfile, config: TaskConfig, minutes: int, seed: int = 4
) -> tuple[Fleet, list[dict[str, Any]]]:
    fleet = Fleet(Scenario("t", (task,)), start=T0, seed=seed)
    app = AppConfig(app=task.app, version=3, tasks={task.task: config})
    events: list[dict[str, Any]] = []
    for k in range(minutes):
        events += fleet.calls(
            T0 + timedelta(minutes=k), T0 + timedelta(minutes=k + 1), {task.app: app}
        )
    return fleet, events


def test_binary_calls_carry_0_1_scores_at_the_accuracy_and_coverage() -> None:
    task = _binary_task()
    _, events = _run(task, TaskConfig(model=BIG), 20)
    ok = [e for e in events if e.get("status") == "ok"]
    scored = [e["quality"] for e in ok if "quality" in e]
    assert set(scored) == {0.0, 1.0}
    n = len(ok)
    assert abs(len(scored) / n - 0.6) < 5 * math.sqrt(0.24 / n)
    assert abs(np.mean(scored) - 0.8) < 5 * math.sqrt(0.16 / len(scored))


def test_delayed_scores_come_as_feedback_within_the_delay() -> None:
    task = _binary_task(feedback_share=1.0, feedback_delay_s=120.0, quality_share=0.5)
    _, events = _run(task, TaskConfig(model=BIG), 10)
    calls = {e["request_id"]: e for e in events if e.get("kind") != "feedback"}
    feedback = [e for e in events if e.get("kind") == "feedback"]
    assert not any("quality" in c for c in calls.values())
    due = (T0 + timedelta(minutes=8)).timestamp() * 1000  # feedback of later calls is held back
    ok = {r for r, c in calls.items() if c["status"] == "ok" and c["timestamp"] < due}
    answered = sum(1 for fb in feedback if fb["request_id"] in ok)
    assert abs(answered / len(ok) - 0.5) < 5 * math.sqrt(0.25 / len(ok))
    for fb in feedback:
        assert fb["quality"] in (0.0, 1.0)
        assert 1000 <= fb["timestamp"] - calls[fb["request_id"]]["timestamp"] <= 120_000


def test_shadow_scores_the_same_prompts_and_costs_exploration() -> None:
    task = _binary_task()
    shadow = ShadowConfig(model=SMALL, share=0.5)
    fleet, events = _run(task, TaskConfig(model=BIG, shadow=shadow), 30)
    scored = [e for e in events if "quality" in e]
    paired = [e for e in scored if "shadow_quality" in e]
    assert all(e["shadow_model"] == SMALL for e in paired)
    assert not any("shadow_quality" in e for e in events if "quality" not in e)
    share = len(paired) / len(scored)
    assert abs(share - 0.5 * (1 - 0.005)) < 5 * math.sqrt(0.25 / len(scored))
    served = np.array([e["quality"] for e in paired])
    other = np.array([e["shadow_quality"] for e in paired])
    n = len(paired)
    assert abs(other.mean() - 0.7) < 5 * math.sqrt(0.21 / n)
    assert abs(_phi(served, other) - score_correlation(0.8, 0.7, 0.8)) < 5 / math.sqrt(n)
    ledger = fleet.ledgers[("fleet", "t")]
    assert n <= ledger.shadow_calls <= n * 1.02  # failed shadow calls cost but give no score
    per_call = fleet.expected_cost(task, SMALL, task.models[SMALL])
    assert ledger.shadow_usd == pytest.approx(ledger.shadow_calls * per_call)
    assert ledger.explore_quality_lost == 0.0
    assert ledger.canary_calls == 0


def test_shadow_rides_on_delayed_feedback_and_skips_the_served_model() -> None:
    task = _binary_task(feedback_share=1.0, feedback_delay_s=30.0)
    _, events = _run(task, TaskConfig(model=BIG, shadow=ShadowConfig(model=SMALL, share=1.0)), 5)
    feedback = [e for e in events if e.get("kind") == "feedback"]
    assert sum("shadow_quality" in e for e in feedback) > 0.9 * len(feedback)
    assert not any("shadow_quality" in e for e in events if e.get("kind") != "feedback")
    fleet, same = _run(task, TaskConfig(model=SMALL, shadow=ShadowConfig(model=SMALL)), 3)
    assert not any("shadow_quality" in e for e in same)
    assert fleet.ledgers[("fleet", "t")].shadow_calls == 0


def test_canary_exploration_cost_in_the_ledger() -> None:
    task = _binary_task()
    canary = CanaryConfig(version=4, weight=0.25, overrides={"model": SMALL})
    fleet, events = _run(task, TaskConfig(model=BIG, canary=canary), 10)
    ledger = fleet.ledgers[("fleet", "t")]
    assert 0 < ledger.canary_calls < ledger.calls
    assert ledger.explore_quality_lost == pytest.approx(ledger.canary_calls * 0.1)
    assert ledger.explore_usd == 0.0  # the cheap canary spends less
    assert [(c.model, c.canary_model, c.canary_weight) for c in ledger.changes] == [
        (BIG, SMALL, 0.25)
    ]
    assert {e["config_version"] for e in events if e.get("variant") == "canary"} == {4}
