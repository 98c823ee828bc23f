"""Per-item isolation in the dataflow: a step that raises quarantines the item, the rest goes on."""

from __future__ import annotations

import json
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from core.decisions import Decision
from core.events import decode_records
from core.insights import Insight, WindowGroup
from core.settings import Settings
from core.stats import WindowStats
from flows.isolation import MAX_STATE_FAILURES, AppBatch, GuardedApp, Origin, decode_isolated
from flows.pipeline import FlowIO, build_flow
from operators.app_windows import AppWindows, Output, WindowSpec
from operators.strategies.base import StrategyInput
from sinks.actuator import PeriodWork
from sinks.quarantine import QUARANTINED
from tests.analyzer_doubles import BusyTaskAnalyzer
from tests.telemetry_samples import T0, expected_windows, make_sample
from tests.unit.flows.test_pipeline import _batches

Dlq = KafkaSinkMessage[bytes | None, bytes | None]


class FragileAnalyzer:
    """A real analyzer with a bug: it raises on every period of one app."""

    name = "quality"

    def __init__(self, fragile_app: str) -> None:
        self.fragile_app = fragile_app

    def initial_state(self) -> int:
        return 0

    def analyze(self, state: int, group: WindowGroup) -> tuple[int, list[Insight]]:
        if group.app == self.fragile_app:
            raise ZeroDivisionError(f"no baseline for {group.app}")
        return state + 1, []


class FragileStrategy:
    """A real strategy with a bug: it raises on one (app, task)."""

    name = "batching"

    def __init__(self, app: str, task: str) -> None:
        self.app, self.task = app, task

    def initial_state(self) -> int:
        return 0

    def propose(self, state: int, period: StrategyInput) -> tuple[int, Decision | None]:
        if (period.app, period.task) == (self.app, self.task):
            raise KeyError(f"no incumbent model for {period.task}")
        return state + 1, None


def _headers(msg: Dlq) -> dict[str, str]:
    return {k: v.decode() for k, v in msg.headers}


def _run(
    analyzers: list[Any], strategies: list[Any]
) -> tuple[list[Insight], list[PeriodWork], list[Dlq]]:
    sample = make_sample()
    insights: list[Insight] = []
    work: list[PeriodWork] = []
    dead: list[Dlq] = []
    flow = build_flow(
        Settings(),
        FlowIO(
            source=TestingSource(_batches(sample.records())),
            windows=TestingSink([]),
            strays=TestingSink([]),
            insights=TestingSink(insights),
            dead_letters=TestingSink(dead),
            actuator=TestingSink(work),
        ),
        analyzers=analyzers,
        strategies=strategies,
    )
    run_main(flow)
    return insights, work, [d for d in dead if "stage" in _headers(d)]


def _periods(work: list[PeriodWork]) -> list[tuple[str, str, int]]:
    return sorted(
        (
            w.app,
            w.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            sum(x.count for ws in w.windows.values() for x in ws),
        )
        for w in work
    )


def test_an_analyzer_that_raises_quarantines_its_periods_and_the_other_outputs_are_complete() -> (
    None
):
    before = QUARANTINED.labels("analyzer:quality")._value.get()
    insights, work, quarantined = _run([FragileAnalyzer("support"), BusyTaskAnalyzer(limit=50)], [])
    expected = expected_windows(make_sample())
    busy = sorted(
        (app, s, float(w["count"])) for (app, s), w in expected.items() if w["count"] > 50
    )
    got = sorted((i.app, i.window_start.strftime("%Y-%m-%dT%H:%M:%SZ"), i.value) for i in insights)
    assert got == busy  # the other analyzer judged every period of both apps
    assert _periods(work) == sorted((a, s, int(w["count"])) for (a, s), w in expected.items())
    support = sorted(s for (app, s) in expected if app == "support")
    assert len(quarantined) == len(support)
    for msg in quarantined:
        h = _headers(msg)
        assert (h["stage"], h["app"]) == ("analyzer:quality", "support")
        assert h["reason"] == "ZeroDivisionError: no baseline for support"
    starts = sorted(json.loads(m.value or b"")["window_start"] for m in quarantined)
    assert starts == support  # each offending period, whole, as JSON
    assert QUARANTINED.labels("analyzer:quality")._value.get() - before == len(support)


def test_a_strategy_that_raises_quarantines_its_period_and_every_period_reaches_the_actuator() -> (
    None
):
    _, work, quarantined = _run([], [FragileStrategy("search", "rank")])
    expected = expected_windows(make_sample())
    assert _periods(work) == sorted((a, s, int(w["count"])) for (a, s), w in expected.items())
    search = sorted(s for (app, s) in expected if app == "search")
    assert sorted(json.loads(m.value or b"")["window_start"] for m in quarantined) == search
    for msg in quarantined:
        h = _headers(msg)
        assert (h["stage"], h["app"]) == ("strategy:batching", "search")
        assert h["reason"] == "KeyError: 'no incumbent model for rank'"
        assert json.loads(msg.value or b"")["task"] == "rank"


