"""The quality analyzer (`operators/analyzers/quality.py`): error rate and mix, error-rate
increase, quality degradation by Welch's t-test, no-quality-signal notice, baselines, state."""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from core.insights import Insight, WindowGroup, insight_id
from core.settings import AnalyzerSettings
from core.stats import LatencyStats, QualityStats, WindowStats
from operators.analyzers.base import Analyzer
from operators.analyzers.quality import ALL_MODELS, QualityAnalyzer, QualityState

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
APP, TASK = "shop", "chat"
SETTINGS = AnalyzerSettings()


def window(
    i: int,
    *,
    count: int = 1000,
    errors: int = 0,
    by_type: dict[str, int] | None = None,
    quality: tuple[int, float, float] | None = (200, 0.9, 0.1),
    model: str = "gpt-4o",
    variant: str = "control",
    task: str = TASK,
    revision: int = 0,
) -> WindowStats:
    """A one-minute window; ``quality`` is (count, mean, stddev) or None for no scores."""
    start = T0 + timedelta(minutes=i)
    if quality is None:
        q = QualityStats(count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None)
    else:
        n, mean, sd = quality
        q = QualityStats(count=n, mean=mean, stddev=sd, ci95_low=None, ci95_high=None)
    return WindowStats(
        kind="tumbling",
        window_start=start,
        window_end=start + timedelta(minutes=1),
        app=APP,
        task=task,
        model=model,
        variant=variant,
        count=count,
        ok_count=count - errors,
        error_count=errors,
        errors_by_type=by_type if by_type is not None else ({"timeout": errors} if errors else {}),
        latency_ms=LatencyStats(p50=100, p90=200, p95=250, p99=400, max=500),
        ttft_ms=None,
        input_tokens=100 * count,
        output_tokens=50 * count,
        cache_read_tokens=0,
        cost_usd=0.001 * count,
        cost_per_success_usd=0.001 if count > errors else None,
        quality=q,
        distinct_prompts=count,
        repeat_ratio=0.0,
        rate_per_s=count / 60,
        peak_rate_per_s=count / 30,
        first_event_at=start,
        last_event_at=start + timedelta(seconds=59),
        revision=revision,
    )


def group(i: int, windows: Sequence[WindowStats]) -> WindowGroup:
    start = T0 + timedelta(minutes=i)
    return WindowGroup(
        app=APP, window_start=start, window_end=start + timedelta(minutes=1), windows=list(windows)
    )


def run(
    analyzer: QualityAnalyzer, state: QualityState, periods: Sequence[Sequence[WindowStats]]
) -> tuple[QualityState, list[list[Insight]]]:
    """Feed periods in order; period k is window index ``windows[0].window_start``."""
    out: list[list[Insight]] = []
    for ws in periods:
        i = int((ws[0].window_start - T0) / timedelta(minutes=1))
        state, found = analyzer.analyze(state, group(i, ws))
        out.append(found)
    return state, out


def warmed(
    analyzer: QualityAnalyzer, n: int = SETTINGS.warmup_windows, errors: int = 0
) -> QualityState:
    periods = [[window(i, errors=errors)] for i in range(n)]
    state, found = run(analyzer, analyzer.initial_state(), periods)
    assert found == [[] for _ in range(n)]
    return state


def kinds(found: Sequence[Insight]) -> list[tuple[str, str, str]]:
    return sorted((i.kind, i.severity, i.metric) for i in found)


def test_it_is_an_analyzer() -> None:
    analyzer: Analyzer[QualityState] = QualityAnalyzer(SETTINGS)
    assert analyzer.name == "quality"
    assert analyzer.initial_state() == QualityState()


