"""The coordinator: each rule on its own, and the choice by expected value."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.decisions import Decision, ExpectedImpact
from core.decisions import Strategy as StrategyName
from core.settings import DecisionSettings
from operators.strategies import coordinate, expected_value
from tests.unit.operators.strategies.helpers import APP, T0, TASK

S = DecisionSettings()
NOW = T0 + timedelta(hours=1)


def proposal(
    strategy: StrategyName = "caching",
    *,
    cost: float = -10.0,
    latency: float = 0.0,
    quality: float = 0.0,
    confidence: float = 0.9,
    action: dict[str, Any] | None = None,
    evidence: dict[str, Any] | None = None,
    task: str = TASK,
) -> Decision:
    return Decision(
        id=f"{strategy}-{cost}-{confidence}",
        created_at=T0,
        app=APP,
        task=task,
        strategy=strategy,
        action=action or {"cache": {"enabled": True}},
        rationale="r",
        evidence=evidence or {},
        expected_impact=ExpectedImpact(
            cost_change_pct=cost, latency_change_pct=latency, quality_change=quality
        ),
        confidence=confidence,
    )


def run(ps: list[Decision], **kw: Any) -> tuple[Decision | None, list[tuple[Decision, str]]]:
    args: dict[str, Any] = {"in_flight": False, "last_decision_at": None, "now": NOW}
    args |= {"settings": S} | kw
    return coordinate(ps, **args)


def test_best_expected_value_wins_and_the_others_get_reasons() -> None:
    a = proposal("caching", cost=-50.0, confidence=0.8)  # 40
    b = proposal("rate_limiting", cost=-20.0, confidence=0.95)  # 19
    chosen, rejected = run([b, a])
    assert chosen == a
    assert rejected == [
        (
            b,
            f"expected value 19.00 below 40.00 of the chosen caching ({a.id}); "
            "one change at a time",
        )
    ]
    assert expected_value(a, S) == pytest.approx(40.0)


def test_in_flight_rejects_everything() -> None:
    a = proposal()
    assert run([a], in_flight=True) == (None, [(a, "a change of this (app, task) is in flight")])


def test_cooldown() -> None:
    a = proposal()
    chosen, rejected = run([a], last_decision_at=NOW - timedelta(minutes=10))
    assert chosen is None
    assert rejected == [(a, "cooldown: 300 s left of decisions.cooldown")]
    assert run([a], last_decision_at=NOW - timedelta(minutes=15))[0] == a


def test_min_confidence() -> None:
    a = proposal(confidence=0.69)
    assert run([a]) == (None, [(a, "confidence 0.69 below decisions.min_confidence 0.7")])


@pytest.mark.parametrize(
    ("p", "reason"),
    [
        (
            proposal(cost=10.5),
            "expected cost change +10.5 % exceeds decisions.max_cost_increase_pct 10.0",
        ),
        (
            proposal(latency=25.0),
            "expected latency change +25.0 % exceeds decisions.max_latency_increase_pct 20.0",
        ),
        (
            proposal(
                "model_selection",
                action={"model": "m", "prompt": {"prompt_cache": True}},
            ),
            "a model switch and a prompt change never go together",
        ),
    ],
)
def test_safety_limits(p: Decision, reason: str) -> None:
    assert run([p]) == (None, [(p, reason)])


def test_min_quality_uses_the_baseline_in_the_evidence() -> None:
    settings = DecisionSettings(min_quality=0.8)
    p = proposal(quality=-0.03, evidence={"baseline_quality_mean": 0.82})
    assert run([p], settings=settings) == (
        None,
        [(p, "expected quality 0.790 below decisions.min_quality 0.8")],
    )
    ok = proposal(quality=-0.01, evidence={"baseline_quality_mean": 0.82})
    assert run([ok], settings=settings)[0] == ok


def test_model_switch_and_prompt_change_never_together() -> None:
    model = proposal("model_selection", cost=-80.0, action={"model": "m"})
    prompt = proposal("prompt_optimization", cost=-30.0, action={"prompt": {"prompt_cache": True}})
    chosen, rejected = run([prompt, model])
    assert chosen == model
    assert rejected == [
        (prompt, "model_selection was chosen: a model switch and a prompt change never go together")
    ]


def test_ties_go_to_the_strategy_order() -> None:
    a = proposal("batching", cost=-10.0)
    b = proposal("caching", cost=-10.0)
    assert run([a, b])[0] == b


def test_nothing_proposed_nothing_chosen() -> None:
    assert run([]) == (None, [])


def test_proposals_of_several_tasks_are_refused() -> None:
    with pytest.raises(ValueError, match="one \\(app, task\\)"):
        run([proposal(), proposal(task="other")])


def test_a_dearer_model_that_restores_the_latency_slo_passes_the_cost_limit() -> None:
    def back_to(candidate_p95: float) -> Decision:
        return proposal(
            "model_selection",
            cost=250.0,
            latency=-60.0,
            action={"model": "big"},
            evidence={"restores_latency_slo": candidate_p95 <= 1000.0},
        )

    chosen, rejected = run([back_to(800.0)])
    assert chosen is not None
    assert rejected == []
    chosen, rejected = run([back_to(1200.0)])  # does not meet the SLO either: cost rules
    assert chosen is None
    assert "max_cost_increase_pct" in rejected[0][1]
