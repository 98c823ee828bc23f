from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.insights import Insight, WindowGroup, insight_id
from core.settings import AnalyzerSettings, updated
from core.stats import LatencyStats, QualityStats, WindowStats
from operators.analyzers.anomaly import AnomalyAnalyzer, AnomalyState
from operators.analyzers.pattern import PatternAnalyzer

T0 = datetime(2025, 1, 6, tzinfo=UTC)
STEP = timedelta(minutes=5)
# River's ADWIN drift insights (kind "drift") are tested in test_drift.py; off here, so these
# tests see the incident detector's output alone.
DEFAULTS = updated(AnalyzerSettings(), drift__delta=0.0)
# A wavy but regular history: median 100, MAD 1; the scale is the 5 % floor: 5 ms.
BASE = [98.0, 100.0, 102.0, 100.0] * 10


def win(i: int, latency: float, *, count: int = 100, errors: int = 0) -> WindowStats:
    start = T0 + i * STEP
    return WindowStats(
        kind="tumbling",
        window_start=start,
        window_end=start + STEP,
        app="shop",
        task="chat",
        model="m1",
        variant="stable",
        count=count,
        ok_count=count - errors,
        error_count=errors,
        errors_by_type={},
        latency_ms=LatencyStats(latency, latency, latency, latency, latency),
        ttft_ms=None,
        input_tokens=0,
        output_tokens=0,
        cache_read_tokens=0,
        cost_usd=0.0,
        cost_per_success_usd=None,
        quality=QualityStats(count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None),
        distinct_prompts=count,
        repeat_ratio=0.0,
        rate_per_s=count / 300,
        peak_rate_per_s=count / 300,
        first_event_at=start,
        last_event_at=start + STEP,
    )


def run(
    analyzer: AnomalyAnalyzer,
    latencies: Sequence[float],
    *,
    count: int = 100,
    state: AnomalyState | None = None,
    offset: int = 0,
) -> tuple[AnomalyState, list[tuple[int, Insight]]]:
    st_ = analyzer.initial_state() if state is None else state
    out: list[tuple[int, Insight]] = []
    for k, v in enumerate(latencies):
        i = offset + k
        w = win(i, v, count=count)
        group = WindowGroup(
            app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
        )
        st_, found = analyzer.analyze(st_, group)
        out += [(i, f) for f in found]
    return st_, out


def test_spike_starts_once_then_ends_with_exact_evidence() -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=3))
    series = [*BASE, 150.0, 135.0, 125.0, 100.0, 98.0, 102.0, 100.0]
    _, found = run(a, series)
    assert [(i, f.kind, f.severity, f.metric) for i, f in found] == [
        (40, "anomaly_start", "critical", "latency_ms.p95"),
        (45, "anomaly_end", "info", "latency_ms.p95"),  # after 3 calm periods,
    ]
    start = found[0][1]
    assert start.value == 150.0
    assert start.baseline == 100.0
    assert start.score == 10.0  # (150 - 100) / 5
    assert start.evidence["z"] == 10.0
    assert start.evidence["scale"] == 5.0
    assert start.evidence["direction"] == "above"
    assert start.id == insight_id(
        "shop", "chat", "anomaly", "anomaly_start", T0 + 40 * STEP, "latency_ms.p95"
    )
    assert start.window_end == T0 + 41 * STEP
    assert found[1][1].evidence["reason"] == "calm"


def test_moderate_spike_is_warning() -> None:
    a = AnomalyAnalyzer(DEFAULTS)
    _, found = run(a, [*BASE, 125.0, 118.0])  # z = 25 / 5 = 5: warning (4..8); 3.6: nothing
    assert [(f.kind, f.severity) for _, f in found] == [("anomaly_start", "warning")]


def test_no_repeated_start_during_one_incident() -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=5))
    series = [*BASE, 140.0, 100.0, 150.0, 99.0, 160.0, 101.0, 170.0, *([100.0] * 6)]
    _, found = run(a, series)
    assert [f.kind for _, f in found] == ["anomaly_start", "anomaly_end"]
    assert found[0][0] == 40


