from __future__ import annotations

import pickle
import statistics
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.insights import Insight, WindowGroup, insight_id
from core.settings import AnalyzerSettings
from core.stats import LatencyStats, QualityStats, TtftStats, WindowStats
from operators.analyzers.performance import (
    PerformanceAnalyzer,
    PerformanceState,
    TaskBaseline,
)

T0 = datetime(2025, 1, 6, tzinfo=UTC)
STEP = timedelta(minutes=1)
DEFAULTS = AnalyzerSettings()
NO_SLO = replace(DEFAULTS, latency_p95_warning_ms=1e12, latency_p95_critical_ms=2e12)


def win(
    i: int,
    p95: float,
    *,
    count: int = 100,
    ok: int | None = None,
    ttft: float | None = None,
    task: str = "chat",
    model: str = "m1",
    variant: str = "stable",
) -> WindowStats:
    start = T0 + i * STEP
    return WindowStats(
        kind="tumbling",
        window_start=start,
        window_end=start + STEP,
        app="shop",
        task=task,
        model=model,
        variant=variant,
        count=count,
        ok_count=count if ok is None else ok,
        error_count=count - (count if ok is None else ok),
        errors_by_type={},
        latency_ms=LatencyStats(p50=p95 / 2, p90=p95 * 0.9, p95=p95, p99=p95 * 1.2, max=p95 * 2),
        ttft_ms=None if ttft is None else TtftStats(p50=ttft / 2, p95=ttft),
        input_tokens=0,
        output_tokens=0,
        cache_read_tokens=0,
        cost_usd=0.0,
        cost_per_success_usd=None,
        quality=QualityStats(count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None),
        distinct_prompts=count,
        repeat_ratio=0.0,
        rate_per_s=count / 60,
        peak_rate_per_s=count / 60,
        first_event_at=start,
        last_event_at=start + STEP,
    )


def group(i: int, *windows: WindowStats) -> WindowGroup:
    start = T0 + i * STEP
    return WindowGroup(
        app="shop", window_start=start, window_end=start + STEP, windows=list(windows)
    )


def run(
    analyzer: PerformanceAnalyzer,
    groups: Sequence[WindowGroup],
    state: PerformanceState | None = None,
) -> tuple[PerformanceState, list[list[Insight]]]:
    st_ = analyzer.initial_state() if state is None else state
    out: list[list[Insight]] = []
    for g in groups:
        st_, found = analyzer.analyze(st_, g)
        out.append(found)
    return st_, out


def series(values: Sequence[float], start: int = 0, ttft: float | None = None) -> list[WindowGroup]:
    return [group(start + i, win(start + i, v, ttft=ttft)) for i, v in enumerate(values)]


def kinds(found: list[Insight]) -> list[tuple[str, str]]:
    return sorted((i.kind, i.severity) for i in found)


# --- SLO -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p95", "expected"),
    [
        (999.0, []),
        (1000.0, []),
        (1000.5, [("latency_slo", "warning")]),
        (5000.0, [("latency_slo", "warning")]),
        (5000.5, [("latency_slo", "critical")]),
    ],
)
def test_slo_boundaries(p95: float, expected: list[tuple[str, str]]) -> None:
    analyzer = PerformanceAnalyzer(DEFAULTS)
    _, (found,) = run(analyzer, [group(0, win(0, p95))])
    assert kinds(found) == expected
    if expected:
        (ins,) = found
        assert ins.metric == "latency_ms.p95"
        assert ins.value == p95
        assert ins.baseline is None
        assert ins.score == pytest.approx(p95 / 1000.0)
        assert ins.evidence["warning_threshold"] == 1000.0
        assert ins.evidence["critical_threshold"] == 5000.0
        assert ins.evidence["samples"] == 100
        assert ins.id == insight_id(
            "shop", "chat", "performance", "latency_slo", T0, "latency_ms.p95"
        )
        assert "1000" in ins.message or "5000" in ins.message


