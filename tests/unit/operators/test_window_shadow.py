"""Paired shadow quality and config versions in the window state (`operators/app_windows.py`)."""

from __future__ import annotations

import pickle
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.events import Event
from core.stats import PairedQuality, WindowStats
from operators.app_windows import AppWindows
from tests.unit.operators.test_app_windows import SPEC, call, feedback, rel, windows


@dataclass
class _Call:
    t: float
    version: int | None
    quality: float | None
    shadow: tuple[str, float] | None
    fb: tuple[float, float, tuple[str, float] | None] | None  # delay, quality, shadow


_score = st.floats(0, 1, allow_nan=False)
_shadow = st.none() | st.tuples(st.sampled_from(["s1", "s2"]), _score)
_calls = st.lists(
    st.builds(
        _Call,
        t=st.floats(0, 239, allow_nan=False),
        version=st.sampled_from([None, 1, 2]),
        quality=st.none() | _score,
        shadow=_shadow,
        fb=st.none() | st.tuples(st.floats(0, 200, allow_nan=False), _score, _shadow),
    ),
    min_size=1,
    max_size=40,
)


def _events(spec: list[_Call]) -> list[Event]:
    timed: list[tuple[float, int, Event]] = []
    for i, c in enumerate(spec):
        extra: dict[str, Any] = {"request_id": f"r{i}", "config_version": c.version}
        if c.quality is not None:
            extra["quality"] = c.quality
        if c.shadow is not None:
            extra |= {"shadow_model": c.shadow[0], "shadow_quality": c.shadow[1]}
        timed.append((c.t, 0, call(c.t, **extra)))
        if c.fb is not None:
            delay, q, shadow = c.fb
            more = (
                {} if shadow is None else {"shadow_model": shadow[0], "shadow_quality": shadow[1]}
            )
            timed.append((c.t + delay, 1, feedback(c.t + delay, f"r{i}", q, **more)))
    return [e for *_, e in sorted(timed, key=lambda x: (x[0], x[1]))]


