"""The processor's windowed aggregation written with Bytewax's own operators.

``KafkaSource`` (one item per record), ``json.loads``, ``key_on`` the app, ``collect_window``
on an ``EventClock`` (the record's ``timestamp``, 30 s of lateness) with a
``SlidingWindower`` of 300 s every 60 s; each window's calls, errors, token sums and latency
p50/p95/p99 (the processor's defaults, exact percentiles as the processor's). Reads the topic
to its end (``tail=False``) and prints how many windows it closed.

    BENCH_BOOTSTRAP=host:port BENCH_TOPIC=t .venv/bin/python -m bytewax.run bench.bytewax_window
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import OFFSET_BEGINNING

__all__ = ["flow"]

_ALIGN = datetime(2026, 1, 1, tzinfo=UTC)


class _CountPartition(StatelessSinkPartition[Any]):
    def __init__(self) -> None:
        self.windows = 0

    def write_batch(self, items: list[Any]) -> None:
        self.windows += len(items)

    def close(self) -> None:
        print(f"windows {self.windows}", flush=True)


class _CountSink(DynamicSink[Any]):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountPartition:
        return _CountPartition()


def _event_time(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC)


def _summary(item: tuple[str, tuple[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    app, (window_id, events) = item
    latencies = sorted(e["latency_ms"] for e in events if e.get("latency_ms") is not None)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    return {
        "app": app,
        "window": window_id,
        "calls": len(events),
        "errors": sum(e.get("status", "ok") != "ok" for e in events),
        "input_tokens": sum(e.get("input_tokens") or 0 for e in events),
        "output_tokens": sum(e.get("output_tokens") or 0 for e in events),
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
    }


flow = Dataflow("bench_bytewax_window")
_records = op.input(
    "kafka",
    flow,
    KafkaSource(
        [os.environ["BENCH_BOOTSTRAP"]],
        [os.environ["BENCH_TOPIC"]],
        tail=False,
        starting_offset=OFFSET_BEGINNING,
    ),
)
_events = op.map("decode", _records, lambda msg: json.loads(msg.value))
_keyed = op.key_on("by_app", _events, lambda event: event["app"])
_windows = win.collect_window(
    "window",
    _keyed,
    win.EventClock(_event_time, wait_for_system_duration=timedelta(seconds=30)),
    win.SlidingWindower(
        length=timedelta(seconds=300), offset=timedelta(seconds=60), align_to=_ALIGN
    ),
)
op.output("count", op.map("summary", _windows.down, _summary), _CountSink())
