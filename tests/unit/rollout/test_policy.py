"""The rollout policy as a pure state machine: examples, then properties over random totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.decisions import Decision, Deployment, RollbackLimit
from core.settings import CanarySettings
from operators.exposure import ladder
from rollout.policy import RolloutTotals, step
from tests.side_samples import side

T0 = datetime(2026, 12, 1, tzinfo=UTC)
CANARY = CanarySettings()
TOL = 0.02


def deployment(
    *,
    status: str = "running",
    stage: int = 1,
    weight: float = 0.01,
    started: timedelta = timedelta(hours=1),
    held: timedelta = timedelta(hours=1),
    now: datetime = T0,
) -> Deployment:
    return Deployment(
        id="dep-1",
        decision_id="dec-1",
        app="shop",
        task="classify",
        status=status,  # type: ignore[arg-type]
        stage=stage,
        weight=weight,
        baseline_version=1,
        canary_version=2,
        started_at=now - started,
        stage_started_at=now - held,
        updated_at=now - held,
    )


def decision(*plan: RollbackLimit) -> Decision:
    return Decision(
        id="dec-1",
        created_at=T0 - timedelta(days=1),
        app="shop",
        task="classify",
        strategy="model_selection",
        action={"model": "small"},
        rationale="cheaper",
        rollback_plan=plan,
    )


def totals(rng: np.random.Generator, n: int, baseline: float, canary: float) -> RolloutTotals:
    return RolloutTotals(
        through=T0 - timedelta(minutes=1),
        first=side(rng, n, quality=baseline, binary=True),
        second=side(rng, n, quality=canary, binary=True),
    )


def test_equal_quality_with_plenty_of_data_promotes_after_the_minimum_stage() -> None:
    rng = np.random.default_rng(1)
    result = step(deployment(), decision(), {1: totals(rng, 20_000, 0.9, 0.9)}, T0, CANARY, TOL)
    assert result.outcome == "pass"
    assert result.transition.kind == "promote"
    assert {c.metric for c in result.checks} >= {"quality", "error_rate"}


def test_a_clearly_worse_canary_rolls_back_with_the_verdict_in_the_reason() -> None:
    rng = np.random.default_rng(2)
    result = step(deployment(), decision(), {1: totals(rng, 5_000, 0.9, 0.6)}, T0, CANARY, TOL)
    assert result.outcome == "fail"
    assert result.transition.kind == "rollback"
    assert result.transition.why.startswith("verdict fail at 1%: ")


def test_a_pass_held_too_briefly_holds() -> None:
    rng = np.random.default_rng(3)
    brief = deployment(held=CANARY.min_stage_duration - timedelta(seconds=1))
    result = step(brief, decision(), {1: totals(rng, 20_000, 0.9, 0.9)}, T0, CANARY, TOL)
    assert (result.outcome, result.transition.kind) == ("pass", "hold")


def test_inconclusive_past_the_longest_rollout_rolls_back() -> None:
    rng = np.random.default_rng(4)
    old = deployment(started=CANARY.max_rollout_duration + timedelta(minutes=5))
    result = step(old, decision(), {1: totals(rng, 150, 0.9, 0.88)}, T0, CANARY, TOL)
    assert result.outcome == "inconclusive"
    assert result.transition.kind == "rollback"
    assert "canary.max_rollout_duration" in result.transition.why


def test_inconclusive_with_a_small_expected_loss_advances_as_far_as_the_risk_budget() -> None:
    rng = np.random.default_rng(5)
    result = step(deployment(), decision(), {1: totals(rng, 600, 0.9, 0.9)}, T0, CANARY, TOL)
    assert result.outcome == "inconclusive"
    assert result.transition.kind == "advance"
    # loss 0.0014 per canary call against a budget of 0.005 per call: up to 0.005/0.0014 = 3.6
    assert result.transition.weight == 0.5  # the highest rung
    assert result.transition.why == (
        "expected quality loss 0.0014 per canary call, risk budget 0.005"
    )
    eta = [c for c in result.checks if c.metric == "expected_time_to_verdict_h"]
    assert len(eta) == 1
    assert eta[0].detail in result.reason


def test_a_broken_rollback_plan_fails_even_when_the_judge_passes() -> None:
    rng = np.random.default_rng(6)
    plan = RollbackLimit(metric="error_rate", limit=0.0001, direction="max")
    result = step(deployment(), decision(plan), {1: totals(rng, 20_000, 0.9, 0.9)}, T0, CANARY, TOL)
    assert result.outcome == "fail"
    assert result.reason == "rollback plan: plan:error_rate"
    assert result.transition.kind == "rollback"


def test_a_watch_finishes_only_after_its_duration_and_enough_promoted_calls() -> None:
    rng = np.random.default_rng(7)
    watched = deployment(status="watching", stage=2, weight=1.0, held=CANARY.post_promotion_watch)
    history = {1: totals(rng, 5_000, 0.9, 0.9), 2: totals(rng, 5_000, 0.9, 0.9)}
    assert step(watched, decision(), history, T0, CANARY, TOL).transition.kind == "finish"
    few = {1: history[1], 2: totals(rng, CANARY.min_samples - 1, 0.9, 0.9)}
    assert step(watched, decision(), few, T0, CANARY, TOL).transition.kind == "hold"


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 5_000),
    baseline=st.floats(0.5, 0.95),
    delta=st.floats(-0.3, 0.05),
    stage=st.integers(1, 5),
    held_min=st.integers(0, 240),
    started_h=st.integers(0, 100),
    watching=st.booleans(),
)
def test_every_step_is_one_legal_transition(
    seed: int,
    n: int,
    baseline: float,
    delta: float,
    stage: int,
    held_min: int,
    started_h: int,
    watching: bool,
) -> None:
    rng = np.random.default_rng(seed)
    rungs = ladder(CANARY.stages)
    weight = 1.0 if watching else rungs[min(stage, len(rungs)) - 1]
    held = timedelta(minutes=held_min)
    dep = deployment(
        status="watching" if watching else "running",
        stage=stage,
        weight=weight,
        held=held,
        started=max(held, timedelta(hours=started_h)),
    )
    history = {s: totals(rng, n, baseline, baseline + delta) for s in range(1, stage + 1)}
    result = step(dep, decision(), history, T0, CANARY, TOL)
    kind = result.transition.kind
    # a fail always rolls back, and only a fail or the time limit does
    assert (result.outcome == "fail") == (
        kind == "rollback" and "verdict fail" in result.transition.why
    )
    # nothing moves before the stage has lasted its minimum (a fail may)
    if held < CANARY.min_stage_duration:
        assert kind in ("hold", "rollback")
    # a watched deployment never advances or promotes again; a running one never finishes
    assert kind not in (("advance", "promote") if watching else ("finish",))
    # promotion needs a pass; a weight only rises, to a rung of the ladder, and by one rung
    # only while the error and latency tests lack their samples
    if kind == "promote":
        assert result.outcome == "pass"
    if kind == "advance":
        assert result.transition.weight in rungs
        assert result.transition.weight > weight
        if not any(c.metric == "samples" and c.passed for c in result.checks):
            assert rungs.index(result.transition.weight) == rungs.index(weight) + 1
    else:
        assert result.transition.weight == weight
    # no data is never a pass
    if n == 0:
        assert result.outcome != "pass"
    # every verdict explains itself
    assert result.reason
    assert all(c.metric for c in result.checks)