def test_recurring_spike_of_known_height_is_not_a_new_incident() -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=2))
    series = [*BASE, 150.0, 100.0, 100.0, *BASE[:8], 150.0, *BASE[:8], 160.0]
    _, found = run(a, series)
    starts = [i for i, f in found if f.kind == "anomaly_start"]
    assert starts == [40, 40 + 3 + 8 + 1 + 8]  # the repeat at 150 is known; 160 is new


def test_level_shift_is_relearned() -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__relearn_windows=12))
    shifted = [x + 100.0 for x in BASE]  # the new normal: 200 +- 2
    state, found = run(a, [*BASE, *shifted])
    assert [(i, f.kind) for i, f in found] == [(40, "anomaly_start"), (51, "anomaly_end")]
    assert found[1][1].evidence["reason"] == "relearned"
    _, later = run(a, shifted * 3, state=state, offset=80)
    assert later == []


def test_shift_below_an_earlier_spike_starts_by_cusum() -> None:
    # A spike of 300 makes every lower value "known"; a sustained shift to 130 (z = 6 each
    # period) is still an incident: the CUSUM passes h = 20 on its 4th period, and the start
    # waits until the median of the last 12 periods (spike included) is a level never seen:
    # (100 + 130) / 2 on the 5th.
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=3))
    series = [*BASE, 300.0, *([100.0] * 6), *([130.0] * 10)]
    _, found = run(a, series)
    assert [(i, f.kind, f.severity) for i, f in found] == [
        (40, "anomaly_start", "critical"),
        (43, "anomaly_end", "info"),
        (47 + 4, "anomaly_start", "warning"),  # z 6: warning; the CUSUM is the statistic
    ]
    shift = found[2][1]
    assert shift.evidence["statistic"] == "cusum"
    assert shift.evidence["cusum"] == 25.0  # 5 periods of min(z, 6) - 1 = 5
    assert shift.evidence["level"] == 115.0


def test_moderate_shift_starts_once_its_cusum_reaches_h_after_its_level_settled() -> None:
    # 110 +- 2 after 100 +- 2: z 2 a period, so the CUSUM gains 1 a period and reaches h = 20
    # on the 20th. The median of the last 12 periods settled at 110 after 9 periods, so by then
    # it equals its own recent levels; it is compared with the levels before the excursion
    # began (100), and the shift starts an incident at 40 + 19.
    a = AnomalyAnalyzer(DEFAULTS)
    _, found = run(a, [*BASE, *[x + 10.0 for x in BASE]])
    assert [(i, f.kind, f.severity) for i, f in found] == [(40 + 19, "anomaly_start", "warning")]
    ev = found[0][1].evidence
    assert (ev["statistic"], ev["cusum"], ev["level"], ev["z"]) == ("cusum", 20.0, 110.0, 2.0)


def test_recurring_level_of_known_height_is_not_a_new_incident() -> None:
    # A daily job: 12 periods at 130. Once it has been an incident (and was re-learned), the
    # same level again is known and starts nothing; a higher one does.
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=3))
    job = [130.0] * 14
    series = [*BASE, *job, *([100.0] * 30), *job, *([100.0] * 30), *([160.0] * 14)]
    _, found = run(a, series)
    starts = [i for i, f in found if f.kind == "anomaly_start"]
    assert len(starts) == 2
    assert starts[0] < 40 + 14
    assert starts[1] >= 40 + 14 + 30 + 14 + 30


def test_mostly_idle_series_is_scaled_by_its_mean_absolute_deviation() -> None:
    # 35 zeros and 6 tens once the known 10 is learned: median 0, MAD 0; the mean absolute
    # deviation is 60 / 41, so the scale is 1.2533 * 60 / 41 instead of 0 (which made every
    # non-zero value score the cap).
    a = AnomalyAnalyzer(DEFAULTS)
    idle = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0] * 5
    _, found = run(a, [*idle, 10.0, 12.0])  # 10 is known; 12 is a new extreme
    assert [(i, f.kind, f.severity) for i, f in found] == [(41, "anomaly_start", "warning")]
    ev = found[0][1].evidence
    assert ev["scale"] == pytest.approx(1.2533 * 60 / 41)
    assert ev["z"] == pytest.approx(12.0 / (1.2533 * 60 / 41))  # 6.5: a warning
    assert ev["statistic"] == "robust_z"


