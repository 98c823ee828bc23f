"""StrategyRunner: per-(app, task) states, app-wide insights, pickling, replay, failures."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from core.app_config import TaskConfig, apply_overrides
from core.decisions import Decision
from core.decisions import Strategy as StrategyName
from core.insights import APP_WIDE, WindowGroup
from core.settings import DecisionSettings, Settings
from core.stats import WindowStats
from operators.strategies import REWRITE_KEY, StrategyInput, StrategyRunner, build_strategies
from tests.unit.operators.strategies.helpers import APP, MINUTE, T0, insight, window


def group(windows: list[WindowStats]) -> WindowGroup:
    first = windows[0]
    return WindowGroup(
        app=APP, window_start=first.window_start, window_end=first.window_end, windows=windows
    )


def busy_period(i: int) -> list[WindowStats]:
    """Two tasks: one cacheable, expensive and throttled, one quiet."""
    start = T0 + i * MINUTE
    return [
        window(
            start=start, quality=(150, 0.85, 0.1), cost=2.0, distinct=100, repeat_ratio=0.5,
            errors={"rate_limited": 20},
        ),
        window(start=start, task="quiet", count=10),
    ]  # fmt: skip


SETTINGS = dataclasses.replace(Settings(), decisions=DecisionSettings(candidates=("gpt-4o-mini",)))


def test_every_strategy_proposes_per_task_with_valid_actions() -> None:
    runner = StrategyRunner(build_strategies(SETTINGS))
    out = runner.take(group(busy_period(0)), [])
    assert [(d.task, d.strategy) for d in out] == [
        ("triage", "model_selection"),
        ("triage", "caching"),
        ("triage", "rate_limiting"),
    ]
    for d in out:
        apply_overrides(TaskConfig(), {k: v for k, v in d.action.items() if k != REWRITE_KEY})
        assert d.created_at == T0 + MINUTE


def test_old_or_repeated_periods_are_skipped() -> None:
    runner = StrategyRunner(build_strategies(SETTINGS))
    assert runner.take(group(busy_period(1)), [])
    assert runner.take(group(busy_period(1)), []) == []
    assert runner.take(group(busy_period(0)), []) == []
    assert runner.skipped == 2


def test_pickled_runner_resumes_with_identical_output() -> None:
    a = StrategyRunner(build_strategies(SETTINGS))
    a.take(group(busy_period(0)), [])
    b = pickle.loads(pickle.dumps(a)).with_strategies(build_strategies(SETTINGS))
    for i in range(1, 40):
        assert a.take(group(busy_period(i)), []) == b.take(group(busy_period(i)), [])


def test_replay_from_scratch_gives_the_same_ids() -> None:
    def ids() -> list[str]:
        r = StrategyRunner(build_strategies(SETTINGS))
        return [d.id for i in range(5) for d in r.take(group(busy_period(i)), [])]

    assert ids() == ids()


class Recording:
    """Records what it was given; raises on demand."""

    def __init__(self, fail: bool = False, name: StrategyName = "batching") -> None:
        self.name: StrategyName = name
        self.fail = fail
        self.seen: list[StrategyInput] = []

    def initial_state(self) -> int:
        return 0

    def propose(self, state: int, period: StrategyInput) -> tuple[int, Decision | None]:
        self.seen.append(period)
        if self.fail:
            raise RuntimeError("boom")
        return state + 1, None


def test_insights_and_configs_reach_their_task() -> None:
    rec = Recording()
    runner = StrategyRunner([rec])
    own = insight("pattern", "cache_potential", {})
    app_wide = insight("cost", "daily_budget", {}, task=APP_WIDE)
    other = insight("pattern", "burst", {}, task="quiet")
    cfg = TaskConfig(model="gpt-4o")
    runner.take(group(busy_period(0)), [own, app_wide, other], {"triage": cfg})
    by_task = {p.task: p for p in rec.seen}
    assert by_task["triage"].insights == [own, app_wide]
    assert by_task["quiet"].insights == [app_wide, other]
    assert by_task["triage"].config == cfg
    assert by_task["quiet"].config is None


def test_a_failing_strategy_is_counted_and_the_others_run() -> None:
    ok = Recording(name="caching")
    runner = StrategyRunner([Recording(fail=True), ok])
    runner.take(group(busy_period(0)), [])
    assert runner.failures == {"batching": 2}
    assert len(ok.seen) == 2
    states: dict[Any, Any] = runner._states
    assert states[(APP, "triage")] == {"caching": 1}
