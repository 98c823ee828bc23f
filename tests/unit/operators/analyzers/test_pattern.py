from __future__ import annotations

import pickle
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.insights import Insight, WindowGroup, insight_id
from core.settings import AnalyzerSettings
from core.stats import LatencyStats, QualityStats, WindowStats
from operators.analyzers.pattern import PatternAnalyzer, PatternState

T0 = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday, 00:00
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
DEFAULTS = AnalyzerSettings()


def win(
    start: datetime,
    count: int,
    *,
    span: timedelta = MINUTE,
    rr: float = 0.0,
    peak: float | None = None,
    out: int | None = None,
    p95: float = 300.0,
    task: str = "chat",
    model: str = "m1",
) -> WindowStats:
    seconds = span.total_seconds()
    return WindowStats(
        kind="tumbling",
        window_start=start,
        window_end=start + span,
        app="shop",
        task=task,
        model=model,
        variant="stable",
        count=count,
        ok_count=count,
        error_count=0,
        errors_by_type={},
        latency_ms=LatencyStats(p50=p95 / 2, p90=p95 * 0.9, p95=p95, p99=p95 * 1.2, max=p95 * 2),
        ttft_ms=None,
        input_tokens=10 * count,
        output_tokens=500 * count if out is None else out,  # large calls: no batching
        cache_read_tokens=0,
        cost_usd=0.0,
        cost_per_success_usd=None,
        quality=QualityStats(count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None),
        distinct_prompts=round(count * (1 - rr)),
        repeat_ratio=rr,
        rate_per_s=count / seconds,
        peak_rate_per_s=count / seconds if peak is None else peak,
        first_event_at=start,
        last_event_at=start + span,
    )


def group(*windows: WindowStats) -> WindowGroup:
    w = windows[0]
    return WindowGroup(
        app="shop", window_start=w.window_start, window_end=w.window_end, windows=list(windows)
    )


def run(
    analyzer: PatternAnalyzer, groups: Sequence[WindowGroup], state: PatternState | None = None
) -> tuple[PatternState, list[list[Insight]]]:
    st_ = analyzer.initial_state() if state is None else state
    out: list[list[Insight]] = []
    for g in groups:
        st_, found = analyzer.analyze(st_, g)
        out.append(found)
    return st_, out


def minutes(counts: Sequence[int], start: int = 0, **kw: Any) -> list[WindowGroup]:
    return [group(win(T0 + (start + i) * MINUTE, c, **kw)) for i, c in enumerate(counts)]


def kinds(outs: Sequence[list[Insight]], kind: str) -> list[int]:
    """The indices of the periods that raised ``kind``."""
    return [i for i, o in enumerate(outs) if any(x.kind == kind for x in o)]


# --- seasonality -----------------------------------------------------------------------------


def day_of_hours(day: int, peak_hour: int) -> list[WindowGroup]:
    """One day of hourly windows: 360 calls an hour, 1440 (4x) at ``peak_hour``."""
    return [
        group(win(T0 + day * DAY + h * HOUR, 1440 if h == peak_hour else 360, span=HOUR))
        for h in range(24)
    ]


def test_learned_daily_peak_is_not_a_burst_but_the_same_jump_elsewhere_is() -> None:
    analyzer = PatternAnalyzer(DEFAULTS)
    learned = day_of_hours(0, 9) + day_of_hours(1, 9)
    state, outs = run(analyzer, learned)
    # Without a profile the peak is a burst (day 0 is past warm-up at 09:00; day 1 has 1 day).
    assert kinds(outs, "burst") == [9, 24 + 9]
    peak_at = T0 + 2 * DAY + 9 * HOUR
    assert analyzer.expected_rate(state, "shop", "chat", peak_at) == pytest.approx(1440 / 3600)
    assert analyzer.expected_rate(state, "shop", "chat", peak_at - 6 * HOUR) == pytest.approx(0.1)

    _, same = run(analyzer, day_of_hours(2, 9), state)
    assert kinds(same, "burst") == []
    _, moved = run(analyzer, day_of_hours(2, 3), state)
    assert kinds(moved, "burst") == [3]
    (ins,) = [i for i in moved[3] if i.kind == "burst"]
    assert ins.value == pytest.approx(0.4)
    assert ins.baseline == pytest.approx(0.1)
    assert ins.evidence["expected_rate"] == pytest.approx(0.1)
    assert ins.evidence["threshold"] == pytest.approx(0.2)
    assert ins.score == pytest.approx(2.0)


