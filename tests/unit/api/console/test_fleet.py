from __future__ import annotations

import dataclasses
from datetime import timedelta

import msgspec

from api.rest.console.fleet import FleetFilter, build_rows, select_rows, weighted_quantile
from core.app_config import AppConfig, TaskConfig
from core.decisions import Deployment
from core.insights import Insight
from tests.unit.operators.strategies.helpers import APP, MINUTE, T0, TASK, window


def _deployment(task: str, status: str = "running", started: int = 0) -> Deployment:
    at = T0 + timedelta(minutes=started)
    return Deployment(
        id=f"dep-{task}-{started}", decision_id=f"dec-{task}", app=APP, task=task,
        status=status, stage=1, weight=0.05, baseline_version=1, canary_version=2,  # type: ignore[arg-type]
        started_at=at, stage_started_at=at, updated_at=at,
    )  # fmt: skip


def _insight(task: str, severity: str) -> Insight:
    return Insight(
        id=f"i-{task}-{severity}", app=APP, task=task, analyzer="anomaly", kind="anomaly_start",
        severity=severity, window_start=T0, window_end=T0 + MINUTE,  # type: ignore[arg-type]
        metric="latency_ms.p95", value=900.0, baseline=400.0, score=5.0, message="slow",
    )  # fmt: skip


def test_weighted_quantile_counts_weights() -> None:
    assert weighted_quantile([(1.0, 1.0), (2.0, 1.0), (3.0, 98.0)], 0.95) == 3.0
    assert weighted_quantile([(10.0, 96.0), (50.0, 4.0)], 0.95) == 10.0
    assert weighted_quantile([(10.0, 94.0), (50.0, 6.0)], 0.95) == 50.0
    assert weighted_quantile([], 0.95) is None
    assert weighted_quantile([(1.0, 0.0)], 0.5) is None


def test_rows_sum_the_day_per_task_and_attach_config_rollout_and_insights() -> None:
    config = AppConfig(
        app=APP, version=3,
        tasks={TASK: TaskConfig(model="gpt-4o"), "quiet": TaskConfig(model="gpt-4o-mini")},
    )  # fmt: skip
    windows = [
        window(count=100, cost=2.0, errors={"timeout": 5}, quality=(50, 0.8, 0.1), p95=300.0),
        window(count=300, cost=3.0, start=T0 + MINUTE, quality=(150, 0.9, 0.1), p95=500.0),
    ]
    old, new = _deployment(TASK, started=0), _deployment(TASK, started=5)
    rows = build_rows(
        {APP: config},
        windows,
        [new, old],
        [_insight(TASK, "critical"), _insight(TASK, "warning")],
    )
    assert [(r.app, r.task) for r in rows] == [(APP, "quiet"), (APP, TASK)]
    quiet, busy = rows
    assert (quiet.calls, quiet.cost_per_call, quiet.p95_ms, quiet.quality) == (0, None, None, None)
    assert quiet.model == "gpt-4o-mini"
    assert quiet.rollout is None
    assert quiet.insights == 0
    assert busy.model == "gpt-4o"
    assert busy.config_version == 3
    assert busy.calls == 400
    assert busy.cost_per_call == 5.0 / 400
    assert busy.error_rate == 5 / 400
    assert busy.quality == (50 * 0.8 + 150 * 0.9) / 200
    assert busy.p95_ms == 500.0  # 300 of the 400 calls sit in the slower window
    assert busy.rollout == new  # the newest open rollout
    assert (busy.insights, busy.critical) == (2, 1)


def test_p95_pools_the_windows_latency_samples() -> None:
    fast = msgspec.structs.replace(window(count=90), latency_sample=(100.0,) * 9)
    slow = msgspec.structs.replace(
        window(count=10, start=T0 + MINUTE), latency_sample=(1000.0, 2000.0)
    )
    (row,) = build_rows({APP: None}, [fast, slow], [], [])
    # 90 calls at 100 ms, 5 at 1000, 5 at 2000: the 95th percentile is 1000 ms
    assert row.p95_ms == 1000.0
    assert row.model is None
    assert row.config_version is None


def _rows() -> list:  # type: ignore[type-arg]
    rows = build_rows(
        {APP: None, "billing": None},
        [
            window(task="a", count=100, cost=1.0, p95=200.0),
            window(task="b", count=100, cost=3.0, p95=900.0),
            window(task="c", count=100, cost=2.0, p95=100.0, quality=(10, 0.5, 0.1)),
        ],
        [_deployment("b")],
        [_insight("c", "warning")],
    )
    return [dataclasses.replace(r, app="billing") if r.task == "c" else r for r in rows]


def test_select_filters_by_name_rollout_and_insights() -> None:
    rows = _rows()
    assert [r.task for r in select_rows(rows, FleetFilter(q="BILL"))] == ["c"]
    assert [r.task for r in select_rows(rows, FleetFilter(q="b"))] == ["c", "b"]  # app or task
    assert [r.task for r in select_rows(rows, FleetFilter(rollout_only=True))] == ["b"]
    assert [r.task for r in select_rows(rows, FleetFilter(with_insights=True))] == ["c"]


def test_select_sorts_both_ways_with_missing_values_last() -> None:
    rows = _rows()
    by = lambda **kw: [r.task for r in select_rows(rows, FleetFilter(**kw))]  # noqa: E731
    assert by(sort="cost_per_call") == ["a", "c", "b"]
    assert by(sort="cost_per_call", descending=True) == ["b", "c", "a"]
    assert by(sort="p95", descending=True) == ["b", "a", "c"]
    assert by(sort="quality") == ["c", "a", "b"]  # only c has quality; the others follow
    assert by(sort="quality", descending=True) == ["c", "a", "b"]
    assert by(sort="app") == ["c", "a", "b"]  # billing/c before support/a, support/b


def test_select_by_model() -> None:
    config = AppConfig(
        app=APP, version=1,
        tasks={"a": TaskConfig(model="gpt-4o"), "b": TaskConfig(model="gpt-4o-mini")},
    )  # fmt: skip
    rows = build_rows({APP: config}, [], [], [])
    assert [r.task for r in select_rows(rows, FleetFilter(models=("gpt-4o-mini",)))] == ["b"]
    assert [r.task for r in select_rows(rows, FleetFilter(models=()))] == ["a", "b"]
