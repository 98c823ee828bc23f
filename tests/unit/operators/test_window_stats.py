"""Window statistics of one closed window (`operators/window_stats.py`, CONTRACT.md §3)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from core.events import LlmCall
from core.stats import QualityStats, TtftStats, WindowKey, WindowStats
from operators.window_stats import linear_percentiles, summarize

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
END = START + timedelta(seconds=60)
KEY = WindowKey(app="support", task="classify", model="gpt-4o-mini", variant="baseline")
GPT_MINI_IN = 0.15 / 1e6
GPT_MINI_OUT = 0.6 / 1e6

_counter = iter(range(10**9))


def call(**changes: Any) -> LlmCall:
    fields: dict[str, Any] = {
        "event_id": f"e{next(_counter)}",
        "timestamp": START + timedelta(seconds=1),
        "app": "support",
        "task": "classify",
        "model": "no-such-model-xyz",
        "latency_ms": 100.0,
        "input_tokens": 10,
        "output_tokens": 5,
    }
    fields.update(changes)
    return LlmCall(**fields)


def window(calls: list[LlmCall], start: datetime = START, end: datetime = END) -> WindowStats:
    return summarize("tumbling", start, end, KEY, calls)


def test_empty_window_raises() -> None:
    with pytest.raises(ValueError, match="at least one"):
        window([])


def test_identity_fields() -> None:
    first = START + timedelta(seconds=3, milliseconds=250)
    last = START + timedelta(seconds=41)
    stats = summarize(
        "sliding",
        START,
        START + timedelta(minutes=5),
        WindowKey(app="a", task="t", model="m", variant="canary"),
        [call(timestamp=last), call(timestamp=first), call(timestamp=START + timedelta(seconds=9))],
    )
    assert stats.kind == "sliding"
    assert stats.window_start == START
    assert stats.window_end == START + timedelta(minutes=5)
    assert (stats.app, stats.task, stats.model, stats.variant) == ("a", "t", "m", "canary")
    assert stats.first_event_at == first
    assert stats.last_event_at == last
    assert stats.count == 3


# --- latency and ttft -------------------------------------------------------------------------

latency_lists = st.lists(
    st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=500,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(latency_lists)
def test_latency_percentiles_equal_numpy(latencies: list[float]) -> None:
    stats = window([call(latency_ms=v) for v in latencies])
    p50, p90, p95, p99 = np.percentile(latencies, [50, 90, 95, 99])
    assert stats.latency_ms.p50 == p50
    assert stats.latency_ms.p90 == p90
    assert stats.latency_ms.p95 == p95
    assert stats.latency_ms.p99 == p99
    assert stats.latency_ms.max == max(latencies)
    assert stats.latency_ms.p50 <= stats.latency_ms.p90 <= stats.latency_ms.p95
    assert stats.latency_ms.p95 <= stats.latency_ms.p99 <= stats.latency_ms.max


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=300),
    st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=6),
)
def test_linear_percentiles_are_numpys_bit_for_bit(
    values: list[float], percents: list[int]
) -> None:
    expected = np.percentile(values, percents)
    got = linear_percentiles(np.sort(values), np.true_divide(percents, 100))
    # exact equality, NaN included (values near ±1.8e308 overflow to inf - inf in both)
    np.testing.assert_array_equal(got, expected, strict=True)


def test_latency_percentiles_on_known_data() -> None:
    stats = window([call(latency_ms=float(v)) for v in range(1, 101)])  # 1..100
    # numpy linear interpolation: index q/100 * (n-1)
    assert stats.latency_ms.p50 == 50.5
    assert stats.latency_ms.p90 == pytest.approx(90.1, abs=1e-12)
    assert stats.latency_ms.p95 == pytest.approx(95.05, abs=1e-12)
    assert stats.latency_ms.p99 == pytest.approx(99.01, abs=1e-12)
    assert stats.latency_ms.max == 100.0


def test_latency_of_a_single_call() -> None:
    stats = window([call(latency_ms=42.5)])
    latency = stats.latency_ms
    assert (latency.p50, latency.p90, latency.p95, latency.p99, latency.max) == (42.5,) * 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
        min_size=1,
        max_size=300,
    )
)
def test_ttft_percentiles_equal_numpy_over_calls_that_have_one(ttfts: list[float | None]) -> None:
    stats = window([call(ttft_ms=v) for v in ttfts])
    present = [v for v in ttfts if v is not None]
    if not present:
        assert stats.ttft_ms is None
        return
    p50, p95 = np.percentile(present, [50, 95])
    assert stats.ttft_ms == TtftStats(p50=float(p50), p95=float(p95))


def test_ttft_is_none_without_any_ttft() -> None:
    assert window([call(), call(), call()]).ttft_ms is None


def test_ttft_ignores_calls_without_one() -> None:
    stats = window([call(ttft_ms=10.0), call(), call(ttft_ms=30.0), call()])
    assert stats.ttft_ms == TtftStats(p50=20.0, p95=29.0)


# --- counts and tokens ------------------------------------------------------------------------


def test_counts_and_errors_by_type() -> None:
    calls = [
        call(),
        call(),
        call(status="ok", error_type="ignored_on_success"),
        call(status="error", error_type="timeout"),
        call(status="error", error_type="rate_limited"),
        call(status="error", error_type="rate_limited"),
        call(status="error", error_type=None),
        call(status="error"),
    ]
    stats = window(calls)
    assert stats.count == 8
    assert stats.ok_count == 3
    assert stats.error_count == 5
    assert stats.errors_by_type == {"rate_limited": 2, "timeout": 1, "unknown": 2}


def test_no_errors_gives_an_empty_mapping() -> None:
    stats = window([call(), call()])
    assert stats.error_count == 0
    assert stats.errors_by_type == {}


def test_token_sums() -> None:
    calls = [
        call(input_tokens=100, output_tokens=10, cache_read_tokens=40),
        call(input_tokens=250, output_tokens=0),
        call(input_tokens=0, output_tokens=77, cache_read_tokens=0),
        call(input_tokens=3, output_tokens=3, cache_read_tokens=3),
    ]
    stats = window(calls)
    assert stats.input_tokens == 353
    assert stats.output_tokens == 90
    assert stats.cache_read_tokens == 43


# --- cost -------------------------------------------------------------------------------------


def test_explicit_costs_are_summed_exactly() -> None:
    stats = window(
        [call(cost_usd=0.25), call(cost_usd=0.5), call(cost_usd=0.125), call(cost_usd=0)]
    )
    assert stats.cost_usd == 0.875
    assert stats.cost_per_success_usd == 0.875 / 4


def test_unknown_model_counts_zero() -> None:
    stats = window([call(model="no-such-model-xyz"), call(model="no-such-model-xyz")])
    assert stats.cost_usd == 0.0
    assert stats.cost_per_success_usd == 0.0
    mixed = window([call(model="no-such-model-xyz"), call(cost_usd=0.5)])
    assert mixed.cost_usd == 0.5
    assert mixed.cost_per_success_usd == 0.25


def test_cost_from_the_price_table() -> None:
    calls = [
        call(model="gpt-4o-mini", provider="openai", input_tokens=1000, output_tokens=500),
        call(model="gpt-4o-mini", provider="openai", input_tokens=2000, output_tokens=0),
        call(model="no-such-model-xyz", input_tokens=10**6, output_tokens=10**6),
    ]
    stats = window(calls)
    expected = (1000 + 2000) * GPT_MINI_IN + 500 * GPT_MINI_OUT
    assert stats.cost_usd == pytest.approx(expected, rel=1e-12, abs=0)
    assert stats.cost_usd == pytest.approx(0.00075, rel=1e-12, abs=0)
    assert stats.cost_per_success_usd == pytest.approx(0.00075 / 3, rel=1e-12, abs=0)


def test_cost_per_success_divides_by_successful_calls_only() -> None:
    calls = [call(cost_usd=0.3), call(cost_usd=0.3, status="error"), call(cost_usd=0.4)]
    stats = window(calls)
    assert stats.cost_usd == pytest.approx(1.0, rel=1e-15, abs=0)
    assert stats.cost_per_success_usd == pytest.approx(0.5, rel=1e-15, abs=0)


def test_cost_per_success_is_none_when_every_call_errored() -> None:
    stats = window([call(status="error", cost_usd=0.5), call(status="error", error_type="timeout")])
    assert stats.ok_count == 0
    assert stats.cost_usd == 0.5
    assert stats.cost_per_success_usd is None


# --- quality ----------------------------------------------------------------------------------


def _expected_quality(scores: list[float]) -> tuple[float, float, float, float]:
    n = len(scores)
    mean = float(np.mean(scores))
    sd = float(np.std(scores, ddof=1))
    if sd == 0:  # scipy gives nan for a zero scale; the interval is the mean itself
        return mean, sd, mean, mean
    low, high = sps.t.interval(0.95, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return mean, sd, max(0.0, float(low)), min(1.0, float(high))


def test_quality_mean_stddev_and_t_interval() -> None:
    scores = [0.55, 0.6, 0.62, 0.7, 0.58, 0.66, 0.61, 0.64]
    calls = [call(quality=q) for q in scores] + [call(), call()]
    stats = window(calls)
    mean, sd, low, high = _expected_quality(scores)
    assert stats.quality.count == 8
    assert stats.quality.mean == pytest.approx(mean, rel=1e-12)
    assert stats.quality.stddev == pytest.approx(sd, rel=1e-12)
    assert stats.quality.ci95_low == pytest.approx(low, rel=1e-9)
    assert stats.quality.ci95_high == pytest.approx(high, rel=1e-9)
    # Hand-checked: mean 0.62, t(0.975, 7) = 2.364624...
    assert stats.quality.mean == pytest.approx(0.62, rel=1e-12)
    half = 2.3646242510102993 * sd / math.sqrt(8)
    assert stats.quality.ci95_low == pytest.approx(0.62 - half, rel=1e-9)
    assert stats.quality.ci95_high == pytest.approx(0.62 + half, rel=1e-9)


def test_quality_interval_is_clipped_to_zero_and_one() -> None:
    stats = window([call(quality=0.0), call(quality=1.0), call(quality=1.0)])
    assert stats.quality.mean == pytest.approx(2 / 3, rel=1e-12)
    assert stats.quality.ci95_low == 0.0
    assert stats.quality.ci95_high == 1.0


def test_quality_of_one_score_has_no_spread() -> None:
    stats = window([call(quality=0.8), call()])
    assert stats.quality == QualityStats(
        count=1, mean=0.8, stddev=None, ci95_low=None, ci95_high=None
    )


def test_quality_without_scores() -> None:
    stats = window([call(), call()])
    assert stats.quality == QualityStats(
        count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None
    )


def test_identical_scores_give_a_zero_width_interval() -> None:
    stats = window([call(quality=0.5)] * 4)
    assert stats.quality == QualityStats(count=4, mean=0.5, stddev=0.0, ci95_low=0.5, ci95_high=0.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=2, max_size=200))
def test_quality_matches_scipy(scores: list[float]) -> None:
    stats = window([call(quality=q) for q in scores])
    mean, sd, low, high = _expected_quality(scores)
    q = stats.quality
    assert q.count == len(scores)
    assert q.mean == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert q.stddev == pytest.approx(sd, rel=1e-9, abs=1e-12)
    assert q.ci95_low == pytest.approx(low, rel=1e-9, abs=1e-12)
    assert q.ci95_high == pytest.approx(high, rel=1e-9, abs=1e-12)
    assert q.ci95_low is not None
    assert q.ci95_high is not None
    assert 0.0 <= q.ci95_low <= q.ci95_high <= 1.0


# --- prompts and rates ------------------------------------------------------------------------


def test_repeat_ratio_and_distinct_prompts() -> None:
    hashes = ["a", "a", "b", None, "c", "a"]
    stats = window([call(prompt_hash=h) for h in hashes])
    assert stats.distinct_prompts == 3
    assert stats.repeat_ratio == pytest.approx(2 / 5, rel=1e-15)


def test_no_prompt_hashes_means_no_repeats() -> None:
    stats = window([call(), call()])
    assert stats.distinct_prompts == 0
    assert stats.repeat_ratio == 0.0


def test_all_prompts_identical() -> None:
    stats = window([call(prompt_hash="same")] * 10)
    assert stats.distinct_prompts == 1
    assert stats.repeat_ratio == pytest.approx(0.9, rel=1e-15)


def test_rate_per_second_is_count_over_the_window_length() -> None:
    calls = [call() for _ in range(6)]
    assert window(calls).rate_per_s == pytest.approx(0.1, rel=1e-15)
    five_minutes = window(calls, START, START + timedelta(minutes=5))
    assert five_minutes.rate_per_s == pytest.approx(6 / 300, rel=1e-15)


def test_peak_rate_counts_calls_in_one_whole_second() -> None:
    def t(seconds: float) -> datetime:
        return START + timedelta(seconds=seconds)

    calls = [
        call(timestamp=t(4.999)),
        call(timestamp=t(5.0)),
        call(timestamp=t(5.5)),
        call(timestamp=t(5.999)),
        call(timestamp=t(6.0)),
        call(timestamp=t(6.1)),
        call(timestamp=t(30)),
    ]
    stats = window(calls)
    assert stats.peak_rate_per_s == 3.0
    assert stats.rate_per_s == pytest.approx(7 / 60, rel=1e-15)


def test_peak_rate_of_spread_calls_is_one() -> None:
    calls = [call(timestamp=START + timedelta(seconds=i)) for i in range(0, 60, 2)]
    stats = window(calls)
    assert stats.peak_rate_per_s == 1.0
    assert stats.rate_per_s == pytest.approx(0.5, rel=1e-15)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=59_999), min_size=1, max_size=200))
def test_peak_rate_matches_a_per_second_count(offsets_ms: list[int]) -> None:
    calls = [call(timestamp=START + timedelta(milliseconds=ms)) for ms in offsets_ms]
    stats = window(calls)
    per_second: dict[int, int] = {}
    for ms in offsets_ms:
        per_second[ms // 1000] = per_second.get(ms // 1000, 0) + 1
    assert stats.peak_rate_per_s == float(max(per_second.values()))
    assert stats.first_event_at == START + timedelta(milliseconds=min(offsets_ms))
    assert stats.last_event_at == START + timedelta(milliseconds=max(offsets_ms))


def test_order_of_calls_does_not_matter() -> None:
    rng = random.Random(3)
    calls = [
        call(
            latency_ms=rng.uniform(10, 2000),
            ttft_ms=rng.uniform(1, 100),
            quality=rng.random(),
            prompt_hash=rng.choice("abcd"),
            status=rng.choice(["ok", "error"]),
            error_type=rng.choice([None, "timeout"]),
            cost_usd=rng.choice([0.25, 0.5]),
            timestamp=START + timedelta(milliseconds=rng.randrange(60_000)),
        )
        for _ in range(50)
    ]
    forward = window(calls)
    backward = window(list(reversed(calls)))
    assert forward.latency_ms == backward.latency_ms
    assert forward.ttft_ms == backward.ttft_ms
    assert forward.errors_by_type == backward.errors_by_type
    assert forward.cost_usd == backward.cost_usd  # multiples of 1/4: exact in any order
    assert forward.peak_rate_per_s == backward.peak_rate_per_s
    assert forward.first_event_at == backward.first_event_at
    assert forward.quality.mean == pytest.approx(backward.quality.mean, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
        min_size=1,
        max_size=50,
    )
)
def test_first_and_last_event_times_are_exact_to_the_microsecond(times: list[datetime]) -> None:
    stats = summarize(
        "tumbling",
        min(times),
        max(times) + timedelta(seconds=1),
        KEY,
        [call(timestamp=t) for t in times],
    )
    assert stats.first_event_at == min(times)
    assert stats.last_event_at == max(times)
    assert stats.first_event_at.utcoffset() == timedelta(0)


def test_columns_of_buckets_give_the_same_stats_as_the_calls() -> None:
    from operators.window_stats import Columns, summarize_columns

    rng = random.Random(11)
    calls = [
        call(
            latency_ms=rng.uniform(10, 2000),
            ttft_ms=rng.choice([None, rng.uniform(1, 100)]),
            quality=rng.choice([None, rng.random()]),
            prompt_hash=rng.choice([None, "a", "b"]),
            status=rng.choice(["ok", "error"]),
            error_type=rng.choice([None, "timeout"]),
            cost_usd=rng.choice([0.25, 0.5]),
            input_tokens=rng.randrange(1000),
            cache_read_tokens=rng.choice([None, 5]),
            timestamp=START + timedelta(milliseconds=rng.randrange(60_000)),
        )
        for _ in range(40)
    ]
    buckets = [Columns.from_calls(calls[:15]), Columns.from_calls(calls[15:])]
    whole = window(calls)
    merged = summarize_columns("tumbling", START, END, KEY, Columns.concat(buckets))
    assert merged.latency_ms == whole.latency_ms
    assert merged.latency_sample == whole.latency_sample
    assert merged.ttft_ms == whole.ttft_ms
    assert merged.errors_by_type == whole.errors_by_type
    assert merged.input_tokens == whole.input_tokens
    assert merged.cache_read_tokens == whole.cache_read_tokens
    assert merged.cost_usd == whole.cost_usd
    assert merged.distinct_prompts == whole.distinct_prompts
    assert merged.repeat_ratio == whole.repeat_ratio
    assert merged.peak_rate_per_s == whole.peak_rate_per_s
    assert merged.quality.count == whole.quality.count
    assert merged.quality.mean == pytest.approx(whole.quality.mean, rel=1e-12)


def test_fixed_prompt_tokens_and_their_share_count_only_calls_that_report_them() -> None:
    from datetime import UTC, datetime

    from core.events import LlmCall
    from core.stats import WindowKey
    from operators.window_stats import summarize

    t0 = datetime(2026, 6, 1, tzinfo=UTC)

    def made(i: int, fixed: int | None, tokens_in: int) -> LlmCall:
        return LlmCall(
            event_id=f"f{i}",
            timestamp=t0,
            app="a",
            task="t",
            model="m",
            latency_ms=1.0,
            input_tokens=tokens_in,
            output_tokens=1,
            cost_usd=0.0,
            prompt_tokens_fixed=fixed,
        )

    key = WindowKey("a", "t", "m", "baseline")
    end = t0.replace(minute=1)
    w = summarize(
        "tumbling", t0, end, key, [made(0, 300, 400), made(1, 100, 400), made(2, None, 1000)]
    )
    assert w.prompt_tokens_fixed == 400
    assert w.fixed_prompt_share == 0.5  # 400 fixed of the 800 input tokens of calls reporting it
    none = summarize("tumbling", t0, end, key, [made(3, None, 10)])
    assert (none.prompt_tokens_fixed, none.fixed_prompt_share) == (0, None)


def test_fixed_prompt_tokens_survive_the_columnar_path() -> None:
    import json

    from core.events import decode_records
    from core.settings import ProcessorSettings
    from operators.app_windows import AppWindows, WindowSpec

    records = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "timestamp": 1_767_225_600_000 + i,
                "app": "a",
                "model": "m",
                "latency_ms": 1,
                "input_tokens": 100,
                "output_tokens": 1,
                "cost_usd": 0.0,
                **({"prompt_tokens_fixed": 60} if i % 2 else {}),
            }
        ).encode()
        for i in range(10)
    ]
    state = AppWindows(WindowSpec.from_settings(ProcessorSettings()))
    events = decode_records(records).apps["a"]
    state.process_batch(events.calls, events.feedback, None)
    (tumbling,) = [w for w in state.flush() if getattr(w, "kind", None) == "tumbling"]
    assert tumbling.prompt_tokens_fixed == 300
    assert tumbling.fixed_prompt_share == 0.6
