"""Decision quality: many simulated rollouts through the real operators, scored against the truth.

Each rollout is one app/task on ``gpt-4o`` with ``gpt-4o-mini`` as the only candidate. In half of
them the candidate is as good (quality -0.015..+0.02 against a 0.02 tolerance, latency
x0.7-1.05, same error rate); in the other half it is worse: quality lower by 0.03-0.12, or p95
latency over the SLO (x1.3-2), or 2-8 % more errors. The simulated fleet (``simulator``)
serves the task with the active config and its canary; its telemetry goes period by period
through the same operators as the dataflow (AppWindows → AnalysisRunner → StrategyRunner →
Actuator) on a fresh SQLite database per rollout, until the deployment ends (or
``--max-minutes`` of simulated time).

Prints caught-bad %, wrongly-rolled-back %, at which weight bad canaries were caught, and the
savings against the oracle's (the cheapest model meeting the SLOs)::

    .venv/bin/python -m bench.decision_quality --rollouts 100

Strategy mode (:mod:`bench.strategy_cases`, :mod:`bench.strategy_report`): good and bad cases of
caching, rate limiting, batching and prompt changes, a per-strategy table, and a task where a
cache and a cheaper model both pay (the coordinator's order and the combined saving)::

    .venv/bin/python -m bench.decision_quality --strategies [--per-side 5] [--conflict]

Fleet mode (:mod:`bench.fleet_decisions`): a seeded fleet of binary-quality tasks for 24
simulated hours, reported against the per-task oracle::

    .venv/bin/python -m bench.decision_quality --fleet binary [--shadow] [--tasks 57] [--hours 24]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from bench.fleet_decisions import FleetRun, run_fleet
from bench.strategy_cases import STRATEGY_NAMES
from bench.strategy_report import run_cases, run_conflict, summarize_cases
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
    TaskProfile,
    build_report,
    rollouts_from_db,
)
from simulator.report import RolloutOutcome
from storage.database import create_db_engine, migrate, session_scope
from storage.decisions import list_deployments

BIG, SMALL = "gpt-4o", "gpt-4o-mini"
START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
_DONE = ("rolled_back", "promoted")


@dataclass(frozen=True)
class Case:
    """One rollout's truth."""

    index: int
    good: bool
    kind: str  # "same", "quality", "latency", "errors"
    candidate: ModelProfile


def cases(n: int, seed: int) -> list[Case]:
    """``n`` rollouts alternating good and bad; bad: 60 % quality, 20 % latency, 20 % errors."""
    rng = np.random.default_rng(seed)
    base = ModelProfile()
    out: list[Case] = []
    for i in range(n):
        if i % 2 == 0:
            cand = dataclasses.replace(
                base,
                quality_mean=base.quality_mean + float(rng.uniform(-0.015, 0.02)),
                latency_median_ms=base.latency_median_ms * float(rng.uniform(0.7, 1.05)),
            )
            out.append(Case(i, True, "same", cand))
            continue
        kind = str(rng.choice(["quality", "quality", "quality", "latency", "errors"]))
        if kind == "quality":
            cand = dataclasses.replace(
                base, quality_mean=base.quality_mean - float(rng.uniform(0.03, 0.12))
            )
        elif kind == "latency":
            cand = dataclasses.replace(
                base, latency_median_ms=base.latency_median_ms * float(rng.uniform(1.3, 2.0))
            )
        else:
            cand = dataclasses.replace(
                base, error_rate=base.error_rate + float(rng.uniform(0.02, 0.08))
            )
        out.append(Case(i, False, kind, cand))
    return out


def bench_settings(min_samples: int, stage_minutes: float, watch_minutes: float) -> Settings:
    """Default settings with short stages (simulated time is cheap, wall time is not)."""
    s = Settings()
    return s.with_overrides(
        canary=dataclasses.replace(
            s.canary,
            min_samples=min_samples,
            min_stage_duration=timedelta(minutes=stage_minutes),
            post_promotion_watch=timedelta(minutes=watch_minutes),
        ),
        decisions=dataclasses.replace(s.decisions, candidates=(SMALL,)),
    )


@dataclass(frozen=True)
class Result:
    """One rollout's outcome."""

    case: Case
    rollout: RolloutOutcome | None
    savings: float
    oracle_savings: float
    final_model: str
    end_savings: float  # cost saved per call by the model the task ended on
    oracle_end_savings: float
    events: int
    minutes: float


