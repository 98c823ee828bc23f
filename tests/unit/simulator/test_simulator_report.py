"""The simulator's report: rollouts judged against the truth, savings against the oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.decisions import Decision, Deployment, ExpectedImpact
from simulator import Fleet, Incident, ModelProfile, Scenario, TaskProfile, build_report

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
BIG, SMALL, BAD = "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"


def _fleet() -> Fleet:
    task = TaskProfile(
        app="shop",
        task="classify",
        model=BIG,
        models={
            BIG: ModelProfile(),
            SMALL: ModelProfile(latency_median_ms=400.0),
            BAD: ModelProfile(quality_mean=0.7),
        },
    )
    incident = Incident(model=SMALL, at=timedelta(hours=2), latency_factor=3.0)
    return Fleet(Scenario("t", (task,), (incident,)), start=T0, seed=1)


def _pair(
    n: int, model: str, status: str, weight: float, finished: timedelta | None
) -> tuple[Deployment, Decision]:
    decision = Decision(
        id=f"d{n}",
        created_at=T0,
        app="shop",
        task="classify",
        strategy="model_selection",
        action={"model": model},
        rationale="",
        expected_impact=ExpectedImpact(),
        confidence=0.9,
        status="canary",
    )
    deployment = Deployment(
        id=f"x{n}",
        decision_id=f"d{n}",
        app="shop",
        task="classify",
        status=status,  # type: ignore[arg-type]
        stage=0,
        weight=weight,
        baseline_version=1,
        canary_version=2,
        started_at=T0 + timedelta(minutes=n),
        stage_started_at=T0,
        updated_at=T0,
        finished_at=None if finished is None else T0 + finished,
        reason=f"r{n}",
    )
    return deployment, decision


def test_rollouts_are_classified_against_the_truth() -> None:
    fleet = _fleet()
    hour = timedelta(hours=1)
    pairs = [
        _pair(1, BAD, "rolled_back", 0.01, hour),  # bad, caught at 1 %
        _pair(2, BAD, "rolled_back", 0.05, hour),  # bad, caught at 5 %
        _pair(3, BAD, "promoted", 1.0, hour),  # bad, missed
        _pair(4, SMALL, "promoted", 1.0, hour),  # good, promoted
        _pair(5, SMALL, "rolled_back", 0.25, hour),  # good, wrongly rolled back
        _pair(6, SMALL, "rolled_back", 1.0, 3 * hour),  # good, regressed: caught by the watch
        _pair(7, SMALL, "running", 0.05, None),  # open
    ]
    report = build_report(fleet, T0 + 4 * hour, pairs, [d for _, d in pairs])
    assert [r.outcome for r in report.rollouts] == [
        "caught", "caught", "missed", "promoted", "wrongly_rolled_back", "regression_caught",
        "open",
    ]  # fmt: skip
    s = report.summary()
    assert (s["bad_canaries"], s["bad_caught"], s["bad_missed"]) == (3, 2, 1)
    assert s["bad_caught_at"] == {"1%": 1, "5%": 1}
    assert (s["good_canaries"], s["good_promoted"], s["good_wrongly_rolled_back"]) == (4, 1, 1)
    assert s["regressions_caught"] == 1
    assert s["open"] == 1
    assert [r.incident for r in report.rollouts] == [False] * 5 + [True, False]
    assert s["rollbacks_during_incidents"] == 1
    assert report.decisions == {"model_selection/canary": 7}
    text = report.render()
    assert "wrongly rolled back 1" in text
    assert "regression_caught" in text


def test_savings_are_weighed_against_the_oracle() -> None:
    fleet = _fleet()
    fleet.calls(T0, T0 + timedelta(minutes=5), {})
    report = build_report(fleet, T0 + timedelta(minutes=5), [])
    [task] = report.tasks
    assert task.oracle_model == SMALL
    assert task.final_model == BIG
    assert task.savings == 0.0
    assert task.oracle_savings > 0.9
    s = report.summary()
    assert s["savings_vs_oracle"] == 0.0
    assert s["bad_caught_pct"] is None
