"""Every insight of every analyzer carries metric, value, baseline, statistic and window."""

from __future__ import annotations

from core.insights import Insight, WindowGroup
from core.settings import AnalyzerSettings, BudgetSettings, updated
from operators.analyzers import (
    AnomalyAnalyzer,
    CostAnalyzer,
    PatternAnalyzer,
    PerformanceAnalyzer,
    QualityAnalyzer,
)
from operators.analyzers.registry import KIND_STATISTIC
from tests.unit.operators.analyzers.test_anomaly import win

SETTINGS = updated(AnalyzerSettings(), warmup_windows=3, anomaly__warmup_windows=5)


def _insights() -> list[Insight]:
    analyzers = [
        PerformanceAnalyzer(SETTINGS),
        CostAnalyzer(SETTINGS, BudgetSettings()),
        QualityAnalyzer(SETTINGS),
        PatternAnalyzer(SETTINGS),
        AnomalyAnalyzer(SETTINGS),
    ]
    # Calm periods, then a slow, erroring period with a traffic burst, then an outage of "chat".
    periods = [win(i, 100.0) for i in range(12)]
    periods += [win(12, 3000.0, count=400, errors=40), win(13, 100.0, count=3)]
    states = [a.initial_state() for a in analyzers]
    out: list[Insight] = []
    for w in periods:
        group = WindowGroup(
            app="shop", window_start=w.window_start, window_end=w.window_end, windows=[w]
        )
        for k, a in enumerate(analyzers):
            states[k], found = a.analyze(states[k], group)
            out += found
    return out


def test_every_insight_names_metric_value_baseline_statistic_and_window() -> None:
    found = _insights()
    kinds = {i.kind for i in found}
    assert {"latency_slo", "latency_regression", "error_rate", "anomaly_start"} <= kinds
    assert "throughput_drop" in kinds
    for i in found:
        ev = i.evidence
        assert ev["metric"] == i.metric, i.kind
        assert ev["value"] == i.value, i.kind
        if i.baseline is not None:
            assert ev["baseline"] == i.baseline, i.kind
        assert ev["window_start"] == i.window_start.isoformat()
        assert ev["window_end"] == i.window_end.isoformat()
        assert ev["statistic"] in set(KIND_STATISTIC.values()) | {"cusum"}, i.kind
        assert any(  # a threshold or the test's significance level is in the evidence
            "threshold" in key or key in ("z_warning", "quality_p_value", "cusum_h") for key in ev
        ), i.kind
