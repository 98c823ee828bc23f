"""The processor's windowed aggregation written the idiomatic way in quix-streams.

Per app (the record key): a hopping window of 300 s every 60 s of event time (the record's
``timestamp``), 30 s grace; each window's calls, errors, token sums and latency p50/p95/p99
from its collected latencies (the processor's defaults: ``processor.sliding_window``,
``sliding_step``, ``allowed_lateness``; exact percentiles, as the processor's). Runs until no
record has arrived for ``--idle`` seconds, then prints the windows it closed.

Its own project (bench/alternatives/pyproject.toml); bench/throughput.py runs it as
``bench/alternatives/.venv/bin/python bench/alternatives/quix_window.py ...``.
"""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta
from typing import Any

from quixstreams import Application
from quixstreams.dataframe.windows import Collect, Count, Sum


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _summary(window: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(x for x in window["latencies"] if x is not None)
    return {
        "start": window["start"],
        "calls": window["calls"],
        "errors": window["errors"],
        "input_tokens": window["input_tokens"],
        "output_tokens": window["output_tokens"],
        "p50": _percentile(latencies, 0.5),
        "p95": _percentile(latencies, 0.95),
        "p99": _percentile(latencies, 0.99),
    }


def main() -> None:
    """Build the application, run it until the topic is idle, print the windows closed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel=logging.WARNING,
    )
    topic = app.topic(
        args.topic,
        value_deserializer="json",
        timestamp_extractor=lambda value, headers, ts, ts_type: int(value["timestamp"]),
    )
    sdf = app.dataframe(topic)
    sdf["is_error"] = sdf.apply(lambda event: int(event.get("status", "ok") != "ok"))
    sdf = (
        sdf.hopping_window(
            duration_ms=timedelta(seconds=300),
            step_ms=timedelta(seconds=60),
            grace_ms=timedelta(seconds=30),
        )
        .agg(
            calls=Count(),
            errors=Sum("is_error"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            latencies=Collect("latency_ms"),
        )
        .final()
    )
    sdf = sdf.apply(_summary)
    closed = [0]

    def count(_: dict[str, Any]) -> None:
        closed[0] += 1

    sdf.update(count)
    app.run(timeout=args.idle, collect=False)
    print(f"windows {closed[0]}", flush=True)


if __name__ == "__main__":
    main()
