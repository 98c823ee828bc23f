"""The incident state machine on its own: one metric's residuals in, its lifecycle out."""

from __future__ import annotations

from core.insights import Insight, WindowGroup
from core.settings import updated
from operators.analyzers.anomaly_incident import IncidentMachine, Reading
from operators.analyzers.metric_state import MetricState
from tests.unit.operators.analyzers.test_anomaly import BASE, DEFAULTS, win


def feed(
    machine: IncidentMachine, values: list[float], *, every: int = 1
) -> tuple[MetricState, list[tuple[int, Insight]], list[MetricState]]:
    ms = MetricState()
    out: list[tuple[int, Insight]] = []
    states: list[MetricState] = []
    for k, v in enumerate(values):
        w = win(k * every, v)
        g = WindowGroup(
            app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
        )
        ms, insight = machine.step(ms, Reading(g, "chat", "latency_ms.p95", v, 100), 0.0)
        states.append(ms)
        if insight is not None:
            out.append((k, insight))
    return ms, out, states


def test_a_spike_opens_an_incident_that_calm_periods_end() -> None:
    machine = IncidentMachine(updated(DEFAULTS, anomaly__end_windows=3))
    ms, found, states = feed(machine, [*BASE, 150.0, 120.0, 100.0, 100.0, 100.0])
    assert [(k, i.kind, i.evidence["statistic"]) for k, i in found] == [
        (40, "anomaly_start", "robust_z"),
        (44, "anomaly_end", "robust_z"),
    ]
    assert states[40].started is not None
    assert states[40].flagged == (150.0,)
    # 120 is z 4: at z_warning, it restarts the calm count and is not learned.
    assert (states[41].calm, states[41].flagged) == (0, (150.0, 120.0))
    assert [s.calm for s in states[42:44]] == [1, 2]
    assert ms.started is None
    assert ms.flagged == ()
    assert 150.0 not in ms.history
    # What a period shows is remembered in incidents too (a later shift's novelty needs it).
    assert ms.seen[-5:] == (150.0, 120.0, 100.0, 100.0, 100.0)


def test_an_hourly_metric_ends_its_incident_after_the_same_time_not_the_same_count() -> None:
    machine = IncidentMachine(updated(DEFAULTS, anomaly__end_windows=24))
    # Measured every 12th 5-minute period: 24 periods are 2 hours, 2 of its measurements.
    _, found, _ = feed(machine, [*BASE, 150.0, 100.0, 100.0, 100.0], every=12)
    assert [(k, i.kind) for k, i in found] == [(40, "anomaly_start"), (42, "anomaly_end")]


def test_nothing_is_judged_during_warmup() -> None:
    machine = IncidentMachine(DEFAULTS)
    ms, found, _ = feed(machine, [100.0] * 11 + [1e6])
    assert found == []
    assert ms.history[-1] == 1e6
    assert len(ms.history) == 12
