"""River ADWIN drift detection on quality, latency and error streams, as anomaly insights."""

from __future__ import annotations

import pickle

import msgspec
import pytest

from core.insights import WindowGroup
from core.settings import AnalyzerSettings, updated
from core.stats import QualityStats
from operators.analyzers.anomaly import AnomalyAnalyzer
from operators.analyzers.drift import DriftDetectors, DriftState
from tests.unit.operators.analyzers.test_anomaly import win

DEFAULTS = AnalyzerSettings()


def _group(i: int, quality: float, latency: float = 100.0) -> WindowGroup:
    w = win(i, latency)
    w = msgspec.structs.replace(
        w, quality=QualityStats(count=100, mean=quality, stddev=0.1, ci95_low=None, ci95_high=None)
    )
    return WindowGroup(
        app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
    )


def _quality(i: int) -> float:
    """0.9 with a deterministic wiggle of ±0.01 until period 200, then 0.75."""
    return (0.9 if i < 200 else 0.75) + ((i * 37) % 3 - 1) * 0.01


def test_a_quality_drop_is_one_drift_warning_with_both_means() -> None:
    detectors = DriftDetectors(DEFAULTS)
    state = DriftState()
    found = []
    for i in range(300):
        state, out = detectors.step(state, _group(i, _quality(i)))
        found += [(i, f) for f in out if f.metric == "quality"]
    assert found, "the drop must be detected"
    first_at, first = found[0]
    assert 200 <= first_at < 300  # ADWIN is cautious: ~80 periods at delta 0.002
    assert first.kind == "drift"
    assert first.analyzer == "anomaly"
    assert first.severity == "warning"
    ev = first.evidence
    assert ev["detector"] == "ADWIN"
    assert ev["delta"] == DEFAULTS.drift.delta
    assert abs(float(ev["mean_before"]) - 0.9) < 0.03
    assert float(ev["mean_after"]) < float(ev["mean_before"])
    assert ev["direction"] == "down"
    assert float(ev["periods_before"]) >= 1
    assert float(ev["periods_after"]) >= 1


def test_a_stable_stream_raises_no_drift() -> None:
    detectors = DriftDetectors(DEFAULTS)
    state = DriftState()
    for i in range(400):
        state, out = detectors.step(state, _group(i, 0.9 + ((i * 37) % 3 - 1) * 0.01))
        assert out == []


def test_states_are_snapshots_and_pickle() -> None:
    detectors = DriftDetectors(DEFAULTS)
    state = DriftState()
    for i in range(150):
        state, _ = detectors.step(state, _group(i, _quality(i)))
    snapshot = pickle.dumps(state)
    a = b = state
    out_a: list[str] = []
    for i in range(150, 300):
        a, found = detectors.step(a, _group(i, _quality(i)))
        out_a += [f.id for f in found]
    assert pickle.dumps(state) == snapshot  # stepping never changed the earlier state
    b = pickle.loads(snapshot)
    out_b: list[str] = []
    for i in range(150, 300):
        b, found = detectors.step(b, _group(i, _quality(i)))
        out_b += [f.id for f in found]
    assert out_a == out_b
    assert out_a


def test_the_anomaly_analyzer_emits_drift_and_zero_delta_turns_it_off() -> None:
    on = AnomalyAnalyzer(DEFAULTS)
    off = AnomalyAnalyzer(updated(DEFAULTS, drift__delta=0.0))
    s_on, s_off = on.initial_state(), off.initial_state()
    kinds_on: list[str] = []
    kinds_off: list[str] = []
    for i in range(300):
        g = _group(i, _quality(i))
        s_on, found_on = on.analyze(s_on, g)
        s_off, found_off = off.analyze(s_off, g)
        kinds_on += [f.kind for f in found_on]
        kinds_off += [f.kind for f in found_off]
    assert "drift" in kinds_on
    assert "drift" not in kinds_off


def test_errors_appearing_on_an_error_free_stream_score_a_finite_drift() -> None:
    detectors = DriftDetectors(DEFAULTS)
    state = DriftState()
    found = []
    for i in range(300):
        w = win(i, 100.0, errors=0 if i < 150 else 30)
        group = WindowGroup(
            app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
        )
        state, out = detectors.step(state, group)
        found += [f for f in out if f.metric == "error_rate"]
    assert found
    first = found[0]
    assert first.evidence["direction"] == "up"
    assert first.score == pytest.approx(1.0)  # from 0: the whole of the larger mean
    assert first.severity == "warning"
    assert msgspec.json.decode(msgspec.json.encode(first)) is not None
    assert "null" not in msgspec.json.encode(first).decode()
