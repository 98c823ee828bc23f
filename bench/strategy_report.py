"""The per-strategy table of ``bench.decision_quality --strategies``, and the conflict case.

Runs :func:`bench.strategy_cases.strategy_cases` through the optimizer (a fresh SQLite database
per case) and prints, per strategy: good cases proposed and promoted, bad cases stopped (never
proposed, or rolled back, and on which metric), the savings over the run against the best
possible, and the simulated minutes to the verdict.

The conflict case: one task where both a response cache and a cheaper model pay. The coordinator
(:mod:`operators.strategies.coordinator`) lets one change go at a time, by expected value; the
report shows the order it chose, each deployment's end and the combined saving against the
default config, next to each change alone and both from the start.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.strategy_cases import (
    BIG,
    START,
    STRATEGY_NAMES,
    CaseResult,
    StrategyCase,
    case_settings,
    run_strategy_case,
    strategy_cases,
)
from core.app_config import AppConfig, TaskConfig, apply_overrides
from core.settings import Settings
from rollout.config_manager import ConfigManager
from simulator import (
    CallbackSink,
    Fleet,
    InProcessOptimizer,
    ManagerConfigSource,
    ModelProfile,
    Scenario,
    Simulation,
    StaticConfigSource,
    TaskProfile,
)
from storage.database import create_db_engine, migrate, session_scope
from storage.decisions import get_decision, list_deployments

__all__ = ["ConflictRun", "run_cases", "run_conflict", "summarize_cases"]

SMALL = "gpt-4o-mini"


def run_cases(
    base: Settings, per_side: int, seed: int, max_minutes: float, strategies: tuple[str, ...]
) -> list[CaseResult]:
    """Every case to its verdict, each on a fresh SQLite database."""
    out: list[CaseResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in strategy_cases(per_side, seed, strategies):
            path = Path(tmp) / f"case-{case.index}.sqlite3"
            engine = create_db_engine(f"sqlite:///{path}")
            migrate(engine)
            out.append(
                run_strategy_case(case, case_settings(base, case), engine, max_minutes=max_minutes)
            )
            engine.dispose()
    return out


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


def summarize_cases(results: list[CaseResult]) -> str:
    """The per-strategy table (markdown) and the wrong cases' reasons."""
    lines = [
        "| strategy | good: proposed | good: promoted | bad: stopped (never proposed / "
        "rolled back: metric) | savings vs best (good) | minutes to verdict good / bad |",
        "|---|---|---|---|---|---|",
    ]
    wrong: list[str] = []
    for name in STRATEGY_NAMES:
        mine = [r for r in results if r.case.strategy == name]
        if not mine:
            continue
        good = [r for r in mine if r.case.good]
        bad = [r for r in mine if not r.case.good]
        never = sum(1 for r in bad if r.status in ("not proposed", "not started"))
        rolled = [r for r in bad if r.status == "rolled_back"]
        metrics = Counter(m for r in rolled for m in r.failed_metrics)
        saved = sum(r.savings for r in good)
        best = sum(r.best for r in good)
        ratio = f"{saved / len(good):+.1%} vs {best / len(good):+.1%}" if good else "-"
        why = ", ".join(f"{m} {n}" for m, n in sorted(metrics.items()))
        lines.append(
            f"| {name} | {sum(1 for r in good if r.proposed)}/{len(good)} | "
            f"{sum(1 for r in good if r.status == 'promoted')}/{len(good)} | "
            f"{sum(1 for r in bad if r.right)}/{len(bad)} ({never} / {len(rolled)}"
            f"{': ' + why if why else ''}) | {ratio} | "
            f"{_median([r.minutes for r in good if r.right])} / "
            f"{_median([r.minutes for r in rolled])} |"
        )
        for r in mine:
            if not r.right:
                reason = r.deployment.reason[:100] if r.deployment is not None else ""
                wrong.append(
                    f"  {name} #{r.case.index} {r.case.kind} ({'good' if r.case.good else 'bad'}):"
                    f" {r.status} {reason}"
                )
    kinds = sorted({(r.case.strategy, r.case.good, r.case.kind) for r in results})
    lines.append("cases: " + "; ".join(f"{s} {'good' if g else 'bad'} = {k}" for s, g, k in kinds))
    if wrong:
        lines.append("wrong:")
        lines += wrong
    return "\n".join(lines)