def test_a_spike_at_the_same_time_of_day_as_on_two_earlier_days_is_routine() -> None:
    # A nightly job: each day at the same period a higher spike (each a new extreme). Days 1
    # and 2 are incidents; on day 3 the start recurs for the 2nd time (anomaly.recurring_days)
    # and is a routine; a spike 6 hours later on day 3 is not.
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=3))
    day = 288  # 5-minute periods
    series = (BASE * 8)[:day]
    values = [*series, *series, *series, *series]
    job = 100  # the period of the job in each day
    for d, height in enumerate((150.0, 160.0, 170.0), start=1):
        values[d * day + job] = height
    values[3 * day + job + 72] = 180.0  # day 3, six hours later
    _, found = run(a, values)
    starts = [i for i, f in found if f.kind == "anomaly_start"]
    assert starts == [day + job, 2 * day + job, 3 * day + job + 72]


def test_a_wider_spread_at_the_same_level_starts_an_incident() -> None:
    # 100 +- 9 after 100 +- 2: every period is within z 1.8 (no spike, no CUSUM, the level stays
    # 100), but the spread of the steps between periods grows. With 24 swinging periods among
    # the last 48, the median of the 47 steps is the 9 from 100 to 91 (23 steps of 2 below it,
    # 23 of 18 above): a spread of 1.4826 * 9 / sqrt 2 = 9.4, 4.5 times the baseline's steps
    # (1.4826 * 2 / sqrt 2) and over the 5 ms scale floor: a spread change (jittery latency).
    a = AnomalyAnalyzer(DEFAULTS)
    _, found = run(a, [*BASE, *([91.0, 109.0] * 40)])
    assert [(i, f.kind, f.severity) for i, f in found] == [(40 + 23, "anomaly_start", "warning")]
    ev = found[0][1].evidence
    assert ev["statistic"] == "spread"
    assert ev["direction"] == "wider"
    assert ev["spread"] == pytest.approx(1.4826 * 9 / math.sqrt(2))
    assert ev["baseline_spread"] == pytest.approx(1.4826 * 2 / math.sqrt(2))
    assert ev["level"] == 100.0
    assert "4.5 times its baseline's" in found[0][1].message


def test_a_level_shift_is_not_a_spread_change() -> None:
    # A step from 100 +- 2 to 200 +- 2 is one large step between periods: the CUSUM starts the
    # incident and re-learns the new level; the spread of the steps never changes, so nothing
    # starts when the 48-period window straddles the step.
    a = AnomalyAnalyzer(DEFAULTS)
    _, found = run(a, [*BASE, *([x + 100.0 for x in BASE] * 3)])
    assert [(i, f.kind) for i, f in found] == [(40, "anomaly_start"), (51, "anomaly_end")]
    assert found[0][1].evidence["statistic"] == "robust_z"


def test_a_spread_that_is_always_wide_or_within_the_floor_starts_nothing() -> None:
    a = AnomalyAnalyzer(DEFAULTS)
    assert run(a, [91.0, 109.0] * 80)[1] == []  # always this wide: the baseline's own spread
    smooth = [100.0, 100.5] * 20  # steps of 0.5
    # 6 times wider (steps of 3) but a spread of 1.4826 * 3 / sqrt 2 = 3.1 < the 5 ms floor
    assert run(a, [*smooth, *([98.5, 101.5] * 40)])[1] == []
    off = AnomalyAnalyzer(updated(DEFAULTS, anomaly__spread_windows=0))
    assert run(off, [*BASE, *([91.0, 109.0] * 40)])[1] == []


def test_a_spread_of_a_known_width_is_not_a_new_incident() -> None:
    # The same widening twice: the first is an incident, the second is no wider than a spread
    # of the novelty span, so it starts nothing; a wider one does.
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=3))
    calm = BASE * 3
    series = [*BASE, *([91.0, 109.0] * 30), *calm, *([91.0, 109.0] * 30), *calm]
    series += [85.0, 115.0] * 30
    _, found = run(a, series)
    starts = [(i, f.evidence["statistic"]) for i, f in found if f.kind == "anomaly_start"]
    assert [s for _, s in starts] == ["spread", "spread"]
    assert starts[0][0] == 40 + 23
    assert starts[1][0] > 40 + 60 + 120 + 60 + 120