def test_slo_judges_a_slow_segment_hidden_by_a_fast_majority() -> None:
    analyzer = PerformanceAnalyzer(DEFAULTS)
    fast = win(0, 200.0, count=1000, model="small")
    slow = win(0, 1500.0, count=40, model="big", variant="canary")
    _, (found,) = run(analyzer, [group(0, fast, slow)])
    (ins,) = found
    assert (ins.kind, ins.severity, ins.value) == ("latency_slo", "warning", 1500.0)
    assert ins.evidence["segment"] == "big/canary"
    assert ins.evidence["samples"] == 40
    assert ins.evidence["task_p95"] == pytest.approx((200.0 * 1000 + 1500.0 * 40) / 1040)


def test_slo_ignores_a_small_slow_segment_but_not_its_weight_in_the_task() -> None:
    analyzer = PerformanceAnalyzer(DEFAULTS)
    # 'big' alone has too few calls to be judged; the task aggregate is still below the SLO.
    _, (found,) = run(
        analyzer, [group(0, win(0, 200.0, count=1000), win(0, 9000.0, count=10, model="big"))]
    )
    assert found == []


# --- too few samples -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=DEFAULTS.min_samples - 1),
    ok_share=st.floats(min_value=0, max_value=1),
    p95=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    ttft=st.none() | st.floats(min_value=0, max_value=1e7, allow_nan=False),
    warmed=st.booleans(),
)
def test_no_insight_and_no_learning_from_too_few_calls(
    count: int, ok_share: float, p95: float, ttft: float | None, warmed: bool
) -> None:
    analyzer = PerformanceAnalyzer(DEFAULTS)
    state = analyzer.initial_state()
    if warmed:
        state, _ = run(analyzer, series([100.0] * 10, ttft=50.0))
    i = 20
    w = win(i, p95, count=count, ok=round(count * ok_share), ttft=ttft)
    new_state, found = analyzer.analyze(state, group(i, w))
    # Latency and success rate neither judge nor learn; throughput is the exception: a drop
    # from 100 calls to a few is what it reports (its sample is the baseline's calls).
    assert [f for f in found if f.kind != "throughput_drop"] == []

    def latency_only(st_: PerformanceState) -> bytes:
        tasks = {t: replace(b, calls=()) for t, b in st_.tasks.items()}
        return pickle.dumps({t: b for t, b in tasks.items() if b != TaskBaseline()})

    assert latency_only(new_state) == latency_only(state)
    assert len(found) == (1 if warmed else 0)  # < 30 calls against 100: p < 1e-10


# --- throughput --------------------------------------------------------------------------------


def test_throughput_drop_with_exact_evidence_and_not_learned() -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    state, _ = run(analyzer, series([100.0] * 10))
    state, found = analyzer.analyze(state, group(10, win(10, 100.0, count=30)))
    assert [(f.kind, f.severity, f.metric) for f in found] == [
        ("throughput_drop", "warning", "calls")
    ]
    drop = found[0]
    assert (drop.value, drop.baseline) == (30.0, 100.0)
    assert drop.evidence["ratio"] == 0.3
    assert drop.evidence["threshold"] == 50.0
    assert drop.evidence["p_value"] < 1e-10
    assert drop.score == pytest.approx(0.7 / 0.5)
    assert state.tasks["chat"].calls == (100.0,) * 10  # the drop is not learned


@settings(max_examples=100, deadline=None)
@given(
    base=st.integers(min_value=1, max_value=10_000),
    share=st.floats(min_value=0.0, max_value=2.0),
)
def test_throughput_drop_only_below_its_threshold(base: int, share: float) -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    state, _ = run(analyzer, [group(i, win(i, 100.0, count=base)) for i in range(10)])
    calls = round(base * share)
    _, found = analyzer.analyze(state, group(10, win(10, 100.0, count=calls)))
    drops = [f for f in found if f.kind == "throughput_drop"]
    if base < NO_SLO.min_samples or calls > (1 - NO_SLO.throughput_drop) * base:
        assert drops == []
    for f in drops:
        assert f.value <= f.evidence["threshold"]
        assert f.evidence["p_value"] < NO_SLO.quality_p_value


