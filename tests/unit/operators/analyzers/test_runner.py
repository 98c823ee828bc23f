"""AnalysisRunner: periods gathered per app, in order, once; corrections never re-run."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

from core.events import LlmCall
from core.settings import AnalyzerSettings, updated
from core.stats import WindowKey, WindowStats
from operators.analyzers import AnalysisRunner, AnomalyAnalyzer, PatternAnalyzer
from operators.analyzers.pattern import PatternState
from operators.window_stats import summarize
from tests.analyzer_doubles import BusyTaskAnalyzer
from tests.unit.operators.analyzers.test_anomaly import JUMP, traffic, win

T0 = datetime(2026, 4, 1, tzinfo=UTC)


def window(
    minute: int,
    task: str,
    calls: int,
    *,
    model: str = "m",
    revision: int = 0,
    kind: str = "tumbling",
) -> WindowStats:
    start = T0 + timedelta(minutes=minute)
    made = [
        LlmCall(
            event_id=f"{minute}-{task}-{i}",
            timestamp=start + timedelta(seconds=i % 60),
            app="app",
            task=task,
            model=model,
            latency_ms=10.0,
            input_tokens=1,
            output_tokens=1,
            cost_usd=0.0,
        )
        for i in range(calls)
    ]
    w = summarize(
        "tumbling",
        start,
        start + timedelta(minutes=1),
        WindowKey("app", task, model, "baseline"),
        made,
    )
    return WindowStats(
        **{**{f: getattr(w, f) for f in w.__struct_fields__}, "revision": revision, "kind": kind}
    )


def test_periods_are_analyzed_once_in_order_when_the_next_one_starts() -> None:
    analyzer = BusyTaskAnalyzer(limit=5)
    runner = AnalysisRunner([analyzer])
    assert runner.take([window(0, "a", 9), window(0, "b", 2), window(0, "a", 1, model="m2")]) == []
    found = runner.take([window(1, "a", 1)])  # period 0 is complete now
    assert [(i.task, i.value, i.window_start) for i in found] == [("a", 10.0, T0)]
    assert runner.take([window(0, "a", 50, revision=1)]) == []  # a correction: not re-run
    assert runner.take([window(0, "b", 50)]) == []  # an older period: not re-run
    assert runner.skipped == 2
    assert runner.flush() == []  # period 1 (1 call) has nothing to say
    state = runner._states["performance"]
    assert state.periods == [(T0.isoformat(), 3), ((T0 + timedelta(minutes=1)).isoformat(), 1)]


def test_sliding_windows_are_not_periods() -> None:
    runner = AnalysisRunner([BusyTaskAnalyzer(limit=0)])
    assert runner.take([window(0, "a", 3, kind="sliding")]) == []
    assert runner.flush() == []


def test_a_restored_runner_continues_with_this_runs_analyzers() -> None:
    runner = AnalysisRunner([BusyTaskAnalyzer(limit=5)])
    runner.take([window(0, "a", 9)])
    restored = pickle.loads(pickle.dumps(runner)).with_analyzers([BusyTaskAnalyzer(limit=100)])
    # The pending period travels in the snapshot; the new limit (from this run) applies.
    assert restored.take([window(1, "a", 200)]) == []
    assert [i.value for i in restored.flush()] == [200.0]


class _Broken:
    name = "cost"

    def initial_state(self) -> int:
        return 0

    def analyze(self, state: int, group: object) -> tuple[int, list[object]]:
        raise ZeroDivisionError("a bug in an analyzer")


def test_a_failing_analyzer_is_logged_and_does_not_stop_the_others(caplog) -> None:  # type: ignore[no-untyped-def]
    runner = AnalysisRunner([_Broken(), BusyTaskAnalyzer(limit=5)])  # type: ignore[list-item]
    runner.take([window(0, "a", 9)])
    with caplog.at_level("ERROR"):
        found = runner.take([window(1, "a", 1)])
    assert [i.task for i in found] == ["a"]  # the busy analyzer still judged the period
    assert runner.failures == {"cost": 1}
    assert runner._states["cost"] == 0  # the failing analyzer's state is kept as it was
    assert "analyzer cost failed on app app" in caplog.text


def test_the_anomaly_analyzer_reads_the_pattern_profiles_instead_of_learning_them_twice() -> None:
    settings = updated(AnalyzerSettings(), drift__delta=0.0)
    counts = [traffic(i) for i in range(4 * 288)]
    counts[JUMP : JUMP + 12] = [300] * 12
    windows = [win(i, 100.0, count=c) for i, c in enumerate(counts)]
    alone = AnalysisRunner([AnomalyAnalyzer(settings)])
    both = AnalysisRunner([PatternAnalyzer(settings), AnomalyAnalyzer(settings)])
    own = [*alone.take(windows), *alone.flush()]
    shared = [i for i in [*both.take(windows), *both.flush()] if i.analyzer == "anomaly"]
    # The same judgements: the profiles before each period are the same, wherever they live.
    assert shared == own
    assert [i.window_start for i in shared if i.kind == "anomaly_start" and i.metric == "calls"][
        -1
    ] == windows[JUMP].window_start
    assert alone._states["anomaly"].pattern.tasks  # its own copy
    assert both._states["anomaly"].pattern == PatternState()  # none: the pattern analyzer's
    assert both._states["pattern"] == alone._states["anomaly"].pattern
