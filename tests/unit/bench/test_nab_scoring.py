"""NAB scoring on hand-made windows and detections; expected values computed from the rules."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.nab_scoring import (
    FileScore,
    Profile,
    load_profiles,
    load_series,
    load_windows,
    probation_length,
    scaled_sigmoid,
    score_file,
    total_normalised,
)

STANDARD = Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
LOW_FN = Profile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0)

T0 = datetime(2014, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=5)
# 1000 points: probation is the first 150 (up to T0 + 149 steps).
TIMES = [T0 + i * STEP for i in range(1000)]
# Two windows of 100 steps, both after the probationary period.
W1 = (TIMES[300], TIMES[400])
W2 = (TIMES[700], TIMES[800])
WINDOWS = [W1, W2]
LEFT_EDGE = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # 2*sigmoid(5) - 1, not 1


def _sigmoid_reward(x: float) -> float:
    return 2.0 / (1.0 + math.exp(-5.0 * -x)) - 1.0


def test_scaled_sigmoid_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(LEFT_EDGE)
    assert math.isclose(LEFT_EDGE, 0.9866142981514305)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0
    assert scaled_sigmoid(1.0) == pytest.approx(-LEFT_EDGE)
    assert scaled_sigmoid(3.0) == pytest.approx(2.0 / (1.0 + math.exp(15.0)) - 1.0)


def test_nothing_detected_scores_zero() -> None:
    s = score_file(TIMES, WINDOWS, [], STANDARD)
    assert s.raw == -2.0
    assert s.null == -2.0
    assert s.perfect == pytest.approx(2 * LEFT_EDGE)
    assert s.normalised == 0.0
    assert (s.true_positives, s.false_positives, s.false_negatives) == (0, 0, 2)


def test_detection_at_each_left_edge_scores_hundred() -> None:
    s = score_file(TIMES, WINDOWS, [W1[0], W2[0]], STANDARD)
    assert s.raw == pytest.approx(2 * LEFT_EDGE)
    assert s.normalised == pytest.approx(100.0)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (2, 0, 0)


def test_one_false_positive_before_any_window_costs_the_full_fp_weight() -> None:
    s = score_file(TIMES, WINDOWS, [TIMES[200]], STANDARD)
    assert s.raw == pytest.approx(-2.0 - 0.11)
    expected = 100.0 * (-0.11) / (2 * LEFT_EDGE + 2.0)
    assert s.normalised == pytest.approx(expected)
    assert s.normalised is not None
    assert s.normalised < 0
    assert s.false_positives == 1


def test_false_positive_after_a_window_is_weighted_by_its_distance() -> None:
    # Half a window width past W1's right edge: y = 0.5.
    near = score_file(TIMES, WINDOWS, [TIMES[450]], STANDARD)
    cost = 0.11 * (2.0 / (1.0 + math.exp(2.5)) - 1.0)
    assert near.raw == pytest.approx(-2.0 + cost)
    # Farther: 1.99 widths past W2, still on the sigmoid.
    far = score_file(TIMES, WINDOWS, [TIMES[999]], STANDARD)
    assert far.raw == pytest.approx(-2.0 + 0.11 * scaled_sigmoid(199 / 100))
    # More than 3 widths past a window (y = 19): the full cost.
    w_short = [(TIMES[300], TIMES[310])]
    very_far = score_file(TIMES, w_short, [TIMES[500]], STANDARD)
    assert very_far.raw == pytest.approx(-1.0 - 0.11)


def test_detection_in_probation_period_is_ignored() -> None:
    assert probation_length(len(TIMES)) == 150
    s = score_file(TIMES, WINDOWS, [TIMES[10], TIMES[149]], STANDARD)
    assert s.raw == -2.0
    assert s.false_positives == 0
    assert s.normalised == 0.0
    # The first scored point is not ignored.
    assert score_file(TIMES, WINDOWS, [TIMES[150]], STANDARD).false_positives == 1


def test_only_first_detection_in_a_window_counts() -> None:
    middle = TIMES[350]  # x = -0.5
    s = score_file(TIMES, WINDOWS, [W1[1], TIMES[360], middle], STANDARD)
    assert s.raw == pytest.approx(_sigmoid_reward(-0.5) - 1.0)
    assert s.raw == pytest.approx(2.0 / (1.0 + math.exp(-2.5)) - 1.0 - 1.0)
    assert (s.true_positives, s.false_positives, s.false_negatives) == (1, 0, 1)
    # Duplicated detection times count once.
    assert score_file(TIMES, WINDOWS, [middle, middle], STANDARD).raw == pytest.approx(s.raw)


def test_reward_low_fn_profile_penalises_a_miss_twice_as_much() -> None:
    std = score_file(TIMES, WINDOWS, [W1[0]], STANDARD)
    low_fn = score_file(TIMES, WINDOWS, [W1[0]], LOW_FN)
    assert std.raw == pytest.approx(LEFT_EDGE - 1.0)
    assert low_fn.raw == pytest.approx(LEFT_EDGE - 2.0)
    assert (LEFT_EDGE - low_fn.raw) == pytest.approx(2 * (LEFT_EDGE - std.raw))
    assert low_fn.null == -4.0
    assert low_fn.normalised == pytest.approx(100 * (LEFT_EDGE + 2.0) / (2 * LEFT_EDGE + 4.0))


def test_detection_at_right_edge_scores_about_zero_for_its_window() -> None:
    s = score_file(TIMES, [W1], [W1[1]], STANDARD)
    assert s.true_positives == 1
    assert s.raw == pytest.approx(0.0, abs=1e-12)
    assert s.normalised == pytest.approx(100.0 / (LEFT_EDGE + 1.0))


def test_totals_are_normalised_over_summed_scores() -> None:
    a = score_file(TIMES, WINDOWS, [W1[0], W2[0]], STANDARD)  # 100
    b = score_file(TIMES, [W1], [], STANDARD)  # 0
    c = score_file(TIMES, [], [TIMES[500]], STANDARD)  # no window: only an FP cost
    assert c.normalised is None
    assert c.raw == pytest.approx(-0.11)
    expected = 100.0 * (a.raw + b.raw + c.raw + 3.0) / (3 * LEFT_EDGE + 3.0)
    assert total_normalised([a, b, c]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no labelled window"):
        total_normalised([FileScore(0.0, 0.0, 0.0, 0, 0, 0)])


def test_loaders(tmp_path: Path) -> None:
    (tmp_path / "combined_windows.json").write_text(
        json.dumps(
            {
                "realAWSCloudwatch/x.csv": [
                    ["2014-02-27 08:55:00.000000", "2014-02-28 01:35:00.000000"],
                    ["2014-02-26 13:45:00.000000", "2014-02-27 06:25:00.000000"],
                ],
                "realAWSCloudwatch/y.csv": [],
            }
        )
    )
    windows = load_windows(tmp_path)
    assert windows["realAWSCloudwatch/y.csv"] == []
    first = windows["realAWSCloudwatch/x.csv"][0]
    assert first == (
        datetime(2014, 2, 26, 13, 45, tzinfo=UTC),
        datetime(2014, 2, 27, 6, 25, tzinfo=UTC),
    )
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("timestamp,value\n2014-01-16 00:00:00,33.5\n2014-01-16 00:05:00,-1\n")
    series = load_series(csv_path)
    assert series.timestamps == [
        datetime(2014, 1, 16, 0, 0, tzinfo=UTC),
        datetime(2014, 1, 16, 0, 5, tzinfo=UTC),
    ]
    assert series.values.tolist() == [33.5, -1.0]
    profiles_path = tmp_path / "profiles.json"
    profiles_path.write_text(
        json.dumps(
            {
                "standard": {
                    "CostMatrix": {
                        "tpWeight": 1.0,
                        "fnWeight": 1.0,
                        "fpWeight": 0.11,
                        "tnWeight": 1.0,
                    }
                }
            }
        )
    )
    assert load_profiles(profiles_path)["standard"] == STANDARD