def test_periods_between_calm_and_warning_do_not_hold_an_incident_open() -> None:
    # 117 is z 3.4: not calm (not learned) but not an anomaly either: the calm count pauses.
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=3))
    _, found = run(a, [*BASE, 150.0, 100.0, 117.0, 100.0, 117.0, 100.0, 100.0])
    assert [(i, f.kind) for i, f in found] == [(40, "anomaly_start"), (45, "anomaly_end")]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=60),
    spike=st.floats(min_value=1.0, max_value=1e6),
)
def test_no_insight_during_warmup(n: int, spike: float) -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__warmup_windows=60))
    _, found = run(a, [*[*BASE, *BASE][: n - 1], spike * 1000])
    assert found == []


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=29),
    spike=st.floats(min_value=200.0, max_value=1e6),
)
def test_no_insight_with_too_few_calls(count: int, spike: float) -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__min_calls=30))
    _, found = run(a, [*BASE, spike, 0.0, spike], count=count)
    assert found == []


def test_error_rate_needs_min_samples() -> None:
    a = AnomalyAnalyzer(DEFAULTS)  # min_samples 30
    st_ = a.initial_state()
    found: list[Insight] = []
    for i in range(60):
        errors, count = (20, 20) if i == 50 else (0, 20)
        w = win(i, 100.0, count=count, errors=errors)
        st_, f = a.analyze(
            st_,
            WindowGroup(
                app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
            ),
        )
        found += f
    assert [f for f in found if f.metric == "error_rate"] == []
    for i in range(60, 80):
        w = win(i, 100.0, count=100, errors=50 if i == 79 else 0)
        st_, f = a.analyze(
            st_,
            WindowGroup(
                app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
            ),
        )
        found += f
    errors = [(f.metric, f.kind, f.value) for f in found if f.metric == "error_rate"]
    assert errors == [("error_rate", "anomaly_start", 0.5)]


@settings(max_examples=30, deadline=None)
@given(
    noise=st.lists(st.floats(min_value=50.0, max_value=150.0), min_size=40, max_size=40),
    tail=st.lists(st.floats(min_value=0.0, max_value=2000.0), min_size=1, max_size=20),
    power=st.integers(min_value=-8, max_value=8),
)
def test_scaling_scales_evidence(noise: list[float], tail: list[float], power: int) -> None:
    k = 2.0**power  # exact in binary floating point
    a = AnomalyAnalyzer(DEFAULTS)
    _, plain = run(a, noise + tail)
    _, scaled = run(a, [k * v for v in noise + tail])
    assert [(i, f.kind, f.severity, f.metric) for i, f in plain] == [
        (i, f.kind, f.severity, f.metric) for i, f in scaled
    ]
    for (_, p), (_, s) in zip(plain, scaled, strict=True):
        assert s.value == k * p.value
        assert s.baseline == k * (p.baseline or 0.0)
        assert s.score == p.score


def test_pickled_state_gives_identical_output() -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__end_windows=3))
    state, _ = run(a, BASE)
    rest = [130.0, 100.0, 98.0, 102.0, 100.0, 140.0]
    restored = pickle.loads(pickle.dumps(state))
    assert restored == state
    assert run(a, rest, state=state, offset=40) == run(a, rest, state=restored, offset=40)


def test_state_is_bounded() -> None:
    a = AnomalyAnalyzer(updated(DEFAULTS, anomaly__history_windows=50, anomaly__novelty_windows=70))
    state, _ = run(a, BASE * 10)
    ms = state.metrics[("chat", "latency_ms.p95")]
    assert len(ms.history) == 50
    assert len(ms.seen) == 70


