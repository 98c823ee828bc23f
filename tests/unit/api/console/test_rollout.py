from __future__ import annotations

from datetime import timedelta

import pytest

from api.rest.console.rollout import (
    allowed_actions,
    band_geometry,
    build_rollout,
    check_sentence,
    expected_verdict,
)
from core.decisions import Decision, Deployment, MetricCheck, Verdict
from tests.unit.operators.strategies.helpers import APP, MINUTE, T0, TASK

QUALITY = MetricCheck(
    metric="quality", baseline=0.85, canary=0.84, threshold=-0.02, test="noninferiority_cs",
    statistic=-0.01, p_value=0.004, baseline_n=3000, canary_n=1200, passed=True,
    lower=-0.015, upper=-0.005, detail="not worse",
)  # fmt: skip
GATE = MetricCheck(metric="error_rate", baseline=0.01, canary=0.02, threshold=0.05, passed=True)
ETA = MetricCheck(
    metric="expected_time_to_verdict_h", baseline=None, canary=2.5, threshold=72.0,
    test="projection", statistic=40.0, detail="a quality verdict expected in 2.5 h",
)  # fmt: skip


def _decision(status: str = "proposed", **evidence: object) -> Decision:
    return Decision(
        id="d1", created_at=T0, app=APP, task=TASK, strategy="model_selection",
        action={"model": "gpt-4o-mini"}, rationale="cheaper", evidence=dict(evidence),
        status=status,  # type: ignore[arg-type]
    )  # fmt: skip


def _verdict(stage: int, minute: int, outcome: str, *checks: MetricCheck) -> Verdict:
    end = T0 + timedelta(minutes=minute)
    return Verdict(
        id=f"v{stage}-{minute}", deployment_id="dep", stage=stage, weight=[0.01, 0.05][stage],
        outcome=outcome, window_start=end - MINUTE, window_end=end, checks=checks,  # type: ignore[arg-type]
        reason=f"{outcome} at {minute}", created_at=end,
    )  # fmt: skip


def _deployment(status: str, *verdicts: Verdict) -> Deployment:
    return Deployment(
        id="dep", decision_id="d1", app=APP, task=TASK, status=status,  # type: ignore[arg-type]
        stage=1, weight=0.05, baseline_version=1, canary_version=3, started_at=T0,
        stage_started_at=T0, updated_at=T0, verdicts=verdicts, reason="judged",
    )  # fmt: skip


def test_band_geometry_places_band_statistic_threshold_and_zero_on_one_axis() -> None:
    g = band_geometry(QUALITY)
    assert g is not None
    # points -0.02 .. 0 padded by 10 % of the span on each side: -0.022 .. 0.002
    assert (g.low, g.high) == pytest.approx((-0.022, 0.002))
    span = 0.024
    assert g.threshold == pytest.approx(0.002 / span)
    assert g.band_from == pytest.approx(0.007 / span)
    assert g.statistic == pytest.approx(0.012 / span)
    assert g.band_to == pytest.approx(0.017 / span)
    assert g.zero == pytest.approx(0.022 / span)


def test_a_plain_gate_has_no_band_chart_and_an_open_band_runs_to_the_edge() -> None:
    assert band_geometry(GATE) is None
    half_open = MetricCheck(
        metric="latency", baseline=1.0, canary=1.0, statistic=0.5, lower=0.1, upper=None
    )
    g = band_geometry(half_open)
    assert g is not None
    assert g.band_to == 1.0
    assert g.threshold is None
    assert g.band_from == pytest.approx((0.1 + 0.05) / 0.6)


def test_check_sentence_says_both_sides_the_test_and_the_outcome() -> None:
    assert check_sentence(QUALITY) == (
        "quality: canary 0.84 (n=1200) against baseline 0.85 (n=3000), statistic -0.01, "
        "band [-0.015, -0.005], threshold -0.02, p = 0.004; noninferiority_cs passed."
    )
    undecided = MetricCheck(metric="p95", baseline=None, canary=3.2e-7, test="harm_cs")
    assert check_sentence(undecided) == (
        "p95: canary 3.200e-07 (n=0) against baseline — (n=0); harm_cs undecided."
    )


def test_stages_newest_first_with_the_latest_verdict_in_full_and_no_projection_row() -> None:
    deployment = _deployment(
        "running",
        _verdict(0, 1, "inconclusive", QUALITY),
        _verdict(0, 2, "pass", QUALITY, GATE),
        _verdict(1, 3, "inconclusive", QUALITY, ETA),
    )
    view = build_rollout(_decision("canary"), deployment, can_act=True)
    assert [(s.stage, s.latest.id, len(s.verdicts)) for s in view.stages] == [
        (1, "v1-3", 1),
        (0, "v0-2", 2),
    ]
    assert [c.check.metric for c in view.stages[0].checks] == ["quality"]
    assert [c.outcome for c in view.stages[1].checks] == ["pass", "pass"]
    assert (view.eta_hours, view.eta_detail) == (2.5, "a quality verdict expected in 2.5 h")
    assert view.actions == ("rollback",)


def test_expected_verdict_from_the_proposal_or_the_outcome() -> None:
    proposal = _decision(
        expected_time_to_verdict_h=4.0, expected_time_to_verdict_basis="at 25 % weight"
    )
    assert expected_verdict(proposal, None) == (4.0, "at 25 % weight")
    assert expected_verdict(_decision(), None) == (None, "no projection recorded")
    done = _deployment("promoted", _verdict(0, 1, "pass", QUALITY))
    assert expected_verdict(_decision("promoted"), done) == (None, "decided: promoted (judged)")
    waiting = _deployment("running", _verdict(0, 1, "inconclusive", QUALITY))
    assert expected_verdict(_decision("canary"), waiting) == (
        None,
        "the latest verdict is inconclusive: inconclusive at 1",
    )


@pytest.mark.parametrize(
    ("status", "deployment", "can_act", "actions"),
    [
        ("proposed", None, True, ("approve", "reject")),
        ("proposed", None, False, ()),
        ("canary", "running", True, ("rollback",)),
        ("canary", "watching", True, ("rollback",)),
        ("canary", "running", False, ()),
        ("promoted", "promoted", True, ()),
        ("rolled_back", "rolled_back", True, ()),
        ("rejected", None, True, ()),
    ],
)
def test_actions_follow_the_role_and_the_state(
    status: str, deployment: str | None, can_act: bool, actions: tuple[str, ...]
) -> None:
    dep = _deployment(deployment) if deployment else None
    assert allowed_actions(_decision(status), dep, can_act) == actions