@pytest.mark.parametrize(
    ("errors", "expected"),
    [(0, None), (9, None), (10, "warning"), (49, "warning"), (50, "critical"), (400, "critical")],
)
def test_error_rate_boundaries(errors: int, expected: str | None) -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    _, found = analyzer.analyze(analyzer.initial_state(), group(0, [window(0, errors=errors)]))
    rate = [i for i in found if i.kind == "error_rate"]
    if expected is None:
        assert rate == []
        return
    (ins,) = rate
    assert ins.severity == expected
    assert ins.value == errors / 1000
    limit = SETTINGS.error_rate_critical if expected == "critical" else SETTINGS.error_rate_warning
    assert ins.baseline == limit
    assert ins.score == pytest.approx(errors / 1000 / SETTINGS.error_rate_warning)
    assert ins.id == insight_id(APP, TASK, "quality", "error_rate", T0, "error_rate")
    assert (ins.window_start, ins.window_end) == (T0, T0 + timedelta(minutes=1))
    ci = stats.binomtest(errors, 1000).proportion_ci(0.95, method="wilson")
    assert ins.evidence["wilson95_low"] == pytest.approx(ci.low, rel=1e-9)
    assert ins.evidence["wilson95_high"] == pytest.approx(ci.high, rel=1e-9)
    assert ins.evidence["count"] == 1000
    assert ins.evidence["error_count"] == errors
    assert ins.evidence["feedback_coverage"] == pytest.approx(0.2)
    assert f"{errors / 1000:.2%}" in ins.message


def test_error_mix_is_in_the_evidence() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    mix = {"rate_limit": 3, "timeout": 12, "server_error": 5}
    _, found = analyzer.analyze(
        analyzer.initial_state(), group(0, [window(0, errors=20, by_type=mix)])
    )
    (ins,) = found
    ev = ins.evidence
    assert (ev["error_type_1"], ev["error_share_1"]) == ("timeout", 0.6)
    assert (ev["error_type_2"], ev["error_share_2"]) == ("server_error", 0.25)
    assert (ev["error_type_3"], ev["error_share_3"]) == ("rate_limit", 0.15)
    assert "timeout (60% of errors)" in ins.message


def test_no_insight_below_min_samples_calls_without_baseline() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    small = window(0, count=SETTINGS.min_samples - 1, errors=SETTINGS.min_samples - 1)
    _, found = analyzer.analyze(analyzer.initial_state(), group(0, [small]))
    assert found == []


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(1, SETTINGS.min_samples - 1),  # calls
            st.floats(0, 1),  # error share
            st.floats(0, 1),  # quality coverage
            st.floats(0, 1),  # quality mean
            st.floats(0, 0.5),  # quality stddev
            st.sampled_from(["gpt-4o", "claude", "llama"]),
        ),
        min_size=1,
        max_size=3,
    ).filter(lambda rows: sum(r[0] for r in rows) < SETTINGS.min_samples)
)
def test_no_insight_from_fewer_than_min_samples_calls(
    data: list[tuple[int, float, float, float, float, str]],
) -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer, SETTINGS.warmup_windows + 2)
    windows = []
    for k, (count, err, cov, mean, sd, model) in enumerate(data):
        errors = round(count * err)
        q = round(count * cov)
        windows.append(
            window(
                10,
                count=count,
                errors=errors,
                quality=(q, mean, sd) if q else None,
                model=model,
                variant=f"v{k}",
            )
        )
    _, found = analyzer.analyze(state, group(10, windows))
    assert found == []


def _pooled_sd(parts: Sequence[tuple[int, float, float]]) -> tuple[int, float, float]:
    n = sum(p[0] for p in parts)
    mean = sum(p[0] * p[1] for p in parts) / n
    ss = sum((p[0] - 1) * p[2] ** 2 + p[0] * (p[1] - mean) ** 2 for p in parts)
    return n, mean, math.sqrt(ss / (n - 1))


