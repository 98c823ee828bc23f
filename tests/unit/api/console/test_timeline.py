from __future__ import annotations

import json
from datetime import timedelta

from api.rest.console.timeline import Marker, build_chart, build_markers, version_views
from api.service.series import Point, Series, TimeSeries
from core.app_config import ConfigVersion, TaskConfig
from core.decisions import Decision, Deployment, MetricCheck, Verdict
from tests.unit.operators.strategies.helpers import APP, MINUTE, T0, TASK


def _series() -> TimeSeries:
    return TimeSeries(
        app=APP,
        metric="count",
        kind="tumbling",
        series=[
            Series(task=TASK, model="gpt-4o", variant="baseline", points=[
                Point(T0, 10.0), Point(T0 + MINUTE, 11.0), Point(T0 + 2 * MINUTE, 12.0)
            ]),
            Series(task=TASK, model="gpt-4o-mini", variant="canary",
                   points=[Point(T0 + 2 * MINUTE, 1.0)]),
        ],
    )  # fmt: skip


def test_chart_aligns_segments_on_one_axis_and_keeps_markers_in_range() -> None:
    inside = Marker(T0 + MINUTE, "decision", "decision <b>")
    outside = Marker(T0 + 10 * MINUTE, "config", "config v9")
    chart = build_chart("c", "Calls", "calls", _series(), [inside, outside])
    assert chart.times == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert [(s.label, s.values) for s in chart.series] == [
        ("gpt-4o · baseline", [10.0, 11.0, 12.0]),
        ("gpt-4o-mini · canary", [None, None, 1.0]),
    ]
    assert chart.markers == [inside]
    assert chart.rows()[2] == (T0 + 2 * MINUTE, [12.0, 1.0])
    raw = chart.to_json()
    assert "<" not in raw
    assert ">" not in raw
    data = json.loads(raw)
    assert data["x"] == [T0.timestamp(), (T0 + MINUTE).timestamp(), (T0 + 2 * MINUTE).timestamp()]
    assert data["markers"] == [
        {"t": (T0 + MINUTE).timestamp(), "kind": "decision", "label": "decision <b>"}
    ]
    empty = build_chart(
        "e",
        "Calls",
        "calls",
        TimeSeries(app=APP, metric="count", kind="tumbling", series=[]),
        [inside],
    )
    assert empty.empty
    assert empty.markers == [inside]


def _version(n: int, diff: dict[str, dict[str, object]], minute: int) -> ConfigVersion:
    return ConfigVersion(
        app=APP, version=n, tasks={TASK: TaskConfig(model="gpt-4o"), "other": TaskConfig()},
        author="actuator", reason=f"r{n}", diff=diff, created_at=T0 + timedelta(minutes=minute),
        decision_key=None if n == 1 else f"d1:stage:{n}",
    )  # fmt: skip


def test_markers_name_decisions_stages_verdicts_and_this_tasks_versions() -> None:
    decision = Decision(
        id="d1", created_at=T0, app=APP, task=TASK, strategy="model_selection",
        action={"model": "gpt-4o-mini"}, rationale="", status="canary",
    )  # fmt: skip
    check = MetricCheck(metric="quality", baseline=0.8, canary=0.8)
    verdict = Verdict(
        id="v", deployment_id="dep", stage=0, weight=0.01, outcome="inconclusive",
        window_start=T0 + 2 * MINUTE, window_end=T0 + 3 * MINUTE, checks=(check,), reason="",
        created_at=T0 + 3 * MINUTE,
    )  # fmt: skip
    deployment = Deployment(
        id="dep", decision_id="d1", app=APP, task=TASK, status="rolled_back", stage=0,
        weight=0.01, baseline_version=1, canary_version=2, started_at=T0 + MINUTE,
        stage_started_at=T0 + MINUTE, updated_at=T0, finished_at=T0 + 4 * MINUTE,
        verdicts=(verdict,),
    )  # fmt: skip
    versions = [
        _version(1, {}, 0),
        _version(2, {f"{TASK}.canary": {"from": None, "to": {"weight": 0.01}}}, 1),
        _version(3, {"other.model": {"from": None, "to": "x"}}, 2),
    ]
    markers = build_markers([decision], [deployment], versions, TASK)
    assert [(m.at - T0, m.kind, m.label, m.href) for m in markers] == [
        (timedelta(0), "config", "config v1", None),
        (timedelta(0), "decision", "decision model_selection → gpt-4o-mini (canary)",
         "/console/rollouts/d1"),
        (MINUTE, "config", "config v2", None),
        (MINUTE, "stage", "canary started, version 2", None),
        (3 * MINUTE, "verdict", "stage 0 at 1%: inconclusive", "/console/rollouts/d1"),
        (4 * MINUTE, "stage", "rollout rolled_back", None),
    ]  # fmt: skip


def test_history_newest_first_with_this_tasks_diff_rows() -> None:
    versions = [
        _version(1, {}, 0),
        _version(2, {f"{TASK}.model": {"from": "gpt-4o", "to": "gpt-4o-mini"},
                     "other.model": {"from": None, "to": "x"}}, 1),
    ]  # fmt: skip
    views = version_views(versions, TASK)
    assert [v.version for v in views] == [2, 1]
    assert [(c.field, c.before, c.after) for c in views[0].changes] == [
        (f"{TASK}.model", '"gpt-4o"', '"gpt-4o-mini"')
    ]
    assert views[1].changes == []
    assert views[0].decision_key == "d1:stage:2"
    everything = version_views(versions)
    assert [c.field for c in everything[0].changes] == ["other.model", f"{TASK}.model"]
    assert everything[0].changes[0].before == "—"


def test_a_stretch_without_windows_breaks_the_line() -> None:
    later = T0 + 60 * MINUTE
    series = TimeSeries(
        app=APP, metric="count", kind="tumbling",
        series=[Series(task=TASK, model="m", variant="baseline", points=[
            Point(T0, 1.0), Point(T0 + MINUTE, 2.0), Point(later, 3.0), Point(later + MINUTE, 4.0),
        ])],
    )  # fmt: skip
    chart = build_chart("c", "Calls", "calls", series, [])
    assert chart.times == [T0, T0 + MINUTE, T0 + 2 * MINUTE, later, later + MINUTE]
    assert chart.series[0].values == [1.0, 2.0, None, 3.0, 4.0]


def test_history_compares_objects_field_by_field() -> None:
    before = {"version": 2, "weight": 0.01, "overrides": {"model": "m"}}
    after = {"version": 2, "weight": 0.05, "overrides": {"model": "m", "provider": "p"}}
    versions = [_version(3, {f"{TASK}.canary": {"from": before, "to": after}}, 2)]
    (view,) = version_views(versions, TASK)
    assert [(c.field, c.before, c.after) for c in view.changes] == [
        (f"{TASK}.canary.overrides.provider", "—", '"p"'),
        (f"{TASK}.canary.weight", "0.01", "0.05"),
    ]