@dataclass(frozen=True)
class ConflictRun:
    """The conflict case's result."""

    order: list[str]  # "strategy: status (from minute m)" in the order deployed
    combined: float  # billed saving over the run against the default config
    alone: dict[str, float]  # each change from the start, and both
    minutes: float

    def render(self) -> str:
        """Printed lines."""
        alone = ", ".join(f"{k} {v:.1%}" for k, v in self.alone.items())
        return (
            f"conflict (cache and cheaper model both pay, one task, {self.minutes:.0f} min): "
            f"order {' -> '.join(self.order) or 'none'}; combined saving over the run "
            f"{self.combined:.1%}; from the start: {alone}"
        )


def _conflict_task() -> TaskProfile:
    cheaper = ModelProfile(quality_mean=0.85, latency_median_ms=450.0)
    return TaskProfile(
        app="conflict", task="answer", model=BIG, models={BIG: ModelProfile(), SMALL: cheaper},
        rate_per_s=20.0, repeat_ratio=0.5, distinct_prompts=40,
    )  # fmt: skip


def _billed(task: TaskProfile, config: TaskConfig, minutes: float) -> float:
    fleet = Fleet(Scenario("conflict", (task,), seed=11), start=START)
    source = StaticConfigSource(
        {task.app: AppConfig(app=task.app, version=1, tasks={task.task: config})}
    )
    sim = Simulation(fleet, source, CallbackSink(lambda _: None))
    sim.run_until(START + timedelta(minutes=minutes))
    return fleet.ledgers[(task.app, task.task)].billed_usd


def run_conflict(base: Settings, minutes: float) -> ConflictRun:
    """Run the conflict case for ``minutes`` with ``gpt-4o-mini`` as a candidate."""
    task = _conflict_task()
    case = StrategyCase(0, "caching", True, "conflict", task, TaskConfig(model=BIG), {})
    settings = case_settings(base, case)
    settings = settings.with_overrides(
        decisions=dataclasses.replace(settings.decisions, candidates=(SMALL,))
    )
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{tmp}/conflict.sqlite3")
        migrate(engine)
        fleet = Fleet(Scenario("conflict", (task,), seed=11), start=START)
        clock = {"now": START}
        source = ManagerConfigSource(ConfigManager(engine, clock=lambda: clock["now"]))
        optimizer = InProcessOptimizer(settings, engine)
        sim = Simulation(fleet, source, CallbackSink(optimizer.feed))
        sim.seed_configs()

        def tick(now: object) -> bool:
            clock["now"] = sim.now
            return False

        sim.run_until(START + timedelta(minutes=minutes), stop=tick)
        optimizer.finish()
        order: list[str] = []
        with session_scope(engine) as session:
            found, _ = list_deployments(session, app=task.app, limit=100)
            for d in sorted(found, key=lambda d: d.started_at):
                decision = get_decision(session, d.decision_id)
                at = (d.started_at - START).total_seconds() / 60
                order.append(f"{decision.strategy} {d.status} (from minute {at:.0f})")
        engine.dispose()
    billed = fleet.ledgers[(task.app, task.task)].billed_usd
    none = _billed(task, TaskConfig(model=BIG), minutes)
    cache = {"cache": {"ttl_s": 300.0}}
    configs = {
        "cache": apply_overrides(TaskConfig(model=BIG), cache),
        "model": TaskConfig(model=SMALL),
        "both": apply_overrides(TaskConfig(model=SMALL), cache),
    }
    alone = {k: 1 - _billed(task, c, minutes) / none for k, c in configs.items()}
    return ConflictRun(order, 1 - billed / none, alone, minutes)