def test_expected_rate_needs_two_days_then_is_the_ewma_of_daily_means() -> None:
    analyzer = PatternAnalyzer(replace(DEFAULTS, profile_alpha=0.3))
    at = T0 + 5 * HOUR
    half = timedelta(minutes=30)
    state, _ = run(
        analyzer, [group(win(at, 180, span=half)), group(win(at + half, 540, span=half))]
    )
    assert analyzer.expected_rate(state, "shop", "chat", at) is None  # one day only
    assert analyzer.expected_rate(analyzer.initial_state(), "shop", "chat", at) is None
    state, _ = run(analyzer, [group(win(at + DAY, 720, span=half))], state)
    # Day means 0.2 and 0.4 calls/s: 0.7 * 0.2 + 0.3 * 0.4.
    assert analyzer.expected_rate(state, "shop", "chat", at + 2 * DAY) == pytest.approx(0.26)
    assert analyzer.expected_rate(state, "shop", "chat", at + HOUR) is None
    assert analyzer.expected_rate(state, "shop", "other", at) is None


def test_weekday_profile_scales_the_expectation_once_every_weekday_is_known() -> None:
    analyzer = PatternAnalyzer(DEFAULTS)
    noon = [T0 + d * DAY + 12 * HOUR for d in range(14)]
    rates = [60 if t.weekday() >= 5 else 120 for t in noon]  # weekends at half the traffic
    state, _ = run(analyzer, [group(win(t, c)) for t, c in zip(noon[:13], rates[:13], strict=True)])
    hour = state.tasks[("shop", "chat")].hours[12].value
    sunday = noon[13]
    assert analyzer.expected_rate(state, "shop", "chat", sunday) == pytest.approx(hour)
    state, _ = run(analyzer, [group(win(noon[13], rates[13]))], state)
    hour = state.tasks[("shop", "chat")].hours[12].value
    monday, saturday = noon[0] + 14 * DAY, noon[5] + 14 * DAY
    assert analyzer.expected_rate(state, "shop", "chat", monday) == pytest.approx(hour * 7 / 6)
    assert analyzer.expected_rate(state, "shop", "chat", saturday) == pytest.approx(hour * 3.5 / 6)


# --- bursts ----------------------------------------------------------------------------------


def test_burst_after_warm_up_and_flagged_windows_are_not_learned() -> None:
    analyzer = PatternAnalyzer(replace(DEFAULTS, warmup_windows=5))
    state, outs = run(analyzer, minutes([100, 100, 120, 80]))
    _, (found,) = run(analyzer, minutes([1000], start=4), state)
    assert outs == [[]] * 4
    assert found == []  # 4 learned windows: still warming up
    state, _ = run(analyzer, minutes([100], start=4), state)
    _, (edge,) = run(analyzer, minutes([200], start=5), state)
    assert edge == []  # exactly 2x is not above 2x
    state, (found,) = run(analyzer, minutes([201], start=5), state)
    (ins,) = found
    assert (ins.kind, ins.severity, ins.metric) == ("burst", "warning", "rate_per_s")
    assert ins.value == pytest.approx(201 / 60)
    assert ins.baseline == pytest.approx(100 / 60)
    assert ins.score == pytest.approx(201 / 200)
    assert ins.evidence["moving_average_windows"] == 5
    assert ins.evidence["expected_rate"] == "n/a"
    assert ins.evidence["samples"] == 201
    assert ins.id == insight_id("shop", "chat", "pattern", "burst", T0 + 5 * MINUTE, "rate_per_s")
    assert "201" in ins.message
    assert state.tasks[("shop", "chat")].rates == pytest.approx(
        [100 / 60, 100 / 60, 2, 80 / 60, 100 / 60]
    )


def test_a_lasting_burst_becomes_the_new_level() -> None:
    analyzer = PatternAnalyzer(
        replace(DEFAULTS, warmup_windows=3, baseline_windows=3, burst_max_windows=2)
    )
    _, outs = run(analyzer, minutes([100, 100, 100] + [500] * 8))
    # Two flagged windows are not learned; from the third on the level is learned.
    assert kinds(outs, "burst") == [3, 4, 5, 6]