def test_outage_is_a_throughput_drop() -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    state, _ = run(analyzer, series([100.0] * 10))
    other = win(10, 100.0, task="other")  # the app still sends; "chat" sent nothing
    _, found = analyzer.analyze(state, group(10, other))
    assert [(f.task, f.kind, f.value) for f in found] == [("chat", "throughput_drop", 0.0)]


def test_moderate_or_small_drops_are_not_throughput_drops() -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    state, _ = run(analyzer, series([100.0] * 10))
    _, found = analyzer.analyze(state, group(10, win(10, 100.0, count=60)))  # -40 %
    assert found == []
    small = [group(i, win(i, 100.0, count=20)) for i in range(10)]  # baseline < min_samples
    state, _ = run(analyzer, small)
    _, found = analyzer.analyze(state, group(10, win(10, 100.0, count=1)))
    assert found == []


# --- regression ----------------------------------------------------------------------------------


def test_no_regression_during_warm_up() -> None:
    s = replace(NO_SLO, warmup_windows=5)
    analyzer = PerformanceAnalyzer(s)
    state, outs = run(analyzer, series([500.0] * 4))
    assert outs == [[]] * 4
    _, (found,) = run(analyzer, [group(4, win(4, 5000.0))], state)
    assert found == []  # only 4 learned windows: still warming up
    # Windows with too few calls do not count towards warm-up.
    state, _ = run(analyzer, [group(4, win(4, 500.0, count=s.min_samples - 1))], state)
    _, (found,) = run(analyzer, [group(5, win(5, 5000.0))], state)
    assert found == []
    state, _ = run(analyzer, [group(5, win(5, 500.0))], state)
    assert len(state.tasks["chat"].latency_p95) == 5
    _, (found,) = run(analyzer, [group(6, win(6, 5000.0))], state)
    assert kinds(found) == [("latency_regression", "critical")]


@pytest.mark.parametrize(
    ("step", "severity"),
    [
        (1.19, None),
        (1.2, "warning"),
        (1.25, "warning"),
        (1.49, "warning"),
        (1.5, "critical"),
        (1.6, "critical"),
    ],
)
def test_step_after_stable_baseline(step: float, severity: str | None) -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    stable = [480.0, 500.0, 520.0, 500.0, 490.0, 510.0, 500.0]  # median 500, MAD 10
    state, outs = run(analyzer, series(stable))
    assert all(o == [] for o in outs)
    _, (found,) = run(analyzer, [group(7, win(7, 500.0 * step))], state)
    if severity is None:
        assert found == []
        return
    (ins,) = found
    assert (ins.kind, ins.severity, ins.metric) == (
        "latency_regression",
        severity,
        "latency_ms.p95",
    )
    assert ins.value == pytest.approx(500.0 * step)
    assert ins.baseline == 500.0
    assert ins.score == pytest.approx(step / 1.2)
    assert ins.evidence["mad"] == 10.0
    assert ins.evidence["baseline_windows"] == 7
    assert ins.evidence["samples"] == 100
    assert ins.evidence["z"] == pytest.approx((500.0 * step - 500.0) / (1.4826 * 10.0))
    assert ins.evidence["warning_threshold"] == pytest.approx(600.0)
    assert ins.evidence["critical_threshold"] == pytest.approx(750.0)
    assert ins.id == insight_id(
        "shop", "chat", "performance", "latency_regression", T0 + 7 * STEP, "latency_ms.p95"
    )


