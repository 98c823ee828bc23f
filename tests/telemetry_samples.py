"""Deterministic telemetry for tests: two apps over two minutes, duplicates and bad records."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class Sample:
    """The records to send and what a correct processor makes of them."""

    events: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    malformed: dict[bytes, str] = field(default_factory=dict)  # raw → expected reason fragment

    def records(self) -> list[bytes]:
        """Everything to produce, in order: events, then duplicates, then bad records."""
        good = [json.dumps(e).encode() for e in self.events + self.duplicates]
        return good + list(self.malformed)


def make_sample(t0: datetime = T0, seed: int = 7) -> Sample:
    """200 valid calls of two apps across two minutes, 20 duplicates and 5 malformed records."""
    rng = random.Random(seed)
    sample = Sample()
    for i in range(120):
        event: dict[str, Any] = {
            "event_id": f"support-{i}",
            "timestamp": int((t0 + timedelta(seconds=i)).timestamp() * 1000),
            "app": "support",
            "task": "classify",
            "model": "gpt-4o-mini",
            "provider": "openai",
            "latency_ms": round(rng.uniform(200, 1500), 3),
            "input_tokens": 100 + i,
            "output_tokens": 20,
        }
        if i % 10 == 0:
            event |= {"status": "error", "error_type": "timeout"}
        sample.events.append(event)
    for i in range(80):
        sample.events.append(
            {
                "event_id": f"search-{i}",
                "timestamp": (t0 + timedelta(seconds=30 + i)).isoformat(),
                "app": "search",
                "task": "rank",
                "model": "claude-3-5-haiku-latest",
                "latency_ms": round(rng.uniform(50, 400), 3),
                "input_tokens": 50,
                "output_tokens": 10,
                "cost_usd": 0.001,
                "quality": round(rng.uniform(0.5, 1.0), 3),
            }
        )
    sample.duplicates = [sample.events[i] for i in range(0, 200, 10)]
    ts = int(t0.timestamp() * 1000)
    sample.malformed = {
        b"not json at all": "not JSON",
        json.dumps(
            {
                "event_id": "m1",
                "timestamp": ts,
                "app": "support",
                "latency_ms": 1,
                "input_tokens": 1,
                "output_tokens": 1,
            }
        ).encode(): "`$.model`",
        json.dumps(
            {
                "event_id": "m2",
                "timestamp": ts,
                "app": "support",
                "model": "x",
                "latency_ms": -5,
                "input_tokens": 1,
                "output_tokens": 1,
            }
        ).encode(): "`$.latency_ms`",
        json.dumps(
            {
                "event_id": "m3",
                "timestamp": "2026-01-01T12:00:00",
                "app": "support",
                "model": "x",
                "latency_ms": 1,
                "input_tokens": 1,
                "output_tokens": 1,
            }
        ).encode(): "UTC offset",
        json.dumps(
            {
                "event_id": "m4",
                "timestamp": ts,
                "app": "search",
                "model": "x",
                "latency_ms": 1,
                "input_tokens": 1,
                "output_tokens": 1,
                "quality": "high",
            }
        ).encode(): "`$.quality`",
    }
    return sample


def _time(value: int | str) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return datetime.fromisoformat(value).astimezone(UTC)


def expected_windows(sample: Sample, length_s: int = 60) -> dict[tuple[str, str], dict[str, Any]]:
    """(app, window_start RFC 3339) → the stats a correct processor computes, independently.

    Percentiles with numpy's default method, cost from genai-prices' own ``calc_price`` per call.
    """
    import numpy as np
    from genai_prices import Usage, calc_price

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in sample.events:
        at = _time(event["timestamp"])
        start = datetime.fromtimestamp(
            (int(at.timestamp()) // length_s) * length_s, tz=UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        groups.setdefault((event["app"], start), []).append(event)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, events in groups.items():
        latencies = np.array([e["latency_ms"] for e in events])
        cost = 0.0
        for e in events:
            if "cost_usd" in e:
                cost += e["cost_usd"]
            else:
                usage = Usage(input_tokens=e["input_tokens"], output_tokens=e["output_tokens"])
                cost += float(
                    calc_price(usage, e["model"], provider_id=e.get("provider")).total_price
                )
        errors = sum(1 for e in events if e.get("status") == "error")
        out[key] = {
            "task": events[0]["task"],
            "model": events[0]["model"],
            "count": len(events),
            "error_count": errors,
            "ok_count": len(events) - errors,
            "p50": float(np.percentile(latencies, 50)),
            "p95": float(np.percentile(latencies, 95)),
            "p99": float(np.percentile(latencies, 99)),
            "max": float(latencies.max()),
            "input_tokens": sum(e["input_tokens"] for e in events),
            "output_tokens": sum(e["output_tokens"] for e in events),
            "cost_usd": cost,
        }
    return out
