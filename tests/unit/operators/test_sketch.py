"""The relative-error quantile sketch (`operators/sketch.py`) and the digest of busy buckets
(`operators/window_digest.py`, `operators/window_buckets.py`) against numpy's exact values."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Feedback, LlmCall
from core.stats import WindowStats
from operators.app_windows import AppWindows, WindowSpec
from operators.sketch import RELATIVE_ACCURACY, LogSketch
from operators.window_digest import COST_SCALE, Digest, fixed_sum

FRACTIONS = np.array([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0])
# Values from 0 (exactly) to 1e7 with every magnitude in between.
values = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=1e-3, max_value=1e7, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=400,
)
SLACK = 1e-9  # float rounding of the interpolation itself


def assert_within(estimate: np.ndarray, exact: np.ndarray, alpha: float) -> None:
    assert np.all(np.abs(estimate - exact) <= alpha * np.abs(exact) * (1 + SLACK) + 1e-12)


@settings(max_examples=300, deadline=None)
@given(values)
def test_percentiles_are_within_the_relative_error_of_numpy(xs: list[float]) -> None:
    sketch = LogSketch()
    sketch.add(np.array(xs))
    exact = np.percentile(np.array(xs), 100 * FRACTIONS)
    assert_within(sketch.percentiles(FRACTIONS), exact, RELATIVE_ACCURACY)
    assert sketch.min == min(xs)
    assert sketch.max == max(xs)
    assert len(sketch) == len(xs)


@settings(max_examples=200, deadline=None)
@given(values, values, st.sampled_from([0.001, 0.01, 0.05]))
def test_merged_sketches_equal_the_sketch_of_the_union(
    xs: list[float], ys: list[float], alpha: float
) -> None:
    a, b, both = LogSketch(alpha), LogSketch(alpha), LogSketch(alpha)
    a.add(np.array(xs))
    b.add(np.array(ys))
    both.add(np.array(xs + ys))
    merged = pickle.loads(pickle.dumps(a.merge(b)))
    ranks = np.arange(len(xs) + len(ys))
    assert merged.order_statistics(ranks).tolist() == both.order_statistics(ranks).tolist()
    exact = np.percentile(np.array(xs + ys), 100 * FRACTIONS)
    assert_within(merged.percentiles(FRACTIONS), exact, alpha)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=200,
    )
)
def test_negative_values_keep_each_order_statistic_within_the_error(xs: list[float]) -> None:
    sketch = LogSketch()
    sketch.add(np.array(xs))
    ordered = np.sort(np.array(xs))
    estimates = sketch.order_statistics(np.arange(len(xs)))
    assert_within(estimates, ordered, RELATIVE_ACCURACY)


def test_removed_values_no_longer_count() -> None:
    sketch = LogSketch()
    sketch.add(np.array([0.25, 0.5, 0.75, 0.0]))
    sketch.remove(np.array([0.5, 0.0]))
    assert len(sketch) == 2
    assert_within(sketch.order_statistics(np.array([0, 1])), np.array([0.25, 0.75]), 0.01)


def test_size_is_bounded_by_the_value_range_not_the_count() -> None:
    rng = np.random.default_rng(7)
    sketch = LogSketch()
    for _ in range(20):
        sketch.add(rng.lognormal(6, 1.5, 50_000))
    assert len(sketch) == 1_000_000
    assert len(pickle.dumps(sketch)) < 16 * 1_500  # ~1,100 buckets of (key, count)


# --- busy buckets: windows past the exact limit -----------------------------------------------

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SPEC = WindowSpec(
    tumbling=60_000,
    sliding=300_000,
    step=60_000,
    lateness=30_000,
    feedback_join=600_000,
    dedup_ttl=timedelta(hours=1),
)
_ids = itertools.count()


def call(t: float, rng: np.random.Generator, **changes: Any) -> LlmCall:
    n = next(_ids)
    fields: dict[str, Any] = {
        "event_id": f"c{n}",
        "timestamp": T0 + timedelta(seconds=t),
        "app": "support",
        "task": "classify",
        "model": "gpt-4o-mini",
        "latency_ms": float(rng.lognormal(6, 0.8)),
        "ttft_ms": float(rng.lognormal(4, 0.5)) if n % 3 else None,
        "quality": float(rng.random()) if n % 4 == 0 else None,
        "input_tokens": int(rng.integers(10, 2000)),
        "output_tokens": int(rng.integers(1, 400)),
        "status": "ok" if n % 11 else "error",
        "error_type": None if n % 11 else ("timeout" if n % 2 else "rate_limit"),
        "prompt_hash": f"p{n % 37}" if n % 5 else None,
        "prompt_tokens_fixed": 7 if n % 2 else None,
        "request_id": f"r{n}",
    }
    fields.update(changes)
    return LlmCall(**fields)


def run(limit: int, events: list[LlmCall | Feedback], cut: int) -> list[WindowStats]:
    state = AppWindows(SPEC, exact_calls=limit)
    out = state.process(events[:cut], now=None)
    state = AppWindows.restore(state.snapshot(), now=None)
    out += state.process(events[cut:], now=None) + state.flush()
    return [o for o in out if isinstance(o, WindowStats)]


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.sampled_from([1, 16, 100]))
def test_windows_past_the_limit_match_the_exact_ones(seed: int, limit: int) -> None:
    """The same stream with every bucket exact and with buckets folded past ``limit`` calls
    (a snapshot in between): counts, sums, errors, prompts, rates and times are equal; the
    latency and ttft percentiles and samples within the sketch's 1 %; the quality mean and
    stddev to 1e-9 (feedback joined into folded buckets included)."""
    rng = np.random.default_rng(seed)
    calls = [call(float(t), rng) for t in np.sort(rng.uniform(0, 400, 600))]
    joined = [
        Feedback(
            event_id=f"f{c.event_id}",
            timestamp=c.timestamp + timedelta(seconds=5),
            app="support",
            request_id=c.request_id or "",
            quality=float(rng.random()),
        )
        for c in calls[::7]
    ]
    events: list[LlmCall | Feedback] = sorted(
        [*calls, *joined], key=lambda e: e.timestamp.timestamp()
    )
    cut = int(rng.integers(0, len(events)))
    exact, folded = run(10_000, events, cut), run(limit, events, cut)
    assert [(w.kind, w.window_start, w.revision) for w in folded] == [
        (w.kind, w.window_start, w.revision) for w in exact
    ]
    for e, f in zip(exact, folded, strict=True):
        same = (
            "count", "ok_count", "error_count", "errors_by_type", "input_tokens", "output_tokens",
            "cache_read_tokens", "prompt_tokens_fixed", "prompt_tokens_fixed_of",
            "distinct_prompts", "repeat_ratio", "rate_per_s", "peak_rate_per_s",
            "first_event_at", "last_event_at",
        )  # fmt: skip
        assert {k: getattr(f, k) for k in same} == {k: getattr(e, k) for k in same}
        # fixed-point cost: each call rounded to 2^-40 USD, so at most 2^-41 off per call
        assert f.cost_usd == pytest.approx(e.cost_usd, rel=1e-12, abs=e.count * 2**-41)
        lat_e, lat_f = e.latency_ms, f.latency_ms
        exact_p = np.array([lat_e.p50, lat_e.p90, lat_e.p95, lat_e.p99, lat_e.max])
        folded_p = np.array([lat_f.p50, lat_f.p90, lat_f.p95, lat_f.p99, lat_f.max])
        assert_within(folded_p, exact_p, RELATIVE_ACCURACY)
        assert lat_f.max == lat_e.max
        if e.ttft_ms is None:
            assert f.ttft_ms is None
        else:
            assert f.ttft_ms is not None
            assert_within(
                np.array([f.ttft_ms.p50, f.ttft_ms.p95]),
                np.array([e.ttft_ms.p50, e.ttft_ms.p95]),
                RELATIVE_ACCURACY,
            )
        assert f.quality.count == e.quality.count
        for key in ("mean", "stddev", "ci95_low", "ci95_high"):
            exact_q, folded_q = getattr(e.quality, key), getattr(f.quality, key)
            assert (exact_q is None) == (folded_q is None)
            if exact_q is not None:
                # fixed-point scores (2^-26 units): mean and stddev within 2^-27 of the
                # exact ones, the interval's bounds within t(n-1) times that
                assert folded_q == pytest.approx(exact_q, abs=1e-6)
        assert len(f.latency_sample) == len(e.latency_sample)
        assert_within(np.array(f.latency_sample), np.array(e.latency_sample), RELATIVE_ACCURACY)
        assert len(f.quality_sample) == len(e.quality_sample)
        assert_within(np.array(f.quality_sample), np.array(e.quality_sample), RELATIVE_ACCURACY)


def test_a_folded_bucket_keeps_per_call_state_only_for_joinable_calls() -> None:
    rng = np.random.default_rng(3)
    state = AppWindows(SPEC, exact_calls=50)
    state.process([call(1 + i / 1000, rng, request_id=None) for i in range(5_000)], now=None)
    (segment,) = state._store.segments.values()
    (bucket,) = segment.buckets.values()
    assert not bucket.exact
    assert len(bucket) == 5_000
    assert len(bucket.ts) == 0
    assert bucket.served == {}
    assert len(pickle.dumps(bucket)) < 40_000


@given(
    st.lists(st.floats(0.0, 50.0, allow_nan=False), min_size=1, max_size=3000),
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=3000),
    st.randoms(use_true_random=False),
)
@settings(max_examples=40, deadline=None)
def test_digest_sums_do_not_depend_on_order_or_batches(
    costs: list[float], scores: list[float], rng: random.Random
) -> None:
    """A run resumed from a snapshot cuts its batches elsewhere: its windows must be the same."""

    def digest(cost: list[float], quality: list[float], cut: int) -> Digest:
        whole = Digest()
        for part in (slice(0, cut), slice(cut, None)):
            whole.cost_units += fixed_sum(np.array(cost[part]), COST_SCALE)
            whole.add_quality(np.array(quality[part]))
        return whole

    a = digest(costs, scores, len(costs) // 3)
    shuffled_costs, shuffled_scores = costs[:], scores[:]
    rng.shuffle(shuffled_costs)
    rng.shuffle(shuffled_scores)
    b = digest(shuffled_costs, shuffled_scores, rng.randrange(len(costs) + 1))
    assert (a.cost, a.quality_n, a.quality_moments()) == (
        b.cost,
        b.quality_n,
        b.quality_moments(),
    )
    b.remove_quality(shuffled_scores[0])
    b.add_quality(np.array([shuffled_scores[0]]))
    assert b.quality_moments() == a.quality_moments()
    assert a.cost == pytest.approx(math.fsum(costs), abs=len(costs) * 2**-41)
