"""Windows of several config versions (`operators/window_merge.py`) and what consumers see.

The window state keeps calls of different config versions apart; the analyzers judge the
segment as a whole. The property: a stream whose calls alternate between two config versions
gives two windows per segment and period, and the analyzers' insights equal those of the same
calls under one version. Calls carry no TTFT (merged TTFT percentiles are an approximation) and
each second's calls, prompts included, belong to one version (a config change takes over), the
case in which every merged statistic the analyzers read is exact.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from core.events import LlmCall
from core.insights import Insight
from core.settings import Settings
from core.stats import PairedQuality, WindowKey, WindowStats
from operators.analyzers import AnalysisRunner, build_analyzers
from operators.app_windows import AppWindows, WindowSpec
from operators.strategies.period import totals
from operators.window_merge import merge_versions, merge_windows
from operators.window_stats import summarize

T0 = datetime(2026, 3, 2, tzinfo=UTC)
SPEC = WindowSpec(
    tumbling=60_000,
    sliding=300_000,
    step=60_000,
    lateness=5_000,
    feedback_join=60_000,
    dedup_ttl=timedelta(hours=1),
)
PERIODS = 40


def _stream(seed: int) -> list[dict[str, Any]]:
    """Calls of two tasks and two models over ``PERIODS`` minutes, with regime changes."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for minute in range(PERIODS):
        for task in ("a", "b"):
            for model in ("m1", "m2"):
                n = rng.randint(40, 110) * (3 if task == "a" and minute == 33 else 1)
                slow = 3.0 if task == "a" and minute >= 30 else 1.0
                failing = 0.25 if task == "b" and minute >= 32 else 0.02
                good = 0.45 if task == "b" and model == "m1" and minute >= 31 else 0.85
                for _ in range(min(n, 250)):
                    t = minute * 60 + rng.uniform(0, 59.999)
                    second = int(t)
                    event: dict[str, Any] = {
                        "timestamp": T0 + timedelta(seconds=t),
                        "task": task,
                        "model": model,
                        "latency_ms": rng.lognormvariate(5.5, 0.4) * slow,
                        "input_tokens": rng.randint(50, 500),
                        "output_tokens": rng.randint(5, 100),
                        "cost_usd": rng.uniform(0.0001, 0.001) * (4 if minute == 35 else 1),
                        "prompt_hash": f"p{second % 2}-{rng.randint(0, 30)}",
                        "prompt_tokens_fixed": 40,
                        "second": second,
                    }
                    if rng.random() < failing:
                        event |= {"status": "error", "error_type": rng.choice(["timeout", "5xx"])}
                    if rng.random() < 0.7:
                        event["quality"] = float(rng.random() < good)
                    out.append(event)
    out.sort(key=lambda e: e["timestamp"])
    return out


def _windows(stream: list[dict[str, Any]], versions: bool) -> list[WindowStats]:
    state = AppWindows(SPEC)
    calls = []
    for i, e in enumerate(stream):
        fields = {k: v for k, v in e.items() if k != "second"}
        version = (1 + e["second"] % 2) if versions else 1
        calls.append(LlmCall(event_id=f"e{i}", app="shop", config_version=version, **fields))
    out = []
    for i in range(0, len(calls), 500):
        out += state.process(calls[i : i + 500], now=None)
    out += state.flush()
    return [o for o in out if isinstance(o, WindowStats)]


