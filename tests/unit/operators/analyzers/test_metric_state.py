"""metric_state: a metric's cadence and its own daily profile, apart from its incidents."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import timedelta

from core.insights import WindowGroup
from operators.analyzers.metric_state import DailyProfile, MetricState, record_cadence
from tests.unit.operators.analyzers.test_anomaly import win

HOUR = 12  # 5-minute periods per hour
DAY = 24 * HOUR


def group(i: int, value: float = 100.0) -> WindowGroup:
    w = win(i, value)
    return WindowGroup(
        app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
    )


def test_cadence_of_a_metric_measured_every_period_is_one() -> None:
    ms, share = record_cadence(MetricState(), group(0))
    assert share == 1.0
    assert ms.gaps == ()
    for i in range(1, 4):
        ms, share = record_cadence(ms, group(i))
    assert share == 1.0
    assert ms.gaps == (300.0, 300.0, 300.0)


def test_cadence_of_an_hourly_metric_on_5_minute_periods_is_one_in_twelve() -> None:
    ms = MetricState()
    for i in range(0, 20 * HOUR, HOUR):
        ms, share = record_cadence(ms, group(i))
    assert share == 1 / 12
    assert len(ms.gaps) == 15  # bounded: the last 15 gaps
    # One late measurement does not move the median gap.
    ms, share = record_cadence(ms, group(20 * HOUR + 3 * HOUR))
    assert share == 1 / 12


def daily(i: int) -> float:
    return 200.0 if 6 <= (i % DAY) // HOUR < 18 else 100.0


def test_a_profile_that_predicts_twice_better_turns_the_metric_seasonal() -> None:
    profile = DailyProfile(alpha=0.3, min_days=2, gain=0.5, warmup=12)
    ms = MetricState()
    turned: int | None = None
    for i in range(4 * DAY):
        g = group(i, daily(i))
        ms, _ = record_cadence(ms, g)
        ms, expected = profile.expectation(ms, g, daily(i))
        if ms.seasonal and turned is None:
            turned = i
            assert expected == daily(i)
        if not ms.seasonal:
            ms = replace(ms, history=(*ms.history, daily(i))[-288:])
        ms = profile.learn(ms, g, daily(i))
    # An hour is known from its second period on day 2 (day 1 skips 24 first periods); the
    # comparison then needs one day (288) of measurements: the 288th is period 288 + 24 + 287.
    assert turned == DAY + 24 + DAY - 1
    assert ms.seasonal
    assert ms.history == ()
    assert pickle.loads(pickle.dumps(ms)) == ms


def test_a_flat_series_never_turns_seasonal_and_an_off_profile_is_never_used() -> None:
    on = DailyProfile(alpha=0.3, min_days=2, gain=0.5, warmup=12)
    off = DailyProfile(alpha=0.3, min_days=2, gain=0.0, warmup=12)
    assert on.enabled
    assert not off.enabled
    ms = MetricState()
    for i in range(4 * DAY):
        value = 100.0 + (-1.0, 1.0)[i % 2]
        g = group(i, value)
        ms, expected = on.expectation(ms, g, value)
        assert expected == 0.0
        ms = on.learn(replace(ms, history=(100.0,) * 12), g, value)
    # Compared from day 2 on, each hour's first period there excepted (not yet known).
    assert not ms.seasonal
    assert ms.compared == 3 * DAY - 24


def test_an_hour_the_profile_does_not_know_has_no_expectation_once_seasonal() -> None:
    profile = DailyProfile(alpha=0.3, min_days=2, gain=0.5, warmup=12)
    g = group(0)
    assert profile.expectation(MetricState(seasonal=True), g, 1.0) == (
        MetricState(seasonal=True),
        None,
    )
    assert g.window_end - g.window_start == timedelta(minutes=5)
