"""Window statistics from the calls of one closed window (pure, exact percentiles)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import numpy as np
from scipy import stats as sps

from core.events import LlmCall
from core.stats import LatencyStats, QualityStats, TtftStats, WindowKey, WindowStats
from operators.pricing import call_cost

__all__ = ["summarize"]


def _percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    # numpy's default ("linear") interpolation: the definition a test pins them against.
    return [float(v) for v in np.percentile(np.asarray(values, dtype=float), qs)]


def _quality(scores: list[float]) -> QualityStats:
    n = len(scores)
    if n == 0:
        return QualityStats(count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None)
    arr = np.asarray(scores, dtype=float)
    mean = float(arr.mean())
    if n == 1:
        return QualityStats(count=1, mean=mean, stddev=None, ci95_low=None, ci95_high=None)
    stddev = float(arr.std(ddof=1))
    half = float(sps.t.ppf(0.975, n - 1)) * stddev / math.sqrt(n)
    return QualityStats(
        count=n,
        mean=mean,
        stddev=stddev,
        ci95_low=max(0.0, mean - half),
        ci95_high=min(1.0, mean + half),
    )


def summarize(
    kind: Literal["tumbling", "sliding"],
    window_start: datetime,
    window_end: datetime,
    key: WindowKey,
    calls: Sequence[LlmCall],
) -> WindowStats:
    """Aggregate the calls of one window of one segment.

    Args:
        kind: Tumbling or sliding.
        window_start: Inclusive start (aware UTC).
        window_end: Exclusive end (aware UTC).
        key: The segment.
        calls: The window's calls, at least one, in any order.

    Returns:
        The statistics of CONTRACT.md §3. Costs the price table does not know count as 0 and
        are visible as such; ``cost_per_success_usd`` is ``None`` without a successful call.
    """
    if not calls:
        raise ValueError("a window holds at least one call")
    ok = sum(1 for c in calls if c.status == "ok")
    errors = Counter(c.error_type or "unknown" for c in calls if c.status == "error")
    p50, p90, p95, p99, top = _percentiles([c.latency_ms for c in calls], (50, 90, 95, 99, 100))
    ttfts = [c.ttft_ms for c in calls if c.ttft_ms is not None]
    ttft = TtftStats(*_percentiles(ttfts, (50, 95))) if ttfts else None
    cost = sum(call_cost(c) or 0.0 for c in calls)
    prompts = [c.prompt_hash for c in calls if c.prompt_hash]
    distinct = len(set(prompts))
    times = [c.timestamp for c in calls]
    first, last = min(times), max(times)
    per_second = Counter(int(t.timestamp()) for t in times)
    span = (window_end - window_start).total_seconds()
    return WindowStats(
        kind=kind,
        window_start=window_start,
        window_end=window_end,
        app=key.app,
        task=key.task,
        model=key.model,
        variant=key.variant,
        count=len(calls),
        ok_count=ok,
        error_count=len(calls) - ok,
        errors_by_type=dict(sorted(errors.items())),
        latency_ms=LatencyStats(p50=p50, p90=p90, p95=p95, p99=p99, max=top),
        ttft_ms=ttft,
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        cache_read_tokens=sum(c.cache_read_tokens or 0 for c in calls),
        cost_usd=cost,
        cost_per_success_usd=cost / ok if ok else None,
        quality=_quality([c.quality for c in calls if c.quality is not None]),
        distinct_prompts=distinct,
        repeat_ratio=(len(prompts) - distinct) / len(prompts) if prompts else 0.0,
        rate_per_s=len(calls) / span if span > 0 else float(len(calls)),
        peak_rate_per_s=float(max(per_second.values())),
        first_event_at=first,
        last_event_at=last,
    )
