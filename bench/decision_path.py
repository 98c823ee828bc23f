"""Decision path: what one period of many open rollouts costs the actuator, per (task, period).

One app with ``--tasks`` tasks, each with an open model rollout (baseline ``gpt-4o``, canary
``gpt-4o-mini``, equal binary quality, so every rollout stays open and is judged every period).
Each period, every task's baseline and canary windows go through the real actuator
(``sinks.actuator.Actuator``: sides by variant and version, running totals, the judge, the
verdict and its outbox row) on a SQLite file or ``--database-url``; CPU time of this process
(the database's own work on SQLite included, PostgreSQL's not). The baseline, measured in
the same run on the same calls, is the processor's own windowing of them
(``operators.window_stats.summarize``), so the ratio says how much the decision path adds to
the work the dataflow does anyway::

    .venv/bin/python -m bench.decision_path --tasks 57 --periods 60
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from core.app_config import TaskConfig
from core.decisions import Decision, stable_id
from core.events import LlmCall
from core.settings import Settings
from core.stats import WindowKey, WindowStats
from operators.window_stats import summarize
from rollout.canary_controller import start_canary
from rollout.config_manager import ConfigManager
from sinks.actuator import Actuator, PeriodWork
from storage.database import create_db_engine, migrate, session_scope

T0 = datetime(2026, 12, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _calls(
    rng: np.random.Generator, start: datetime, task: str, model: str, variant: str, n: int
) -> list[LlmCall]:
    lat = rng.lognormal(6.0, 0.3, n)
    q = rng.binomial(1, 0.8, n)
    return [
        LlmCall(
            event_id=f"{task}-{variant}-{start.isoformat()}-{i}",
            timestamp=start + timedelta(seconds=59 * i / n),
            app="fleet",
            task=task,
            model=model,
            latency_ms=float(lat[i]),
            input_tokens=500,
            output_tokens=100,
            cost_usd=0.001,
            quality=float(q[i]),
            variant=variant,  # type: ignore[arg-type]
            config_version=2 + int(task.split("-")[1]),
        )
        for i in range(n)
    ]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=57)
    parser.add_argument("--periods", type=int, default=30)
    parser.add_argument("--calls", type=int, default=60, help="calls per task and period")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="decision-path-")
    url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    base = Settings()
    settings = base.with_overrides(
        canary=dataclasses.replace(base.canary, max_rollout_duration=timedelta(days=30))
    )
    tasks = [f"task-{i}" for i in range(args.tasks)]
    manager = ConfigManager(engine, clock=lambda: T0 - MINUTE)
    manager.update(
        "fleet", {t: TaskConfig(model="gpt-4o") for t in tasks}, author="bench", reason="start"
    )
    for t in tasks:
        with session_scope(engine) as s:
            start_canary(
                s,
                Decision(id=stable_id("bench", t), created_at=T0, app="fleet", task=t,
                         strategy="model_selection", action={"model": "gpt-4o-mini"},
                         rationale="bench"),
                settings=settings.canary,
                now=T0,
            )  # fmt: skip
    actuator = Actuator(engine, settings, None)
    rng = np.random.default_rng(1)
    window_s = decide_s = 0.0
    per_period: list[float] = []
    for p in range(args.periods):
        start = T0 + p * MINUTE
        windows: dict[str, list[WindowStats]] = {}
        for t in tasks:
            batches = [
                ("gpt-4o", "baseline", _calls(rng, start, t, "gpt-4o", "baseline", args.calls)),
                ("gpt-4o-mini", "canary", _calls(rng, start, t, "gpt-4o-mini", "canary", 6)),
            ]
            began = time.process_time()
            windows[t] = [
                summarize("tumbling", start, start + MINUTE, WindowKey("fleet", t, m, v), calls)
                for m, v, calls in batches
            ]
            window_s += time.process_time() - began
        work = PeriodWork(
            app="fleet", window_start=start, window_end=start + MINUTE, proposals=[],
            windows=windows,
        )  # fmt: skip
        began = time.process_time()
        actuator.apply(work)
        per_period.append(time.process_time() - began)
        decide_s += per_period[-1]
    n = args.tasks * args.periods
    print(f"tasks {args.tasks}, periods {args.periods}, calls per task-period {args.calls + 6}")
    steady = sorted(per_period[len(per_period) // 2 :])
    print(f"decision path: {decide_s / n * 1e3:.3f} ms CPU per (task, period)")
    print(
        f"steady state (second half, median period, weights settled): "
        f"{steady[len(steady) // 2] / args.tasks * 1e3:.3f} ms CPU per (task, period)"
    )
    print(
        f"baseline (windowing the same calls): {window_s / n * 1e3:.3f} ms CPU per (task, period)"
    )
    print(f"ratio decision path / windowing: {decide_s / window_s:.2f}")
    engine.dispose()


if __name__ == "__main__":
    main()