def _insights(windows: list[WindowStats]) -> list[Insight]:
    runner = AnalysisRunner(build_analyzers(Settings()))
    return sorted(
        runner.take(windows) + runner.flush(),
        key=lambda i: (i.window_start, i.task, i.analyzer, i.kind, i.metric),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_config_versions_give_two_windows_and_the_same_insights(seed: int) -> None:
    stream = _stream(seed)
    one, two = _windows(stream, versions=False), _windows(stream, versions=True)
    tumbling_one = [w for w in one if w.kind == "tumbling"]
    tumbling_two = [w for w in two if w.kind == "tumbling"]
    assert {w.config_version for w in tumbling_one} == {1}
    assert {w.config_version for w in tumbling_two} == {1, 2}
    assert len(tumbling_two) == 2 * len(tumbling_one)  # every segment-period has both
    # Merged back, the windows are the one-version windows (the exact statistics exactly).
    merged = {(w.window_start, w.task, w.model): w for w in merge_versions(tumbling_two)}
    for w in tumbling_one:
        m = merged[(w.window_start, w.task, w.model)]
        assert (m.count, m.ok_count, m.errors_by_type) == (w.count, w.ok_count, w.errors_by_type)
        assert (m.input_tokens, m.distinct_prompts, m.peak_rate_per_s) == (
            w.input_tokens,
            w.distinct_prompts,
            w.peak_rate_per_s,
        )
        assert m.latency_ms == w.latency_ms
        assert m.latency_sample == w.latency_sample
        assert m.repeat_ratio == pytest.approx(w.repeat_ratio)
        assert m.cost_usd == pytest.approx(w.cost_usd)
        assert m.quality.count == w.quality.count
        for field in ("mean", "stddev", "ci95_low", "ci95_high"):
            assert getattr(m.quality, field) == pytest.approx(getattr(w.quality, field))
        assert m.quality_sample == w.quality_sample
    found_one, found_two = _insights(one), _insights(two)
    assert found_one  # the regime changes are found: the comparison is not vacuous
    assert {i.analyzer for i in found_one} >= {"performance", "quality", "cost"}
    assert [
        (i.window_start, i.task, i.analyzer, i.kind, i.severity, i.metric) for i in found_two
    ] == [(i.window_start, i.task, i.analyzer, i.kind, i.severity, i.metric) for i in found_one]
    for a, b in zip(found_two, found_one, strict=True):
        assert a.value == pytest.approx(b.value, rel=1e-9, abs=1e-12)
        assert (a.baseline is None) == (b.baseline is None)
        if a.baseline is not None and b.baseline is not None:
            assert a.baseline == pytest.approx(b.baseline, rel=1e-9, abs=1e-12)
        assert a.score == pytest.approx(b.score, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_strategy_totals_of_per_version_windows_equal_the_one_version_totals(seed: int) -> None:
    stream = _stream(seed)
    one = [w for w in _windows(stream, versions=False) if w.kind == "tumbling"]
    two = [w for w in _windows(stream, versions=True) if w.kind == "tumbling"]
    start = one[-1].window_start
    a = totals(w for w in one if w.window_start == start)
    b = totals(w for w in two if w.window_start == start)
    assert (a.calls, a.ok, a.errors, a.input_tokens, a.quality_n, a.fixed_tokens) == (
        b.calls,
        b.ok,
        b.errors,
        b.input_tokens,
        b.quality_n,
        b.fixed_tokens,
    )
    assert b.cost_usd == pytest.approx(a.cost_usd)
    assert b.quality_mean == pytest.approx(a.quality_mean)
    assert b.quality_sd == pytest.approx(a.quality_sd)
    assert b.repeated_calls == pytest.approx(a.repeated_calls)


def _window(version: int | None, latencies: list[float], **extra: Any) -> WindowStats:
    calls = [
        LlmCall(
            event_id=f"{version}-{i}",
            timestamp=T0 + timedelta(seconds=i % 60),
            app="shop",
            model="m",
            latency_ms=lat,
            input_tokens=1,
            output_tokens=1,
            config_version=version,
            **extra,
        )
        for i, lat in enumerate(latencies)
    ]
    key = WindowKey("shop", "default", "m", "baseline", version)
    return summarize("tumbling", T0, T0 + timedelta(minutes=1), key, calls)


def test_large_windows_merge_percentiles_from_weighted_samples() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(5, 0.5, 3000), rng.lognormal(6, 0.5, 1000)
    merged = merge_windows([_window(1, a.tolist()), _window(2, b.tolist())])
    exact = np.percentile(np.concatenate([a, b]), [50, 90, 95, 99])
    got = [merged.latency_ms.p50, merged.latency_ms.p90, merged.latency_ms.p95]
    got.append(merged.latency_ms.p99)
    for g, e in zip(got, exact, strict=True):
        assert g == pytest.approx(e, rel=0.03)
    assert merged.latency_ms.max == max(a.max(), b.max())
    assert merged.count == 4000
    assert merged.config_version is None
    assert len(merged.latency_sample) == 256


def test_merging_pools_shadow_sums_and_keeps_a_shared_version() -> None:
    one = _window(4, [1.0, 2.0], quality=1.0, shadow_model="s", shadow_quality=0.5)
    two = _window(4, [3.0], quality=0.0, shadow_model="s", shadow_quality=1.0)
    merged = merge_windows([one, two])
    assert merged.config_version == 4
    assert merged.shadow == {"s": PairedQuality(3, 2.0, 2.0, 1.5)}
    assert merged.quality.mean == pytest.approx(2 / 3)
    assert merged.quality.stddev == pytest.approx(math.sqrt(1 / 3))
    assert merge_windows([one]) is one
    with pytest.raises(ValueError, match="nothing"):
        merge_windows([])
