from __future__ import annotations

from datetime import timedelta

from api.rest.console.insight_view import (
    InsightQuery,
    context_range,
    select_insights,
    series_metric,
)
from core.insights import Insight
from tests.unit.operators.strategies.helpers import APP, MINUTE, T0, TASK


def _insight(
    n: int, analyzer: str, kind: str, severity: str = "warning", app: str = APP
) -> Insight:
    return Insight(
        id=f"i{n}", app=app, task=TASK, analyzer=analyzer, kind=kind,  # type: ignore[arg-type]
        severity=severity, window_start=T0 + n * MINUTE, window_end=T0 + (n + 1) * MINUTE,  # type: ignore[arg-type]
        metric="latency_ms.p95", value=1.0, baseline=0.5, score=3.0, message="m",
    )  # fmt: skip


def test_series_metric_maps_analyzer_metrics_and_their_model() -> None:
    assert series_metric("latency_ms.p95") == ("latency_p95", None)
    assert series_metric("quality_mean@gpt-4o-mini") == ("quality_mean", "gpt-4o-mini")
    assert series_metric("cost_usd_per_s") == ("cost_usd", None)
    assert series_metric("calls") == ("count", None)
    assert series_metric("success_rate") is None


def test_only_anomalies_and_drifts_newest_first_and_filtered() -> None:
    found = [
        _insight(1, "anomaly", "anomaly_start", "critical"),
        _insight(2, "quality", "quality_degradation"),
        _insight(3, "cost", "cost_spike"),
        _insight(4, "anomaly", "anomaly_end", "info", app="billing"),
        _insight(5, "pattern", "traffic_drift"),
    ]
    assert [i.id for i in select_insights(found, InsightQuery())] == ["i5", "i4", "i2", "i1"]
    assert [i.id for i in select_insights(found, InsightQuery(app="billing"))] == ["i4"]
    assert [i.id for i in select_insights(found, InsightQuery(severity="critical"))] == ["i1"]
    assert [i.id for i in select_insights(found, InsightQuery(kind="quality_degradation"))] == [
        "i2"
    ]


def test_context_is_half_an_hour_either_side() -> None:
    since, until = context_range(_insight(0, "anomaly", "anomaly_start"))
    assert (since, until) == (T0 - timedelta(minutes=30), T0 + MINUTE + timedelta(minutes=30))