def test_significant_quality_drop_fires_with_welch_p_value() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer)  # 5 windows, 200 scores each, mean 0.9, sd 0.1
    _, found = analyzer.analyze(state, group(5, [window(5, quality=(200, 0.8, 0.1))]))
    (ins,) = found
    assert (ins.kind, ins.severity, ins.metric) == (
        "quality_degradation",
        "critical",  # 0.1 lower: significantly beyond the 0.02 tolerance too
        "quality_mean",
    )
    n0, m0, s0 = _pooled_sd([(200, 0.9, 0.1)] * 5)
    expected = stats.ttest_ind_from_stats(
        0.8, 0.1, 200, m0, s0, n0, equal_var=False, alternative="less"
    )
    beyond = stats.ttest_ind_from_stats(
        0.8 + 0.02, 0.1, 200, m0, s0, n0, equal_var=False, alternative="less"
    )
    assert ins.evidence["p_value_tolerance"] == pytest.approx(beyond.pvalue, rel=1e-6)
    assert ins.evidence["quality_tolerance"] == 0.02
    assert ins.evidence["threshold"] == pytest.approx(0.88)
    assert ins.evidence["drop"] == pytest.approx(0.1)
    assert ins.evidence["p_value"] == pytest.approx(expected.pvalue, rel=1e-6)
    assert ins.evidence["t"] == pytest.approx(expected.statistic, rel=1e-9)
    assert ins.evidence["baseline_quality_count"] == 1000
    assert ins.evidence["baseline_quality_stddev"] == pytest.approx(s0, rel=1e-12)
    assert ins.value == pytest.approx(0.8)
    assert ins.baseline == pytest.approx(0.9)
    assert ins.score == pytest.approx(-math.log10(expected.pvalue), rel=1e-6)
    half = stats.t.ppf(0.975, 199) * 0.1 / math.sqrt(200)
    assert ins.evidence["quality_ci95_low"] == pytest.approx(0.8 - half)
    assert ins.evidence["quality_ci95_high"] == pytest.approx(0.8 + half)


def test_significant_drop_within_the_tolerance_is_only_a_warning() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer)
    current = window(5, count=2000, quality=(2000, 0.885, 0.05))  # 0.015 lower, n large
    _, found = analyzer.analyze(state, group(5, [current]))
    assert [(i.kind, i.severity) for i in found] == [("quality_degradation", "warning")]
    n0, m0, s0 = _pooled_sd([(200, 0.9, 0.1)] * 5)
    beyond = stats.ttest_ind_from_stats(
        0.885 + 0.02, 0.05, 2000, m0, s0, n0, equal_var=False, alternative="less"
    )
    assert beyond.pvalue > SETTINGS.quality_p_value  # why it is not critical
    assert found[0].evidence["p_value_tolerance"] == pytest.approx(beyond.pvalue, rel=1e-6)
    assert found[0].evidence["p_value"] < SETTINGS.quality_p_value


def test_tiny_quality_drop_with_small_n_does_not_fire() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer)
    _, found = analyzer.analyze(state, group(5, [window(5, quality=(30, 0.88, 0.1))]))
    assert found == []
    n0, m0, s0 = _pooled_sd([(200, 0.9, 0.1)] * 5)
    p = stats.ttest_ind_from_stats(0.88, 0.1, 30, m0, s0, n0, equal_var=False, alternative="less")
    assert p.pvalue > SETTINGS.quality_p_value  # the reason it stays quiet


def test_quality_rise_does_not_fire_and_needs_warm_baseline() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer)
    _, found = analyzer.analyze(state, group(5, [window(5, quality=(200, 0.99, 0.01))]))
    assert found == []
    cold = warmed(analyzer, SETTINGS.warmup_windows - 1)
    _, found = analyzer.analyze(cold, group(4, [window(4, quality=(200, 0.5, 0.1))]))
    assert found == []