def _expected(spec: list[_Call], w: WindowStats) -> dict[str, tuple[int, float, float, float]]:
    """Independent computation: each call's final scores, summed per shadow model."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for c in spec:
        if c.version != w.config_version or not rel(w.window_start) <= c.t < rel(w.window_end):
            continue
        served, shadow = c.quality, c.shadow
        if c.fb is not None:
            served = c.fb[1]
            shadow = c.fb[2] or shadow
        if served is None or shadow is None:
            continue
        acc = sums[shadow[0]]
        acc[0] += 1
        acc[1] += served
        acc[2] += shadow[1]
        acc[3] += (shadow[1] - served) ** 2
    return {m: (int(a[0]), a[1], a[2], a[3]) for m, a in sums.items()}


def _as_tuples(shadow: dict[str, PairedQuality]) -> dict[str, tuple[int, float, float, float]]:
    return {m: (p.count, p.served_sum, p.shadow_sum, p.diff_sq_sum) for m, p in shadow.items()}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=_calls, chunk=st.integers(1, 7))
def test_paired_sums_of_every_window_equal_an_independent_computation(
    spec: list[_Call], chunk: int
) -> None:
    state = AppWindows(SPEC)
    events = _events(spec)
    out = []
    for i in range(0, len(events), chunk):
        out += state.process(events[i : i + chunk], now=None)
    out += state.flush()
    final: dict[tuple[object, ...], WindowStats] = {}
    for w in windows(out):
        key = (w.kind, w.window_start, w.config_version)
        if key not in final or w.revision >= final[key].revision:
            final[key] = w
    assert final
    for w in final.values():
        got, want = _as_tuples(w.shadow), _expected(spec, w)
        assert got.keys() == want.keys()
        for model, sums in want.items():
            assert got[model][0] == sums[0]
            assert got[model][1:] == pytest.approx(sums[1:], abs=1e-9)
        # Calls of other config versions never land in this window.
        in_window = [c for c in spec if rel(w.window_start) <= c.t < rel(w.window_end)]
        assert w.count == sum(1 for c in in_window if c.version == w.config_version)


def test_calls_of_two_config_versions_make_two_windows_of_one_segment() -> None:
    state = AppWindows(SPEC)
    out = state.process(
        [call(1, config_version=1), call(2, config_version=2), call(3, config_version=2)],
        now=None,
    )
    out += state.flush()
    tumbling = sorted(windows(out, "tumbling"), key=lambda w: w.config_version or 0)
    assert [(w.config_version, w.count) for w in tumbling] == [(1, 1), (2, 2)]
    assert {(w.task, w.model, w.variant) for w in tumbling} == {
        ("classify", "no-such-model-xyz", "baseline")
    }


def test_calls_without_shadow_fields_give_no_paired_quality() -> None:
    state = AppWindows(SPEC)
    out = state.process([call(1, quality=0.5), call(2)], now=None) + state.flush()
    assert all(w.shadow == {} for w in windows(out))


def test_sliding_windows_pool_their_buckets_paired_sums() -> None:
    state = AppWindows(SPEC)
    shadow = {"shadow_model": "s1"}
    events: list[Event] = [
        call(10, quality=1.0, shadow_quality=0.0, **shadow),
        call(70, quality=0.5, shadow_quality=0.5, **shadow),
        call(130, quality=0.0, shadow_quality=1.0, **shadow),
    ]
    out = state.process(events, now=None) + state.flush()
    ending = {rel(w.window_end): w for w in windows(out, "sliding")}
    assert ending[180.0].shadow == {"s1": PairedQuality(3, 1.5, 1.5, 2.0)}
    assert ending[120.0].shadow == {"s1": PairedQuality(2, 1.5, 0.5, 1.0)}
    tumbling = [w.shadow["s1"] for w in windows(out, "tumbling")]
    total = tumbling[0].merge(tumbling[1]).merge(tumbling[2])
    assert total == ending[180.0].shadow["s1"]


def test_a_joined_feedback_re_emits_the_window_with_updated_pairs() -> None:
    state = AppWindows(SPEC)
    out = state.process(
        [call(5, request_id="r1", shadow_model="s1", shadow_quality=1.0), call(100)], now=None
    )
    (first,) = windows(out, "tumbling")
    assert first.shadow == {}  # no served score yet: nothing paired
    out = state.process([feedback(110, "r1", 0.0)], now=None)
    (second,) = windows(out, "tumbling")
    assert second.revision == 1
    assert second.shadow == {"s1": PairedQuality(1, 0.0, 1.0, 1.0)}
    out = state.process([feedback(111, "r1", 1.0, shadow_model="s2", shadow_quality=0.5)], now=None)
    (third,) = windows(out, "tumbling")
    assert third.shadow == {"s2": PairedQuality(1, 1.0, 0.5, 0.25)}


def test_shadow_pairs_survive_a_snapshot() -> None:
    state = AppWindows(SPEC)
    state.process([call(5, quality=0.25, shadow_model="s1", shadow_quality=0.75)], now=None)
    restored = AppWindows.restore(state.snapshot(), None)
    (w,) = windows(restored.flush(), "tumbling")
    assert w.shadow == {"s1": PairedQuality(1, 0.25, 0.75, 0.25)}


def test_a_bucket_snapshot_from_before_shadow_scores_restores_empty() -> None:
    state = AppWindows(SPEC)
    state.process([call(5, quality=0.25)], now=None)
    (segment,) = state._store.segments.values()
    (bucket,) = segment.buckets.values()
    old = bucket.__getstate__()[:-1]  # the state a bucket of the previous release pickled
    fresh = type(bucket).__new__(type(bucket))
    fresh.__setstate__(old)
    assert fresh.shadow == {}
    assert pickle.loads(pickle.dumps(fresh)).quality.tolist() == [0.25]
