"""The fleet mode's report: verdicts read off config changes, savings against the oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.fleet_report import FleetReport, TaskResult, Verdict, verdicts_of
from simulator import ConfigChange

T0 = datetime(2026, 12, 1, tzinfo=UTC)
BIG, SMALL = "gpt-4o", "gpt-4o-mini"


def _at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _change(
    hours: float, model: str, canary: str | None = None, weight: float = 0.0
) -> ConfigChange:
    return ConfigChange(_at(hours), model, canary, weight, None)


def test_a_canary_that_ends_without_its_model_is_a_rollback() -> None:
    changes = [
        _change(0, BIG),
        _change(1, BIG, SMALL, 0.01),
        _change(1.5, BIG, SMALL, 0.05),
        _change(2, BIG),
        _change(3, BIG, SMALL, 0.01),
    ]
    assert verdicts_of(changes, T0, BIG) == [Verdict("rollback", SMALL, 2.0)]


def test_a_promotion_its_holdback_and_a_rollback_after_it() -> None:
    promoted = [
        _change(0, ""),  # the seeded config may leave the model to the default
        _change(1, BIG, SMALL, 0.01),
        _change(2, SMALL, BIG, 0.05),  # promoted; the holdback serves the old model
        _change(2.5, SMALL),  # the watch passed
    ]
    assert verdicts_of(promoted, T0, BIG) == [Verdict("promote", SMALL, 2.0)]
    reverted = [*promoted[:3], _change(2.2, BIG)]
    assert verdicts_of(reverted, T0, BIG) == [
        Verdict("promote", SMALL, 2.0),
        Verdict("rollback", SMALL, 2.2),
    ]
    again = [*reverted, _change(5, BIG, SMALL, 0.01), _change(6, SMALL)]
    assert verdicts_of(again, T0, BIG)[-1] == Verdict("promote", SMALL, 6.0)


def test_non_model_canaries_are_no_model_verdicts() -> None:
    changes = [_change(0, BIG), _change(1, BIG, BIG, 0.05), _change(2, BIG)]
    assert verdicts_of(changes, T0, BIG) == []


def _task(
    name: str, rate: float, acc_small: float, final: str, verdicts: list[Verdict]
) -> TaskResult:
    oracle = SMALL if acc_small >= 0.8 - 0.02 else BIG
    return TaskResult(name, rate, 1.0, 0.7, 0.0, 0.8, acc_small, oracle, final, verdicts)


def test_report_figures() -> None:
    tasks = [
        _task("a", 1.0, 0.85, SMALL, [Verdict("promote", SMALL, 3.0)]),  # right switch
        _task("b", 3.0, 0.79, BIG, [Verdict("rollback", SMALL, 1.0)]),  # wrongly left
        _task("c", 2.0, 0.70, SMALL, [Verdict("promote", SMALL, 2.0)]),  # degraded
        _task("d", 4.0, 0.50, BIG, [Verdict("rollback", SMALL, 0.5)]),  # right rollback
    ]
    report = FleetReport(tasks, 24.0, 0.02, False, cost_big=0.01, cost_small=0.001)
    # oracle: a and b switch; rates 1 + 3 of 10 calls/s save 0.009 per call each
    assert report.oracle_savings == pytest.approx(4 * 0.009 / (10 * 0.01))
    assert report.loop_savings == pytest.approx(3 * 0.009 / (10 * 0.01))
    assert report.share_of_oracle == pytest.approx(0.75)
    assert [t.task for t in report.degraded()] == ["c"]
    assert [t.task for t in report.wrongly_left()] == ["b"]
    assert report.verdict_counts() == {
        "promote/right": 1,
        "promote/wrong": 1,
        "rollback/right": 1,
        "rollback/wrong": 1,
    }
    text = report.render()
    assert "DEGRADED" in text
    assert "left on 4o" in text
    assert "= 75% of the oracle's" in text


def test_exploration_and_run_savings() -> None:
    base = _task("a", 1.0, 0.85, SMALL, [])
    task = TaskResult(
        **{
            **{f: getattr(base, f) for f in base.__slots__},
            "calls": 1000,
            "canary_calls": 100,
            "shadow_calls": 50,
            "explore_quality_lost": 2.5,
            "explore_usd": 0.4,
            "shadow_usd": 0.1,
            "default_usd": 10.0,
            "served_usd": 6.0,
            "oracle_usd": 1.0,
        }
    )
    report = FleetReport([task], 24.0, 0.02, True, cost_big=0.01, cost_small=0.001)
    explore = report.exploration()
    assert explore["wrong_answers"] == 2.5
    assert explore["wrong_answers_share"] == pytest.approx(0.0025)
    assert explore["usd_share_of_default"] == pytest.approx(0.05)
    assert report.run_savings() == (pytest.approx(1 - 6.1 / 10), pytest.approx(0.9))