class PoisonedWindows(AppWindows):
    """Real window state that raises on a batch holding the event ``poison``."""

    def process_batch(self, calls: Any, feedback: Any, now: float | None) -> list[Output]:
        if "poison" in calls.event_id:
            raise OverflowError("date value out of range")
        return super().process_batch(calls, feedback, now)


def _call(event_id: str, second: int, app: str = "support") -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "timestamp": int(T0.timestamp() * 1000) + second * 1000,
            "app": app,
            "model": "m",
            "latency_ms": 5,
            "input_tokens": 1,
            "output_tokens": 1,
            "cost_usd": 0.0,
        }
    ).encode()


def _batch(*records: bytes, first: int = 0) -> AppBatch:
    decoded = decode_records(list(records))
    (events,) = decoded.apps.values()
    return AppBatch(events, Origin("llm.telemetry", 2, first, first + len(records) - 1))


def test_a_batch_the_window_state_raises_on_is_quarantined_with_its_offsets_and_app_goes_on() -> (
    None
):
    spec = WindowSpec.from_settings(Settings().processor)
    guard = GuardedApp(PoisonedWindows(spec), lambda: AppWindows(spec))
    assert guard.run(lambda s: s.process_batch(*_parts(_batch(_call("a", 1))), None), None) == []
    bad = _batch(_call("b", 2), _call("poison", 3), first=40)
    out = guard.run(lambda s: s.process_batch(*_parts(bad), None), bad)
    (msg,) = out
    assert isinstance(msg, KafkaSinkMessage)
    h = _headers(msg)
    assert (h["stage"], h["app"], h["reason"]) == (
        "app_windows",
        "support",
        "OverflowError: date value out of range",
    )
    assert (h["source.partition"], h["source.offset"], h["source.offset_end"]) == ("2", "40", "41")
    assert json.loads(msg.value or b"")["event_ids"] == ["b", "poison"]
    later = _batch(_call("c", 200))  # closes the first minute: the app's windows go on
    out = guard.run(lambda s: s.process_batch(*_parts(later), None), later)
    tumbling = [o for o in out if isinstance(o, WindowStats) and o.kind == "tumbling"]
    assert [w.count for w in tumbling] == [1]  # "a" only (the quarantined batch is not in it)
    assert not any(isinstance(o, KafkaSinkMessage) for o in out)


def test_a_state_that_keeps_raising_is_reset_and_says_so() -> None:
    spec = WindowSpec.from_settings(Settings().processor)
    guard = GuardedApp(PoisonedWindows(spec), lambda: AppWindows(spec))
    stages = []
    for i in range(MAX_STATE_FAILURES):
        bad = _batch(_call(f"x{i}", i), _call("poison", 3), first=i * 2)
        stages += [
            _headers(m)["reason"]
            for m in guard.run(lambda s, b=bad: s.process_batch(*_parts(b), None), bad)
        ]  # type: ignore[union-attr, misc]
    assert len(stages) == MAX_STATE_FAILURES + 1
    assert stages[-1].startswith(f"window state raised {MAX_STATE_FAILURES} times in a row; reset")
    assert type(guard.state) is AppWindows  # the fresh state
    ok = _batch(_call("poison", 3))
    assert guard.run(lambda s: s.process_batch(*_parts(ok), None), ok) == []


def _parts(batch: AppBatch) -> tuple[Any, Any]:
    return batch.events.calls, batch.events.feedback


def test_a_record_the_decoder_raises_on_becomes_a_dead_letter_and_its_batch_is_decoded() -> None:
    good = [_call("a", 1), _call("b", 2, app="search")]
    invalid_utf8 = b'{"event_id": "u", "timestamp": 1, "app": "s\xff\xfe", "model": "m"}'
    records: list[bytes | None] = [good[0], invalid_utf8, good[1]]
    decoded, raising = decode_isolated(records, None)
    rejected = sorted([*decoded.rejected, *raising])
    assert [i for i, _ in rejected] == [1]  # a reason, whether the decoder rejects or raises
    assert rejected[0][1]
    assert sorted(decoded.apps) == ["search", "support"]
    assert [decoded.apps[a].calls.event_id for a in ("search", "support")] == [["b"], ["a"]]


def test_the_backtest_writes_quarantined_items_into_dlq_jsonl_with_their_stage() -> None:
    from flows.backtest import _dead_letter_json
    from sinks.quarantine import quarantined

    msg = quarantined(b'{"app":"a"}', "KeyError: 'x'", "analyzer:cost", app="a")
    assert json.loads(_dead_letter_json(msg)) == {
        "line": None,
        "reason": "KeyError: 'x'",
        "record": '{"app":"a"}',
        "stage": "analyzer:cost",
    }