def test_baseline_pools_windows_exactly() -> None:
    rng = np.random.default_rng(7)
    samples = [rng.beta(9, 1, size=n) for n in (40, 75, 120, 33, 90)]
    analyzer = QualityAnalyzer(SETTINGS)
    state = analyzer.initial_state()
    for i, xs in enumerate(samples):
        q = (len(xs), float(xs.mean()), float(xs.std(ddof=1)))
        state, found = analyzer.analyze(state, group(i, [window(i, quality=q)]))
        assert found == []
    _, found = analyzer.analyze(state, group(5, [window(5, quality=(200, 0.5, 0.2))]))
    (ins,) = found
    allx = np.concatenate(samples)
    assert ins.evidence["baseline_quality_mean"] == pytest.approx(allx.mean(), rel=1e-12)
    assert ins.evidence["baseline_quality_stddev"] == pytest.approx(allx.std(ddof=1), rel=1e-9)
    ref = stats.ttest_ind_from_stats(
        0.5, 0.2, 200, allx.mean(), allx.std(ddof=1), len(allx), equal_var=False, alternative="less"
    )
    assert ins.evidence["p_value"] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)


def test_error_rate_jump_gives_increase_with_hand_computed_z() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer, errors=3)  # 5 x 3/1000 = 0.3 %
    _, found = analyzer.analyze(state, group(5, [window(5, errors=30)]))  # 3 %
    assert kinds(found) == [
        ("error_rate", "warning", "error_rate"),
        ("error_rate_increase", "warning", "error_rate"),
    ]
    (ins,) = [i for i in found if i.kind == "error_rate_increase"]
    p0, p1, pooled = 15 / 5000, 30 / 1000, 45 / 6000
    z = (p1 - p0) / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 5000))
    assert z == pytest.approx(9.0339, abs=1e-4)  # 0.027 / 0.0029887
    assert ins.score == pytest.approx(z, rel=1e-12)
    assert ins.evidence["z"] == pytest.approx(z, rel=1e-12)
    assert ins.evidence["p_value"] == pytest.approx(stats.norm.sf(z), rel=1e-9)
    assert ins.value == pytest.approx(0.03)
    assert ins.baseline == pytest.approx(0.003)
    assert ins.evidence["baseline_count"] == 5000
    assert ins.id == insight_id(
        APP, TASK, "quality", "error_rate_increase", ins.window_start, "error_rate"
    )


def test_increase_needs_significance_and_the_warning_rate() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer, errors=1)  # 0.1 %
    _, found = analyzer.analyze(state, group(5, [window(5, errors=8)]))  # 0.8 %: below warning
    assert found == []
    state = warmed(analyzer, errors=8)  # 0.8 %
    _, found = analyzer.analyze(state, group(5, [window(5, errors=12)]))  # 1.2 %: not significant
    assert kinds(found) == [("error_rate", "warning", "error_rate")]


def test_flagged_windows_are_not_learned() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer, errors=3)
    bad = [[window(i, errors=30, quality=(200, 0.7, 0.1))] for i in range(5, 9)]
    state, found = run(analyzer, state, bad)
    for f in found:
        assert {i.kind for i in f} == {"error_rate", "error_rate_increase", "quality_degradation"}
        inc = next(i for i in f if i.kind == "error_rate_increase")
        deg = next(i for i in f if i.kind == "quality_degradation")
        assert inc.baseline == pytest.approx(0.003)
        assert deg.baseline == pytest.approx(0.9)
        assert inc.evidence["baseline_windows"] == SETTINGS.warmup_windows
    seg = state.segments[(APP, TASK, ALL_MODELS)]
    assert len(seg.baseline) == SETTINGS.warmup_windows
    state, found = run(analyzer, state, [[window(9, errors=3)]])
    assert found == [[]]
    assert len(state.segments[(APP, TASK, ALL_MODELS)].baseline) == SETTINGS.warmup_windows + 1


