"""CPU per period of each analyzer, against the window-stats step of the same periods.

``python -m bench.analyzer_cost [--days D] [--tasks T] [--calls C]``

Synthetic LLM telemetry (seeded): ``T`` tasks of one app, ``C`` calls per task per 5-minute
period for ``D`` days, lognormal latencies with a daily wave, 1 % errors, quality scores. Each
period's calls are first summarised into tumbling windows (:func:`operators.window_stats.summarize`,
the step every period pays anyway: the baseline), then every analyzer of
:func:`operators.analyzers.build_analyzers` judges the period (the anomaly analyzer reading the
pattern analyzer's profiles, as the runner hands them over), and so do three variants of the
anomaly analyzer: learning its own copy of the profiles, and with its newer parts off as well
(``anomaly.season_gain`` 0, ``drift.delta`` 0: the incident detector alone). Each gets its
CPU time (``time.process_time``) summed over the periods; the table shows microseconds per
period and the ratio to the window-stats step measured in the same run, so the figures hold on
a busy machine where absolute times do not.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from core.events import LlmCall
from core.insights import WindowGroup
from core.settings import Settings, updated
from core.stats import WindowKey, WindowStats
from operators.analyzers import AnomalyAnalyzer, build_analyzers
from operators.analyzers.base import Analyzer, PeerReader
from operators.window_stats import summarize

PERIOD = timedelta(minutes=5)
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def period_calls(rng: random.Random, p: int, tasks: int, calls: int) -> dict[str, list[LlmCall]]:
    """The calls of period ``p``, per task (seeded, so every run sees the same telemetry)."""
    start = T0 + p * PERIOD
    wave = 1.0 + 0.3 * math.sin(2 * math.pi * (p % 288) / 288)
    out: dict[str, list[LlmCall]] = {}
    for t in range(tasks):
        task = f"task{t}"
        out[task] = [
            LlmCall(
                event_id=f"{p}-{t}-{i}",
                timestamp=start + timedelta(seconds=rng.uniform(0, 299)),
                app="bench",
                task=task,
                model="m1",
                latency_ms=wave * rng.lognormvariate(6.0, 0.4),
                input_tokens=400,
                output_tokens=120,
                cost_usd=0.0004,
                status="error" if rng.random() < 0.01 else "ok",
                quality=min(1.0, max(0.0, rng.gauss(0.85, 0.1))),
            )
            for i in range(calls)
        ]
    return out


def measure(days: int, tasks: int, calls: int) -> dict[str, float]:
    """CPU seconds per period of the window-stats step and of every analyzer."""
    settings = Settings()
    quiet = updated(settings.analyzers, anomaly__season_gain=0.0, drift__delta=0.0)
    no_drift = updated(settings.analyzers, drift__delta=0.0)
    variants: list[tuple[str, Analyzer[Any]]] = [(a.name, a) for a in build_analyzers(settings)]
    variants += [
        ("anomaly: own pattern copy", AnomalyAnalyzer(settings.analyzers)),
        ("anomaly: incident detector only", AnomalyAnalyzer(quiet)),
        ("anomaly: without drift", AnomalyAnalyzer(no_drift)),
    ]
    states = {label: a.initial_state() for label, a in variants}
    cpu = {label: 0.0 for label, _ in variants} | {"window stats (baseline)": 0.0}
    rng = random.Random(19)
    periods = days * 288
    for p in range(periods):
        by_task = period_calls(rng, p, tasks, calls)
        start = T0 + p * PERIOD
        began = time.process_time()
        windows: list[WindowStats] = [
            summarize("tumbling", start, start + PERIOD, WindowKey("bench", task, "m1", "b"), cs)
            for task, cs in by_task.items()
        ]
        cpu["window stats (baseline)"] += time.process_time() - began
        group = WindowGroup(
            app="bench", window_start=start, window_end=start + PERIOD, windows=windows
        )
        before = dict(states)
        for label, analyzer in variants:
            began = time.process_time()
            if isinstance(analyzer, PeerReader) and label == analyzer.name:
                # As the runner does: the pattern analyzer's profiles before the period.
                states[label], _ = analyzer.analyze_with(
                    states[label], group, before[analyzer.reads]
                )
            else:
                states[label], _ = analyzer.analyze(states[label], group)
            cpu[label] += time.process_time() - began
    return {label: seconds / periods for label, seconds in cpu.items()}


def render(
    per_period: dict[str, float], days: int, tasks: int, calls: int, console: Console
) -> None:
    """Print microseconds per period and the ratio to the window-stats step."""
    base = per_period["window stats (baseline)"]
    table = Table(
        title=f"CPU per 5-minute period: {tasks} tasks x {calls} calls, {days} days "
        f"({days * 288} periods)"
    )
    table.add_column("step")
    table.add_column("µs / period", justify="right")
    table.add_column("x window stats", justify="right")
    for label, seconds in per_period.items():
        table.add_row(label, f"{seconds * 1e6:,.0f}", f"{seconds / base:.2f}")
    console.print(table)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.analyzer_cost")
    parser.add_argument("--days", type=int, default=3, help="simulated days (288 periods each)")
    parser.add_argument("--tasks", type=int, default=4, help="tasks of the app")
    parser.add_argument("--calls", type=int, default=50, help="calls per task per period")
    args = parser.parse_args(argv)
    per_period = measure(args.days, args.tasks, args.calls)
    render(per_period, args.days, args.tasks, args.calls, Console(width=120))


if __name__ == "__main__":
    main()