def test_seasonal_expectation_suppresses_daily_peak() -> None:
    day = 24 * 12  # 5-minute periods per day

    def level(i: int) -> float:
        return 300.0 if (i % day) in range(100, 112) else 100.0

    def expect(app: str, task: str, metric: str, at: datetime) -> float | None:
        if metric != "latency_ms.p95":
            return None
        return level(int((at - T0) / STEP))

    series = [level(i) + BASE[i % 4] - 100.0 for i in range(2 * day)]
    _, without = run(AnomalyAnalyzer(DEFAULTS), series)
    assert [f.kind for i, f in without if f.kind == "anomaly_start"] != []
    _, found = run(AnomalyAnalyzer(DEFAULTS, seasonal_expectation=expect), series)
    assert found == []
    bumped = [*series]
    bumped[day + 150] = 200.0  # off-peak 200 is an anomaly even though the peak reaches 300
    _, found = run(AnomalyAnalyzer(DEFAULTS, seasonal_expectation=expect), bumped)
    assert [(i, f.kind) for i, f in found if f.kind == "anomaly_start"] == [
        (day + 150, "anomaly_start")
    ]
    assert found[0][1].baseline == 100.0


DAY = 24 * 12  # 5-minute periods per day
PEAK = range(8 * 12, 9 * 12)  # 08:00-09:00 UTC: three times the traffic
JUMP = 3 * DAY + 14 * 12  # day 4, 14:00: the peak's traffic at an off-peak hour


def traffic(i: int) -> int:
    return (300 if i % DAY in PEAK else 100) + (-2, 0, 2, 0)[i % 4]


def run_traffic(
    analyzer: AnomalyAnalyzer, counts: Sequence[int], *, state: AnomalyState | None = None,
    offset: int = 0,
) -> tuple[AnomalyState, list[tuple[int, Insight]]]:  # fmt: skip
    st_ = analyzer.initial_state() if state is None else state
    out: list[tuple[int, Insight]] = []
    for k, c in enumerate(counts):
        w = win(offset + k, 100.0, count=c)
        group = WindowGroup(
            app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
        )
        st_, found = analyzer.analyze(st_, group)
        out += [(offset + k, f) for f in found if f.metric == "calls"]
    return st_, out


def test_learned_daily_peak_is_not_a_traffic_anomaly() -> None:
    counts = [traffic(i) for i in range(4 * DAY)]
    state, found = run_traffic(AnomalyAnalyzer(DEFAULTS), counts)
    # Only the first day is judged raw (the profiles need profile_min_days = 2 days).
    assert [i for i, f in found if f.kind == "anomaly_start"] == [PEAK[0]]
    assert state.metrics[("chat", "calls")].seasonal
    peak = T0 + (4 * DAY + PEAK[1]) * STEP
    expected = PatternAnalyzer(DEFAULTS).expected_rate(state.pattern, "shop", "chat", peak)
    assert expected is not None
    assert abs(expected * 300 - 300) < 3


def test_peak_traffic_at_an_off_peak_hour_is_an_anomaly() -> None:
    counts = [traffic(i) for i in range(4 * DAY)]
    counts[JUMP : JUMP + 12] = [300] * 12
    _, found = run_traffic(AnomalyAnalyzer(DEFAULTS), counts)
    later = [(i, f.kind, f.severity) for i, f in found if i >= DAY]
    assert later[0] == (JUMP, "anomaly_start", "critical")
    assert [k for _, k, _ in later].count("anomaly_start") == 1
    start = next(f for i, f in found if i == JUMP)
    assert abs((start.baseline or 0.0) - 100.0) < 3
    # Judged raw (a hook without expectation), the jump repeats the known peak: not novel.
    _, raw = run_traffic(AnomalyAnalyzer(DEFAULTS, seasonal_expectation=lambda *_: None), counts)
    assert [i for i, f in raw if f.kind == "anomaly_start" and i >= DAY] == []


def test_pickled_seasonal_state_gives_identical_output() -> None:
    a = AnomalyAnalyzer(DEFAULTS)
    counts = [traffic(i) for i in range(4 * DAY)]
    counts[JUMP : JUMP + 12] = [300] * 12
    split = 3 * DAY + 12 * 12
    state, _ = run_traffic(a, counts[:split])
    assert state.pattern.tasks  # the profiles travel with the state
    restored = pickle.loads(pickle.dumps(state))
    assert restored == state
    rest = counts[split:]
    same = run_traffic(a, rest, state=restored, offset=split)
    assert same == run_traffic(a, rest, state=state, offset=split)
    assert [i for i, f in same[1] if f.kind == "anomaly_start"] == [JUMP]
