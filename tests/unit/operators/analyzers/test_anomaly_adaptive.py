"""The anomaly analyzer adapts to a series' cadence and to its daily seasonality."""

from __future__ import annotations

import math

from core.settings import AnalyzerSettings, updated
from operators.analyzers.anomaly import AnomalyAnalyzer
from tests.unit.operators.analyzers.test_anomaly import BASE, run

DEFAULTS = AnalyzerSettings()
DAY = 288  # 5-minute periods


def _daily(i: int) -> float:
    """A daily wave of amplitude 50 around 200 with a small deterministic jitter."""
    return 200.0 + 50.0 * math.sin(2 * math.pi * i / DAY) + (i * 7919 % 5) - 2.0


def test_an_hourly_series_ends_its_incident_after_the_same_time_not_the_same_count() -> None:
    analyzer = AnomalyAnalyzer(DEFAULTS)
    state = analyzer.initial_state()
    found = []
    values = [*BASE, 400.0, *BASE]
    for k, v in enumerate(values):  # one measured period in 12: hourly points, 5-minute periods
        state, out = run(analyzer, [v], state=state, offset=12 * k)
        found += [(k, i) for _, i in out if i.metric == "latency_ms.p95"]
    kinds = [(k, i.kind) for k, i in found]
    spike = len(BASE)
    end = round(DEFAULTS.anomaly.end_windows / 12)  # 12 hours of hourly points
    assert kinds == [(spike, "anomaly_start"), (spike + end, "anomaly_end")]


def test_a_daily_wave_is_learned_and_a_flat_stretch_at_its_peak_is_an_anomaly() -> None:
    analyzer = AnomalyAnalyzer(DEFAULTS)
    days = 5
    values = [_daily(i) for i in range(days * DAY)]
    state, found = run(analyzer, values)
    late = [i for t, i in found if t >= 3 * DAY and i.metric == "latency_ms.p95"]
    assert late == []  # the wave is expected once its profile is known
    assert state.metrics[("chat", "latency_ms.p95")].seasonal
    # Day 6: the wave stops at its mean during the hours of its peak.
    flat = [
        200.0 if DAY // 8 <= i % DAY < 3 * DAY // 8 else _daily(i)
        for i in range(days * DAY, (days + 1) * DAY)
    ]
    _, after = run(analyzer, flat, state=state, offset=days * DAY)
    starts = [(t, i) for t, i in after if i.kind == "anomaly_start"]
    assert starts
    assert days * DAY + DAY // 8 <= starts[0][0] < days * DAY + 3 * DAY // 8
    assert starts[0][1].evidence["direction"] == "below"


def test_without_the_profile_the_same_flat_stretch_goes_unnoticed() -> None:
    analyzer = AnomalyAnalyzer(updated(DEFAULTS, anomaly__season_gain=0.0))
    days = 5
    values = [_daily(i) for i in range(days * DAY)]
    flat = [
        200.0 if DAY // 8 <= i % DAY < 3 * DAY // 8 else _daily(i)
        for i in range(days * DAY, (days + 1) * DAY)
    ]
    state, _ = run(analyzer, values)
    assert not state.metrics[("chat", "latency_ms.p95")].seasonal
    _, after = run(analyzer, flat, state=state, offset=days * DAY)
    assert [i for _, i in after if i.kind == "anomaly_start"] == []
