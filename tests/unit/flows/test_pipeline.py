"""The dataflow in-process with TestingSource/TestingSink: whole outputs asserted."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from core.insights import Insight
from core.settings import ProcessorSettings, Settings
from core.stats import StrayEvent, WindowStats
from flows.kafka_batches import RecordBatch
from flows.pipeline import FlowIO, build_flow
from sinks.actuator import PeriodWork
from tests.analyzer_doubles import BusyTaskAnalyzer
from tests.telemetry_samples import T0, expected_windows, make_sample


def _batches(records: list[bytes], size: int = 17) -> list[RecordBatch]:
    return [
        RecordBatch(
            "llm.telemetry",
            0,
            list(range(start, start + len(records[start : start + size]))),
            list(records[start : start + size]),
            [],
        )
        for start in range(0, len(records), size)
    ]


def _run(records: list[bytes], settings: Settings | None = None, kind: str = "tumbling"):  # type: ignore[no-untyped-def]
    windows: list[WindowStats] = []
    strays: list[StrayEvent] = []
    dead: list[KafkaSinkMessage[bytes | None, bytes | None]] = []
    flow = build_flow(
        settings or Settings(),
        FlowIO(
            source=TestingSource(_batches(records)),
            windows=TestingSink(windows),
            strays=TestingSink(strays),
            dead_letters=TestingSink(dead),
            actuator=TestingSink([]),
        ),
        analyzers=[],
    )
    run_main(flow)
    return [w for w in windows if w.kind == kind], dead


def test_analyzers_run_inside_the_flow_once_per_app_period() -> None:
    sample = make_sample()
    insights: list[Insight] = []
    work: list[PeriodWork] = []
    flow = build_flow(
        Settings(),
        FlowIO(
            source=TestingSource(_batches(sample.records())),
            windows=TestingSink([]),
            strays=TestingSink([]),
            insights=TestingSink(insights),
            dead_letters=TestingSink([]),
            actuator=TestingSink(work),
        ),
        analyzers=[BusyTaskAnalyzer(limit=50)],
        strategies=[],
    )
    run_main(flow)
    expected = sorted(
        (app, start, float(w["count"]))
        for (app, start), w in expected_windows(sample).items()
        if w["count"] > 50
    )
    got = sorted((i.app, i.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"), i.value) for i in insights)
    assert got == expected
    assert len({i.id for i in insights}) == len(insights)
    # every app period also reaches the actuator, with what each variant of each task served
    periods = sorted(
        (
            w.app,
            w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            sum(x.count for ws in w.windows.values() for x in ws),
        )
        for w in work
    )
    assert periods == sorted(
        (app, start, int(w["count"])) for (app, start), w in expected_windows(sample).items()
    )
    assert all(not w.proposals for w in work)


def test_sample_gives_exactly_the_expected_windows_and_dead_letters() -> None:
    sample = make_sample()
    windows, dead = _run(sample.records())
    expected = expected_windows(sample)
    got = {(w.app, w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ")): w for w in windows}
    assert len(windows) == len(got) == len(expected)  # each window emitted once
    assert set(got) == set(expected)
    for key, want in expected.items():
        w = got[key]
        assert (w.count, w.error_count, w.input_tokens) == (
            want["count"],
            want["error_count"],
            want["input_tokens"],
        )
        assert w.latency_ms.p99 == pytest.approx(want["p99"])
        assert w.cost_usd == pytest.approx(want["cost_usd"], rel=1e-9)
    assert sorted(d.value for d in dead if d.value is not None) == sorted(sample.malformed)
    offsets = {dict(d.headers)["source.offset"] for d in dead}
    assert len(offsets) == len(sample.malformed)


def test_duplicates_are_dropped_within_ttl_and_kept_after_it() -> None:
    def call(event_id: str, seconds: int) -> bytes:
        return json.dumps(
            {
                "event_id": event_id,
                "timestamp": int((T0 + timedelta(seconds=seconds)).timestamp() * 1000),
                "app": "a",
                "model": "m",
                "latency_ms": 1,
                "input_tokens": 1,
                "output_tokens": 1,
                "cost_usd": 0.0,
            }
        ).encode()

    settings = Settings(processor=ProcessorSettings(dedup_ttl=timedelta(seconds=120)))
    records = [call("x", 0), call("x", 5), call("y", 10), call("z", 200), call("x", 200)]
    windows, dead = _run(records, settings)
    assert dead == []
    by_start = {w.window_start: w.count for w in windows}
    # x@5 is a duplicate; x@200 is beyond the 120 s TTL and counts again.
    assert by_start == {T0: 2, T0 + timedelta(seconds=180): 2}


def test_feedback_events_do_not_become_window_calls() -> None:
    feedback = json.dumps(
        {
            "kind": "feedback",
            "event_id": "f1",
            "timestamp": T0.isoformat(),
            "app": "a",
            "request_id": "r1",
            "quality": 0.9,
        }
    ).encode()
    windows, dead = _run([feedback])
    assert (windows, dead) == ([], [])
