"""Recorded telemetry for the strategies' backtests, drawn from seeded distributions.

Each :class:`TrafficCase` is one app with one task served by one model for ``minutes`` of
event time (no wall clock): Poisson arrivals at ``rate_per_s`` (doubled in the seconds of
``burst_every_s``, when set), lognormal latency, Poisson token counts, normal quality clipped to
[0, 1], errors of the listed types, and the provider's per-second limit answering
``rate_limited`` to every call beyond it in a second. A share ``repeat_share`` of the calls
repeats one of ``distinct_prompts`` prompts (uniformly); every other call has a prompt of its
own. ``fixed_tokens`` is the system prompt and template part of every call's input.

The events carry no ``cost_usd``: the processor prices them from its table, as it does for an
app that does not report cost. ``python -m tests.strategy_telemetry DIR`` writes every case
to ``DIR/CASE.jsonl``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CASES", "START", "TrafficCase", "draw_events", "write_case"]

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning, event time only


@dataclass(frozen=True, slots=True)
class TrafficCase:
    """The traffic of one (app, task); see the module docstring."""

    app: str
    task: str = "answer"
    model: str = "gpt-4o-mini"
    provider: str = "openai"
    minutes: int = 12
    rate_per_s: float = 4.0
    burst_every_s: int = 0  # every this many seconds one second at twice the rate (0: none)
    latency_median_ms: float = 450.0
    latency_sigma: float = 0.35
    input_tokens: float = 500.0  # mean variable input tokens (the fixed prompt comes on top)
    output_tokens: float = 160.0
    fixed_tokens: int = 0
    repeat_share: float = 0.0
    distinct_prompts: int = 40
    error_share: float = 0.004
    error_types: Mapping[str, float] = field(default_factory=lambda: {"timeout": 1.0})
    provider_limit_per_s: int = 0  # calls beyond this many in a second fail rate_limited (0: none)
    quality_mean: float = 0.86
    quality_sd: float = 0.06
    seed: int = 1


def _arrivals(case: TrafficCase, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    """Arrival offsets in seconds, sorted: a Poisson count per second, uniform within it."""
    seconds = case.minutes * 60
    rates = np.full(seconds, case.rate_per_s)
    if case.burst_every_s > 0:
        rates[:: case.burst_every_s] *= 2.0
    counts = rng.poisson(rates)
    starts = np.repeat(np.arange(seconds, dtype=float), counts)
    return np.sort(starts + rng.random(starts.size))


def draw_events(case: TrafficCase) -> list[dict[str, Any]]:
    """The case's call events in event-time order (deterministic for the case's seed)."""
    rng = np.random.default_rng(case.seed)
    at = _arrivals(case, rng)
    n = at.size
    latency = case.latency_median_ms * np.exp(case.latency_sigma * rng.standard_normal(n))
    tokens_in = rng.poisson(case.input_tokens, n) + case.fixed_tokens
    tokens_out = rng.poisson(case.output_tokens, n)
    quality = np.clip(rng.normal(case.quality_mean, case.quality_sd, n), 0.0, 1.0)
    failed = rng.random(n) < case.error_share
    types = sorted(case.error_types)
    weights = np.array([case.error_types[t] for t in types], dtype=float)
    kind = rng.choice(len(types), size=n, p=weights / weights.sum())
    repeat = rng.random(n) < case.repeat_share
    pool = rng.integers(0, case.distinct_prompts, n)
    second = np.floor(at).astype(int)
    rank = np.zeros(n, dtype=int)  # the call's place within its second
    for i in range(1, n):
        rank[i] = rank[i - 1] + 1 if second[i] == second[i - 1] else 0
    limited = (
        (rank >= case.provider_limit_per_s) if case.provider_limit_per_s else np.zeros(n, bool)
    )
    out: list[dict[str, Any]] = []
    for i in range(n):
        rid = f"{case.app}-{i:06d}"
        event: dict[str, Any] = {
            "event_id": f"ev-{rid}",
            "timestamp": (START + timedelta(seconds=float(at[i])))
            .isoformat()
            .replace("+00:00", "Z"),
            "app": case.app,
            "task": case.task,
            "provider": case.provider,
            "model": case.model,
            "latency_ms": round(float(latency[i]), 2),
            "input_tokens": int(tokens_in[i]),
            "output_tokens": int(tokens_out[i]),
            "request_id": rid,
            "prompt_hash": f"p-{case.app}-{pool[i]}" if repeat[i] else f"u-{rid}",
        }
        if case.fixed_tokens:
            event["prompt_tokens_fixed"] = case.fixed_tokens
        if limited[i]:
            event.update(status="error", error_type="rate_limited", output_tokens=0)
            event["latency_ms"] = round(float(latency[i]) * 0.05, 2)  # refused at once
        elif failed[i]:
            event.update(status="error", error_type=types[int(kind[i])], output_tokens=0)
        else:
            event["quality"] = round(float(quality[i]), 4)
        out.append(event)
    return out


def write_case(case: TrafficCase, path: Path) -> Path:
    """Write the case's events to ``path`` as JSON lines."""
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in draw_events(case)))
    return path


# Each strategy's case where the change pays, and the look-alike where it must not be proposed.
CASES: dict[str, TrafficCase] = {
    # caching: half the calls repeat one of 40 prompts / repeats are rare (5 %)
    "cache-repeats": TrafficCase(app="faq", repeat_share=0.5, seed=11),
    "cache-rare": TrafficCase(app="essays", repeat_share=0.05, seed=12),
    # rate limiting: bursts beyond the provider's 6 calls/s get 429s / no 429 (other errors)
    "limit-throttled": TrafficCase(
        app="crawler", rate_per_s=4.0, burst_every_s=5, provider_limit_per_s=6, seed=21
    ),
    "limit-timeouts": TrafficCase(
        app="reports", rate_per_s=4.0, burst_every_s=5, error_share=0.03, seed=22
    ),
    # batching: many small fast calls / as many, but latency-critical near the 1 s SLO
    "batch-small-fast": TrafficCase(
        app="tagger", rate_per_s=45.0, minutes=4, latency_median_ms=220.0, latency_sigma=0.25,
        input_tokens=120.0, output_tokens=20.0, seed=31,
    ),
    "batch-near-slo": TrafficCase(
        app="autocomplete", rate_per_s=45.0, minutes=4, latency_median_ms=640.0,
        latency_sigma=0.25, input_tokens=120.0, output_tokens=20.0, seed=32,
    ),
    # prompt optimisation: a 2,400-token template on 300 tokens / a 150-token system prompt
    "prompt-fixed-heavy": TrafficCase(
        app="support", fixed_tokens=2400, input_tokens=300.0, output_tokens=120.0, seed=41
    ),
    "prompt-fixed-light": TrafficCase(
        app="chat", fixed_tokens=150, input_tokens=700.0, output_tokens=200.0, seed=42
    ),
    # conflict: repeats worth a cache on a task whose cheaper candidate model is as good
    "cache-and-model": TrafficCase(app="shop", model="gpt-4o", repeat_share=0.5, seed=51),
}  # fmt: skip


def main(argv: list[str]) -> int:
    """Write every case into the folder given (created when missing)."""
    folder = Path(argv[0]) if argv else Path("strategy-telemetry")
    folder.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        print(write_case(case, folder / f"{name}.jsonl"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
