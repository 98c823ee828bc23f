"""Telemetry events (CONTRACT.md §2) of a batch of served calls drawn by the fleet.

Arrays come in, plain dicts go out: the calls, and the ``feedback`` events of the scores sent
later (their own timestamps; the fleet holds them back until their tick). Arrays are turned
into lists once (indexing numpy arrays per element costs more than building the event).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

__all__ = ["Drawn", "render_events"]

_Arr = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class Drawn:
    """One batch of served calls of one (task, model, variant), as drawn."""

    app: str
    task: str
    model: str
    provider: str | None
    variant: str
    version: int | None
    rids: list[str]
    offsets: _Arr  # seconds after ``start``
    latency: _Arr
    ttft: _Arr
    tokens_in: _Arr
    tokens_out: _Arr
    failed: _Arr
    kinds: list[str]  # the error kinds ...
    kind_of: _Arr  # ... and each call's (used where failed)
    quality: _Arr
    scored: _Arr
    later: _Arr
    delay: _Arr
    repeat: _Arr
    pool: _Arr
    costs: _Arr | None
    hit: _Arr
    hit_ms: _Arr
    prompt_tokens_fixed: int
    prompt_cache: bool
    shadow_model: str | None
    shadow_scored: _Arr
    shadow_quality: _Arr


def _utc_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def render_events(d: Drawn, start: datetime) -> list[dict[str, Any]]:
    """The batch's call events and its later ``feedback`` events."""
    out: list[dict[str, Any]] = []
    latency, ttft, hit_ms = d.latency.tolist(), d.ttft.tolist(), d.hit_ms.tolist()
    tokens_in, tokens_out = d.tokens_in.tolist(), d.tokens_out.tolist()
    failed, hit, repeat, pool = (
        d.failed.tolist(),
        d.hit.tolist(),
        d.repeat.tolist(),
        d.pool.tolist(),
    )
    quality, scored, later, delay = (
        d.quality.tolist(),
        d.scored.tolist(),
        d.later.tolist(),
        d.delay.tolist(),
    )
    shadow_scored, shadow_quality = d.shadow_scored.tolist(), d.shadow_quality.tolist()
    costs = d.costs.tolist() if d.costs is not None else None
    offsets, kind_of = d.offsets.tolist(), d.kind_of.tolist()
    fixed = d.prompt_tokens_fixed
    for i, rid in enumerate(d.rids):
        event: dict[str, Any] = {
            "event_id": f"sim-{rid}",
            "timestamp": _utc_ms(start + timedelta(seconds=offsets[i])),
            "app": d.app,
            "task": d.task,
            "model": d.model,
            "latency_ms": round(latency[i], 2),
            "ttft_ms": round(ttft[i], 2),
            "input_tokens": tokens_in[i],
            "output_tokens": tokens_out[i],
            "status": "error" if failed[i] else "ok",
            "request_id": rid,
            "variant": d.variant,
            "prompt_hash": f"p-{d.app}-{d.task}-{pool[i]}" if repeat[i] else f"u-{rid}",
        }
        if d.provider is not None:
            event["provider"] = d.provider
        if costs is not None:
            event["cost_usd"] = costs[i]
        if fixed:
            event["prompt_tokens_fixed"] = fixed
            if d.prompt_cache:
                event["cache_read_tokens"] = fixed
        if hit[i]:  # answered from the app's response cache: no tokens, no cost
            event.update(latency_ms=round(hit_ms[i], 2), input_tokens=0, output_tokens=0)
            event.update(cost_usd=0.0, attributes={"cache_hit": True})
            event.pop("ttft_ms")
            event.pop("cache_read_tokens", None)
        if failed[i]:
            event["error_type"] = d.kinds[kind_of[i]]
        elif scored[i]:
            target = event
            if later[i]:
                target = {
                    "kind": "feedback",
                    "event_id": f"sim-fb-{rid}",
                    "timestamp": event["timestamp"] + int(delay[i] * 1000),
                    "app": d.app,
                    "task": d.task,
                    "request_id": rid,
                }
                out.append(target)
            target["quality"] = round(quality[i], 4)
            if shadow_scored[i] and d.shadow_model is not None:
                target["shadow_model"] = d.shadow_model
                target["shadow_quality"] = round(shadow_quality[i], 4)
        if d.version is not None:
            event["config_version"] = d.version
        out.append(event)
    return out