# --- too few samples -------------------------------------------------------------------------

_LIMIT = DEFAULTS.min_samples
_WARM = run(
    PatternAnalyzer(replace(DEFAULTS, baseline_windows=10, renotify_windows=0)),
    [group(win(T0 + i * HOUR, 100 + 50 * i, span=HOUR)) for i in range(60)],
)[0]


def _tiny(counts: Sequence[int], rr: float, peak: float) -> WindowGroup:
    at, second = T0 + 60 * HOUR, timedelta(seconds=1)
    return group(
        *(
            win(at, c, span=second, rr=rr, peak=peak, out=c, model=f"m{i}")
            for i, c in enumerate(counts)
        )
    )


def test_the_warm_state_judges_a_window_with_enough_calls() -> None:
    analyzer = PatternAnalyzer(replace(DEFAULTS, baseline_windows=10, renotify_windows=0))
    _, found = analyzer.analyze(_WARM, _tiny([_LIMIT - 1, 1], 0.5, 50.0))
    assert {i.kind for i in found} == {"burst", "cache_potential", "batching_potential"}


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, _LIMIT - 1), min_size=1, max_size=3).filter(
        lambda c: sum(c) < _LIMIT
    ),
    rr=st.floats(min_value=0, max_value=1),
    peak=st.floats(min_value=0, max_value=1e6),
    warmed=st.booleans(),
)
def test_no_insight_from_too_few_calls(
    counts: list[int], rr: float, peak: float, warmed: bool
) -> None:
    # Tiny windows (huge rates, small calls) after hours of rising traffic: nothing may fire.
    analyzer = PatternAnalyzer(replace(DEFAULTS, baseline_windows=10, renotify_windows=0))
    state = _WARM if warmed else analyzer.initial_state()
    _, found = analyzer.analyze(state, _tiny(counts, rr, peak))
    assert found == []


# --- trend -----------------------------------------------------------------------------------


def test_trend_on_a_rising_series_once_per_direction() -> None:
    analyzer = PatternAnalyzer(DEFAULTS)
    rng = random.Random(7)
    rising = [round(100 + 10 * i + rng.gauss(0, 5)) for i in range(45)]
    falling = [round(540 - 12 * i + rng.gauss(0, 5)) for i in range(35)]
    _, outs = run(analyzer, minutes(rising + falling))
    assert kinds(outs, "burst") == []
    first, second = kinds(outs, "traffic_trend")
    assert first == 29  # as soon as baseline_windows windows are known
    assert 45 < second < 45 + 30  # the fall turns the fit over the last 30 windows
    up, down = (next(i for i in outs[k] if i.kind == "traffic_trend") for k in (first, second))
    assert (up.metric, up.severity) == ("count", "info")
    assert up.value == pytest.approx(10, rel=0.1)
    assert float(up.evidence["p_value"]) < 0.01
    assert float(up.evidence["change"]) > 0.2
    assert up.evidence["windows"] == 30
    assert "rising" in up.message
    assert down.value < 0
    assert "falling" in down.message


def test_no_trend_on_flat_noise() -> None:
    analyzer = PatternAnalyzer(DEFAULTS)
    rng = random.Random(11)
    _, outs = run(analyzer, minutes([round(rng.gauss(200, 20)) for _ in range(300)]))
    assert kinds(outs, "traffic_trend") == []


# --- cache and batching potential ------------------------------------------------------------


def test_cache_potential_once_then_only_on_material_change() -> None:
    analyzer = PatternAnalyzer(replace(DEFAULTS, renotify_windows=5))
    seg = [
        group(win(T0 + i * MINUTE, 100, rr=0.5), win(T0 + i * MINUTE, 300, rr=0.1, model="m2"))
        for i in range(8)
    ]
    state, outs = run(analyzer, seg)
    assert kinds(outs, "cache_potential") == [0]
    (ins,) = outs[0]
    assert (ins.kind, ins.severity, ins.metric) == ("cache_potential", "info", "repeat_ratio")
    assert ins.value == pytest.approx(0.2)
    assert ins.evidence["estimated_hit_rate"] == pytest.approx(0.2)
    assert ins.evidence["distinct_prompts"] == 50 + 270
    assert ins.evidence["samples"] == 400
    assert ins.evidence["threshold"] == 0.2
    assert "20 %" in ins.message
    _, (below,) = run(PatternAnalyzer(DEFAULTS), minutes([400], rr=0.19))
    assert below == []
    # A material change only counts once renotify_windows have passed since the report.
    _, outs = run(analyzer, minutes([400, 400, 400], start=8, rr=0.35), state)
    assert kinds(outs, "cache_potential") == [0]
    assert outs[0][0].evidence["previous_ratio"] == pytest.approx(0.2)
    _, early = run(analyzer, minutes([400], start=3, rr=0.35), run(analyzer, seg[:3])[0])
    assert early == [[]]