def test_baseline_keeps_the_last_baseline_windows() -> None:
    s = AnalyzerSettings(warmup_windows=2, baseline_windows=3)
    analyzer = QualityAnalyzer(s)
    periods = [[window(i, errors=e)] for i, e in enumerate([50, 0, 0, 0, 0])]
    state, _ = run(analyzer, analyzer.initial_state(), periods[:1])  # flagged: not learned
    state, _ = run(analyzer, state, periods[1:])
    assert len(state.segments[(APP, TASK, ALL_MODELS)].baseline) == 3
    _, found = analyzer.analyze(state, group(5, [window(5, errors=20)]))
    (inc,) = [i for i in found if i.kind == "error_rate_increase"]
    assert inc.baseline == 0.0
    assert inc.evidence["baseline_count"] == 3000


def test_pickled_state_gives_identical_output() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    state = warmed(analyzer, errors=3)
    copy = pickle.loads(pickle.dumps(state))
    assert copy == state
    later = [
        [window(5, errors=30, quality=(200, 0.8, 0.1))],
        [window(6, errors=2), window(6, model="claude", errors=40)],
        [window(7, errors=3, quality=(100, 0.91, 0.1))],
    ]
    state_a, out_a = run(analyzer, state, later)
    state_b, out_b = run(QualityAnalyzer(SETTINGS), copy, later)
    assert out_a == out_b
    assert any(out_a)
    assert pickle.loads(pickle.dumps(state_a)) == state_b


def test_no_quality_signal_fires_exactly_once() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    periods = [[window(i, quality=None, count=100)] for i in range(12)]
    _, found = run(analyzer, analyzer.initial_state(), periods)
    flat = [i for f in found for i in f]
    assert [(i.kind, i.severity) for i in flat] == [("no_quality_signal", "info")]
    (ins,) = flat
    assert ins.window_start == T0 + timedelta(minutes=SETTINGS.warmup_windows - 1)
    assert ins.metric == "feedback_coverage"
    assert ins.value == 0.0
    assert ins.evidence["windows_seen"] == SETTINGS.warmup_windows
    assert ins.evidence["calls_seen"] == 100 * SETTINGS.warmup_windows


def test_no_quality_signal_stays_quiet_when_some_window_had_scores() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    periods = [[window(0, quality=(5, 0.9, 0.1))]]
    periods += [[window(i, quality=None)] for i in range(1, 10)]
    _, found = run(analyzer, analyzer.initial_state(), periods)
    assert found == [[] for _ in periods]


def test_bad_model_is_visible_per_model() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    ws = [window(0, model="gpt-4o"), window(0, model="claude", errors=60)]
    _, found = analyzer.analyze(analyzer.initial_state(), group(0, ws))
    assert kinds(found) == [
        ("error_rate", "critical", "error_rate@claude"),
        ("error_rate", "warning", "error_rate"),
    ]
    per_model = next(i for i in found if i.metric == "error_rate@claude")
    assert per_model.evidence["model"] == "claude"
    assert per_model.value == pytest.approx(0.06)
    assert per_model.id == insight_id(APP, TASK, "quality", "error_rate", T0, "error_rate@claude")
    agg = next(i for i in found if i.metric == "error_rate")
    assert agg.value == pytest.approx(0.03)
    assert agg.evidence["model"] == ALL_MODELS


def test_variants_of_one_model_are_summed_and_corrections_replace() -> None:
    analyzer = QualityAnalyzer(SETTINGS)
    ws = [
        window(0, variant="control", count=500, errors=4),
        window(0, variant="canary", count=500, errors=4),
        window(0, variant="canary", count=500, errors=1, revision=1),  # replaces the above
    ]
    _, found = analyzer.analyze(analyzer.initial_state(), group(0, ws))
    assert found == []  # 5/1000 = 0.5 %
    ws[2] = window(0, variant="canary", count=500, errors=6, revision=1)
    _, found = analyzer.analyze(analyzer.initial_state(), group(0, ws))
    (ins,) = found
    assert ins.metric == "error_rate"  # one model: no per-model duplicate
    assert ins.evidence["count"] == 1000
    assert ins.evidence["error_count"] == 10