def run_case(case: Case, settings: Settings, rate: float, max_minutes: float, tmp: Path) -> Result:
    """Simulate one rollout to its end on a fresh SQLite database."""
    path = tmp / f"rollout-{case.index}.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate(engine)
    task = TaskProfile(
        app=f"app-{case.index}",
        task="classify",
        model=BIG,
        models={BIG: ModelProfile(), SMALL: case.candidate},
        rate_per_s=rate,
    )
    scenario = Scenario(
        f"rollout-{case.index}", (task,), duration=timedelta(minutes=max_minutes), seed=case.index
    )
    fleet = Fleet(scenario, start=START)
    sim_clock = {"now": START}
    manager = ConfigManager(engine, clock=lambda: sim_clock["now"])
    optimizer = InProcessOptimizer(settings, engine)
    sim = Simulation(fleet, ManagerConfigSource(manager), CallbackSink(optimizer.feed))
    sim.seed_configs()
    state = {"period": START}

    def finished(now: datetime) -> bool:
        sim_clock["now"] = now
        if now - state["period"] < timedelta(minutes=1):
            return False
        state["period"] = now
        with session_scope(engine) as session:
            found, _ = list_deployments(session, app=task.app, limit=10)
        return any(d.status in _DONE for d in found)

    sim.run_until(START + scenario.duration, stop=finished)
    optimizer.finish()
    pairs, decisions = rollouts_from_db(engine, [task.app])
    report = build_report(fleet, sim.now, pairs, decisions, events=sim.events)
    engine.dispose()
    path.unlink()
    model_rollouts = [r for r in report.rollouts if r.model is not None]
    t = report.tasks[0]

    def per_call(model: str) -> float:
        return fleet.expected_cost(task, model, task.models[model])

    return Result(
        case,
        model_rollouts[0] if model_rollouts else None,
        t.savings,
        t.oracle_savings,
        t.final_model,
        1 - per_call(t.final_model) / per_call(BIG),
        1 - per_call(t.oracle_model) / per_call(BIG),
        sim.events,
        (sim.now - START).total_seconds() / 60,
    )


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def summarize(results: list[Result]) -> str:
    """The printed figures."""
    good = [r for r in results if r.case.good]
    bad = [r for r in results if not r.case.good]
    caught = [r for r in bad if r.rollout is not None and r.rollout.outcome == "caught"]
    missed = [r for r in bad if r.rollout is not None and r.rollout.outcome == "missed"]
    unproposed_bad = [r for r in bad if r.rollout is None]
    promoted = [r for r in good if r.rollout is not None and r.rollout.outcome == "promoted"]
    wrong = [
        r for r in good if r.rollout is not None and r.rollout.outcome == "wrongly_rolled_back"
    ]
    unproposed_good = [r for r in good if r.rollout is None]
    opened = [r for r in results if r.rollout is not None and r.rollout.outcome == "open"]
    stages = Counter(f"{r.rollout.weight:.0%}" for r in caught if r.rollout is not None)
    by_kind = Counter(r.case.kind for r in caught)
    at_kind = Counter(
        (r.case.kind, f"{r.rollout.weight:.0%}") for r in caught if r.rollout is not None
    )
    kinds = Counter(r.case.kind for r in bad)
    saved = sum(r.savings for r in results)
    oracle = sum(r.oracle_savings for r in results)
    end = sum(r.end_savings for r in results)
    end_oracle = sum(r.oracle_end_savings for r in results)
    end_right = sum(1 for r in results if (r.final_model == SMALL) == r.case.good)
    lines = [
        f"rollouts: {len(results)} ({len(good)} good candidates, {len(bad)} bad: "
        + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        + ")",
        f"bad canaries caught (rolled back before promotion): {len(caught)}/{len(bad)} = "
        f"{_pct(len(caught), len(bad))}; missed (promoted): {len(missed)}; never proposed: "
        f"{len(unproposed_bad)}",
        "  caught at weight: "
        + ", ".join(f"{k} {v}" for k, v in sorted(stages.items(), key=lambda kv: float(kv[0][:-1])))
        + "; by kind: "
        + ", ".join(f"{k} {v}/{kinds[k]}" for k, v in sorted(by_kind.items())),
        "  weight by kind: "
        + "; ".join(
            f"{kind} "
            + ", ".join(
                f"{w} {n}"
                for (k, w), n in sorted(
                    at_kind.items(), key=lambda kv: (kv[0][0], float(kv[0][1][:-1]))
                )
                if k == kind
            )
            for kind in sorted(by_kind)
        ),
        f"good canaries promoted: {len(promoted)}/{len(good)} = {_pct(len(promoted), len(good))}; "
        f"wrongly rolled back: {len(wrong)}/{len(good)} = {_pct(len(wrong), len(good))}; "
        f"never proposed: {len(unproposed_good)}; still open at the end: {len(opened)}",
        f"savings over the simulated runs (exploration included): {saved / len(results):.1%} "
        f"of the default model's cost vs the oracle's {oracle / len(results):.1%} = "
        f"{saved / oracle:.0%} of the oracle's"
        if oracle
        else "no savings possible",
        f"ended on the oracle's model: {end_right}/{len(results)}; cost per call at the end: "
        f"{end / len(results):.1%} saved vs the oracle's {end_oracle / len(results):.1%} = "
        + (f"{end / end_oracle:.0%} of the oracle's" if end_oracle else "-"),
    ]
    if promoted:
        minutes = [r.minutes for r in promoted]
        lines.append(
            f"simulated minutes to a finished promotion (watch included): median "
            f"{statistics.median(minutes):.0f}"
        )
    if caught:
        minutes = [r.minutes for r in caught]
        lines.append(
            f"simulated minutes to a caught bad canary: median {statistics.median(minutes):.0f}"
        )
    if wrong:
        lines.append(
            "wrong rollbacks: "
            + "; ".join(
                f"#{r.case.index} {r.rollout.reason[:80]}" for r in wrong if r.rollout is not None
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rate", type=float, default=30.0, help="calls/s of the task")
    parser.add_argument("--min-samples", type=int, default=50, help="canary.min_samples")
    parser.add_argument("--stage-minutes", type=float, default=2.0)
    parser.add_argument("--watch-minutes", type=float, default=5.0)
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument(
        "--fleet", choices=["binary"], help="fleet mode: many binary-quality tasks at once"
    )
    parser.add_argument(
        "--shadow", action="store_true", help="fleet: shadow-evaluate the candidate"
    )
    parser.add_argument("--shadow-share", type=float, default=0.5, help="fleet: shadow.share")
    parser.add_argument("--hours", type=float, default=24.0, help="fleet: simulated hours")
    parser.add_argument("--tasks", type=int, default=57, help="fleet: how many tasks")
    parser.add_argument("--scenario-seed", type=int, default=15, help="fleet: the fleet's seed")
    parser.add_argument("--tolerance", type=float, default=0.02, help="fleet: quality tolerance")
    parser.add_argument("--tick-seconds", type=float, default=60.0, help="fleet: config re-read")
    parser.add_argument("--json", type=Path, help="fleet: also write the report as JSON here")
    parser.add_argument(
        "--strategies", action="store_true", help="good and bad cases of the other strategies"
    )
    parser.add_argument("--per-side", type=int, default=5, help="strategies: cases per side")
    parser.add_argument(
        "--only", default=",".join(STRATEGY_NAMES), help="strategies: comma-separated names"
    )
    parser.add_argument("--conflict", action="store_true", help="strategies: the conflict case")
    args = parser.parse_args(argv)
    if args.strategies:
        _strategies(args)
        return
    if args.fleet:
        run = FleetRun(
            tasks=args.tasks,
            scenario_seed=args.scenario_seed,
            hours=args.hours,
            tolerance=args.tolerance,
            shadow=args.shadow,
            shadow_share=args.shadow_share,
            tick=timedelta(seconds=args.tick_seconds),
        )
        report = run_fleet(run)
        print(report.render())
        if args.json is not None:
            args.json.write_text(json.dumps(dataclasses.asdict(report), default=str, indent=1))
        return
    settings = bench_settings(args.min_samples, args.stage_minutes, args.watch_minutes)
    results: list[Result] = []
    began = time.monotonic()
    events = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases(args.rollouts, args.seed):
            result = run_case(case, settings, args.rate, args.max_minutes, Path(tmp))
            results.append(result)
            events += result.events
    wall = time.monotonic() - began
    c = settings.canary
    print(
        f"settings: stages {list(c.stages)}, canary.min_samples {c.min_samples}, "
        f"min_stage_duration {c.min_stage_duration}, alpha {c.alpha}, quality_tolerance "
        f"{settings.decisions.quality_tolerance}, max_latency_increase {c.max_latency_increase}, "
        f"post_promotion_watch {c.post_promotion_watch}; {args.rate:g} calls/s"
    )
    print(summarize(results))
    print(f"{events} simulated calls in {wall:.0f} s ({events / wall:,.0f} calls/s)")


def _strategies(args: argparse.Namespace) -> None:
    settings = bench_settings(args.min_samples, args.stage_minutes, args.watch_minutes)
    began = time.monotonic()
    c = settings.canary
    print(
        f"settings: stages {list(c.stages)}, canary.min_samples {c.min_samples}, "
        f"min_stage_duration {c.min_stage_duration}, max_latency_increase "
        f"{c.max_latency_increase}, quality_tolerance {settings.decisions.quality_tolerance}, "
        f"post_promotion_watch {c.post_promotion_watch}; {args.per_side} good and "
        f"{args.per_side} bad cases per strategy, seed {args.seed}, at most "
        f"{args.max_minutes:g} simulated minutes each"
    )
    names = tuple(n for n in args.only.split(",") if n)
    results = run_cases(settings, args.per_side, args.seed, args.max_minutes, names)
    print(summarize_cases(results))
    if args.conflict:
        print(run_conflict(settings, args.max_minutes).render())
    events = sum(r.events for r in results)
    print(f"{events} simulated calls in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