def test_batching_potential_for_many_small_calls_within_the_latency_budget() -> None:
    analyzer = PatternAnalyzer(replace(DEFAULTS, renotify_windows=3))
    ok: dict[str, Any] = {"peak": 20.0, "out": 100 * 50, "p95": 400.0}
    _, outs = run(analyzer, minutes([100] * 4, **ok))
    assert kinds(outs, "batching_potential") == [0]
    (ins,) = outs[0]
    assert (ins.metric, ins.value, ins.baseline) == ("peak_rate_per_s", 20.0, 10.0)
    assert ins.evidence["mean_output_tokens"] == 50.0
    assert ins.evidence["latency_budget_ms"] == 600.0
    assert ins.evidence["estimated_batch_size"] == pytest.approx(1.0)
    for bad in (dict(ok, peak=9.0), dict(ok, out=100 * 101), dict(ok, p95=951.0)):
        _, outs = run(analyzer, minutes([100], **bad))
        assert outs == [[]]
    state, _ = run(analyzer, minutes([100] * 4, **ok))
    _, outs = run(analyzer, minutes([100, 100], start=4, **dict(ok, peak=29.0)), state)
    assert outs == [[], []]  # +45 %: not material
    _, outs = run(analyzer, minutes([100], start=4, **dict(ok, peak=30.0)), state)
    assert kinds(outs, "batching_potential") == [0]


# --- state -----------------------------------------------------------------------------------


def test_state_survives_pickle_with_identical_output() -> None:
    analyzer = PatternAnalyzer(replace(DEFAULTS, renotify_windows=2))
    first = day_of_hours(0, 9) + day_of_hours(1, 9)
    state, _ = run(analyzer, first)
    restored = pickle.loads(pickle.dumps(state))
    assert restored == state
    later = day_of_hours(2, 3) + [
        group(win(T0 + 3 * DAY + i * HOUR, 360 + 200 * i, span=HOUR, rr=0.3, peak=15.0, out=10))
        for i in range(40)
    ]
    a_state, a = run(analyzer, later, state)
    b_state, b = run(PatternAnalyzer(replace(DEFAULTS, renotify_windows=2)), later, restored)
    assert a == b
    assert a_state == b_state
    assert {i.kind for o in a for i in o} == {
        "burst",
        "traffic_trend",
        "cache_potential",
        "batching_potential",
    }


def test_tasks_and_apps_are_kept_apart() -> None:
    analyzer = PatternAnalyzer(DEFAULTS)
    state, _ = run(analyzer, [group(win(T0, 100), win(T0, 50, task="embed"))])
    assert set(state.tasks) == {("shop", "chat"), ("shop", "embed")}
    assert state.tasks[("shop", "embed")].rates == pytest.approx((50 / 60,))


def test_the_trend_fit_matches_scipy_linregress() -> None:
    import random

    from scipy import stats

    from operators.analyzers.pattern import _linregress

    rng = random.Random(1)
    for trial in range(50):
        xs = list(range(rng.randint(3, 60)))
        ys = [rng.gauss(0.4 * x * (trial % 3), 5.0) for x in xs]
        ours, theirs = _linregress(xs, ys), stats.linregress(xs, ys)
        assert ours.slope == pytest.approx(theirs.slope, abs=1e-9)
        assert ours.intercept == pytest.approx(theirs.intercept, abs=1e-9)
        assert ours.rvalue == pytest.approx(theirs.rvalue, abs=1e-9)
        assert ours.pvalue == pytest.approx(theirs.pvalue, abs=1e-9)
