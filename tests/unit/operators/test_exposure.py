"""Exposure planning: weights from the risk budget, time to a verdict from the information rate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from operators.exposure import expected_loss, ladder, planned_weight, time_to_verdict
from operators.sequential import Interval

RUNGS = ladder((0.01, 0.05, 0.1, 0.25, 0.5, 1.0))


def _band(estimate: float, sd: float) -> Interval:
    return Interval(estimate, estimate - 3 * sd, estimate + 3 * sd, information=1 / sd**2)


def test_the_ladder_leaves_out_the_promotion() -> None:
    assert RUNGS == (0.01, 0.05, 0.1, 0.25, 0.5)
    assert ladder((1.0,)) == (0.5,)


def test_expected_loss_matches_a_simulation() -> None:
    import numpy as np

    draws = np.random.default_rng(1).normal(-0.01, 0.03, 400_000)
    assert expected_loss(_band(-0.01, 0.03)) == pytest.approx(
        np.maximum(0, -draws).mean(), rel=0.01
    )


def test_the_weight_follows_the_expected_loss_per_canary_call() -> None:
    budget = 0.005
    assert planned_weight(RUNGS, 0.01, _band(-0.3, 0.05), budget, stage_passed=False) == 0.01
    assert planned_weight(RUNGS, 0.01, _band(0.0, 0.1), budget, stage_passed=False) == 0.1
    assert planned_weight(RUNGS, 0.01, _band(0.0, 0.04), budget, stage_passed=False) == 0.25
    assert planned_weight(RUNGS, 0.01, _band(0.0, 0.02), budget, stage_passed=False) == 0.5
    # never down, and no band yet holds the weight
    assert planned_weight(RUNGS, 0.25, _band(-0.3, 0.05), budget, stage_passed=True) == 0.25
    assert planned_weight(RUNGS, 0.05, Interval.unknown(), budget, stage_passed=True) == 0.05


def test_before_the_harm_tests_have_samples_the_weight_climbs_one_rung_at_most() -> None:
    good = _band(0.0, 0.02)  # quality alone would allow 50 %
    assert planned_weight(RUNGS, 0.01, good, 0.005, stage_passed=False) == 0.5
    assert planned_weight(RUNGS, 0.01, good, 0.005, stage_passed=False, harm_checked=False) == 0.05
    worse = _band(-0.3, 0.05)
    assert planned_weight(RUNGS, 0.01, worse, 0.005, stage_passed=False, harm_checked=False) == 0.01


def test_without_a_quality_signal_a_passing_stage_climbs_one_rung() -> None:
    assert planned_weight(RUNGS, 0.01, None, 0.005, stage_passed=True) == 0.05
    assert planned_weight(RUNGS, 0.01, None, 0.005, stage_passed=False) == 0.01
    assert planned_weight(RUNGS, 0.5, None, 0.005, stage_passed=True) == 0.5


def test_time_to_verdict_shrinks_with_distance_and_is_unbounded_on_the_tolerance() -> None:
    hour = timedelta(hours=1)
    near = time_to_verdict(Interval(-0.015, -0.05, 0.02, 2e4), 0.02, 0.05, hour)
    far = time_to_verdict(Interval(0.01, -0.02, 0.04, 2e4), 0.02, 0.05, hour)
    assert near is not None
    assert far is not None
    assert far < near
    assert time_to_verdict(Interval(-0.02, -0.05, 0.01, 2e4), 0.02, 0.05, hour) == timedelta.max
    assert time_to_verdict(Interval.unknown(), 0.02, 0.05, hour) is None