def test_task_p95_is_count_weighted_across_segments() -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    groups = [
        group(i, win(i, 400.0, count=100), win(i, 800.0, count=300, model="m2")) for i in range(6)
    ]
    state, _ = run(analyzer, groups)
    assert state.tasks["chat"].latency_p95 == (700.0,) * 6
    # The fast model loses its traffic: the task p95 moves to 800 (+14 %, no regression) …
    _, (found,) = run(analyzer, [group(6, win(6, 800.0, count=400, model="m2"))], state)
    assert found == []
    # … and a slow model taking most of the traffic is one (+29 %).
    _, (found,) = run(
        analyzer, [group(6, win(6, 400.0, count=50), win(6, 950.0, count=350, model="m2"))], state
    )
    (ins,) = found
    assert ins.value == pytest.approx((400.0 * 50 + 950.0 * 350) / 400)
    assert ins.baseline == 700.0


def test_flagged_windows_do_not_move_the_baseline() -> None:
    s = replace(NO_SLO, warmup_windows=3, baseline_windows=3)
    analyzer = PerformanceAnalyzer(s)
    state, _ = run(analyzer, series([500.0] * 3))
    state, outs = run(analyzer, series([800.0, 800.0], start=3), state)
    assert [kinds(o) for o in outs] == [[("latency_regression", "critical")]] * 2
    assert state.tasks["chat"].latency_p95 == (500.0, 500.0, 500.0)
    state, (found,) = run(analyzer, [group(5, win(5, 500.0))], state)
    assert found == []
    _, (found,) = run(analyzer, [group(6, win(6, 625.0))], state)
    (ins,) = found
    assert (ins.kind, ins.severity, ins.baseline) == ("latency_regression", "warning", 500.0)


def test_baseline_is_bounded_by_baseline_windows() -> None:
    analyzer = PerformanceAnalyzer(replace(NO_SLO, baseline_windows=4))
    state, _ = run(analyzer, series([100.0, 200.0, 300.0, 400.0, 500.0, 600.0]))
    assert state.tasks["chat"].latency_p95 == (300.0, 400.0, 500.0, 600.0)


def test_ttft_regression() -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    state, _ = run(analyzer, series([500.0] * 6, ttft=100.0))
    _, (found,) = run(analyzer, [group(6, win(6, 500.0, ttft=130.0))], state)
    (ins,) = found
    assert (ins.kind, ins.severity, ins.metric) == ("ttft_regression", "warning", "ttft_ms.p95")
    assert (ins.value, ins.baseline) == (130.0, 100.0)
    assert state.tasks["chat"].ttft_p95 == (100.0,) * 6


@settings(max_examples=150, deadline=None)
@given(
    history=st.lists(st.floats(min_value=50, max_value=400), min_size=5, max_size=12),
    step=st.sampled_from([0.8, 1.0, 1.1, 1.3, 1.45, 1.7, 3.0]),
    k=st.floats(min_value=0.01, max_value=100),
)
def test_scaling_latencies_scales_the_evidence(history: list[float], step: float, k: float) -> None:
    # Judge only the last window, so the baseline is exactly the median of the history.
    analyzer = PerformanceAnalyzer(replace(NO_SLO, warmup_windows=len(history)))
    final = step * statistics.median(history)

    def outcome(factor: float) -> list[Insight]:
        values = [*history, final]
        groups = [group(i, win(i, v * factor, ttft=v * factor / 2)) for i, v in enumerate(values)]
        _, outs = run(analyzer, groups)
        assert all(o == [] for o in outs[:-1])
        return sorted(outs[-1], key=lambda i: i.kind)

    base, scaled = outcome(1.0), outcome(k)
    assert [(i.kind, i.severity) for i in base] == [(i.kind, i.severity) for i in scaled]
    assert len(base) == (0 if step < 1.2 else 2)
    for a, b in zip(base, scaled, strict=True):
        assert b.value == pytest.approx(k * a.value, rel=1e-9)
        assert b.baseline == pytest.approx(k * a.baseline, rel=1e-9)  # type: ignore[operator]
        assert b.score == pytest.approx(a.score, rel=1e-9)
        for key in ("value", "baseline", "mad", "warning_threshold", "critical_threshold"):
            assert b.evidence[key] == pytest.approx(k * a.evidence[key], rel=1e-9, abs=1e-9)  # type: ignore[operator]
        assert b.evidence["ratio"] == pytest.approx(a.evidence["ratio"], rel=1e-9)
        assert b.evidence["samples"] == a.evidence["samples"]
        assert ("z" in a.evidence) == ("z" in b.evidence)
        if "z" in a.evidence:
            assert b.evidence["z"] == pytest.approx(a.evidence["z"], rel=1e-6)


# --- success rate --------------------------------------------------------------------------------


@pytest.mark.parametrize(("ok", "flagged"), [(96, False), (95, False), (94, True), (40, True)])
def test_success_rate_warning(ok: int, flagged: bool) -> None:
    analyzer = PerformanceAnalyzer(DEFAULTS)
    _, (found,) = run(
        analyzer,
        [group(0, win(0, 300.0, count=60, ok=ok - 40), win(0, 300.0, count=40, model="m2"))],
    )
    if not flagged:
        assert found == []
        return
    (ins,) = found
    assert (ins.kind, ins.severity, ins.metric) == ("success_rate", "warning", "success_rate")
    assert ins.value == pytest.approx(ok / 100)
    assert ins.score == pytest.approx((1 - ok / 100) / 0.05)
    assert ins.evidence["ok_count"] == ok
    assert ins.evidence["samples"] == 100
    assert ins.evidence["warning_threshold"] == 0.95


# --- state ---------------------------------------------------------------------------------------


def test_tasks_are_judged_separately() -> None:
    analyzer = PerformanceAnalyzer(NO_SLO)
    groups = [group(i, win(i, 500.0), win(i, 100.0, task="embed")) for i in range(6)]
    state, _ = run(analyzer, groups)
    _, (found,) = run(analyzer, [group(6, win(6, 500.0), win(6, 200.0, task="embed"))], state)
    (ins,) = found
    assert (ins.task, ins.kind, ins.baseline) == ("embed", "latency_regression", 100.0)
    assert set(state.tasks) == {"chat", "embed"}
    assert isinstance(state.tasks["chat"], TaskBaseline)


def test_state_survives_pickle_with_identical_output() -> None:
    analyzer = PerformanceAnalyzer(DEFAULTS)
    state, _ = run(analyzer, series([400.0, 420.0, 410.0, 430.0, 405.0, 415.0], ttft=90.0))
    restored = pickle.loads(pickle.dumps(state))
    assert restored == state
    later = [
        group(6, win(6, 600.0, ttft=90.0)),
        group(7, win(7, 420.0, ttft=150.0, ok=80)),
        group(8, win(8, 1200.0, ttft=95.0)),
    ]
    a_state, a = run(analyzer, later, state)
    b_state, b = run(PerformanceAnalyzer(DEFAULTS), later, restored)
    assert a == b
    assert a_state == b_state
    assert [kinds(o) for o in a] == [
        [("latency_regression", "warning")],
        [("success_rate", "warning"), ("ttft_regression", "critical")],
        [("latency_regression", "critical"), ("latency_slo", "warning")],
    ]


def test_a_spread_at_float_rounding_level_gives_no_z() -> None:
    # Found by hypothesis: history [50, 50, 51, 51, 50.00000000000001] has a MAD of 1e-14,
    # whose z (~1e15) was rounding noise and did not scale with the latencies.
    history = [50.0, 50.0, 51.0, 51.0, 50.00000000000001]
    analyzer = PerformanceAnalyzer(replace(NO_SLO, warmup_windows=len(history)))
    values = [*history, 1.3 * statistics.median(history)]
    groups = [group(i, win(i, v, ttft=v / 2)) for i, v in enumerate(values)]
    _, outs = run(analyzer, groups)
    assert [i.kind for i in outs[-1]] == ["latency_regression", "ttft_regression"]
    assert all("z" not in i.evidence for i in outs[-1])
