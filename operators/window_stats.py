"""Window statistics from the calls of one window (pure; exact percentiles).

Calls are turned into :class:`Columns` (numpy arrays) once per time bucket; a window's stats are
computed from the concatenated columns of its buckets, so a call is converted once however many
windows (tumbling, sliding) it belongs to.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import stdtrit

from core.call_batch import F64, I64
from core.events import LlmCall
from core.stats import (
    LatencyStats,
    PairedQuality,
    QualityStats,
    TtftStats,
    WindowKey,
    WindowStats,
)
from operators.pricing import DEFAULT_PRICES, PriceTable

__all__ = [
    "SAMPLE_SIZE",
    "Columns",
    "linear_percentiles",
    "merge_shadow",
    "paired_quality",
    "quality_stats",
    "summarize",
    "summarize_columns",
    "systematic_sample",
]

_PCTS = (50, 90, 95, 99, 100)
_FRACTIONS: F64 = np.true_divide(_PCTS, 100)  # as np.percentile turns percents into fractions
_TTFT_FRACTIONS: F64 = np.true_divide((50, 95), 100)
SAMPLE_SIZE = 256  # values a tumbling window keeps for the canary judge's rank tests


@dataclass(frozen=True, slots=True)
class Columns:
    """The calls of a bucket or window as columns; NaN marks a missing ttft or quality.

    ``latency`` and ``ttft`` are sorted (NaN last), not in call order: a window needs only their
    distribution, and merging its buckets' sorted runs (a sliding window holds five) costs a
    sixth of sorting them anew.
    """

    ts: F64
    latency: F64
    ttft: F64
    quality: F64
    cost: F64
    tokens: I64  # shape (n, 3): input, output, cache read
    ok: npt.NDArray[np.bool_]
    error_types: tuple[str, ...]  # one per failed call
    prompt_hashes: tuple[str, ...]  # one per call that carried one
    fixed: I64  # prompt_tokens_fixed per call; -1 where not reported
    shadow: dict[str, PairedQuality] = field(default_factory=dict)
    """Per shadow model, the paired sums of the calls that carry both scores."""

    @staticmethod
    def from_calls(calls: Sequence[LlmCall], prices: PriceTable = DEFAULT_PRICES) -> Columns:
        """Columns of ``calls`` (costs from the price table where the call has none)."""
        nan = math.nan
        pairs = [
            (c.shadow_model, c.quality, c.shadow_quality)
            for c in calls
            if c.shadow_model is not None and c.shadow_quality is not None and c.quality is not None
        ]
        return Columns(
            ts=np.fromiter((c.timestamp.timestamp() for c in calls), np.float64, len(calls)),
            latency=np.sort(np.fromiter((c.latency_ms for c in calls), np.float64, len(calls))),
            ttft=np.sort(
                np.fromiter(
                    (nan if c.ttft_ms is None else c.ttft_ms for c in calls),
                    np.float64,
                    len(calls),
                )
            ),
            quality=np.fromiter(
                (nan if c.quality is None else c.quality for c in calls), np.float64, len(calls)
            ),
            cost=np.fromiter((prices.call_cost(c) or 0.0 for c in calls), np.float64, len(calls)),
            tokens=np.array(
                [(c.input_tokens, c.output_tokens, c.cache_read_tokens or 0) for c in calls],
                dtype=np.int64,
            ).reshape(len(calls), 3),
            ok=np.fromiter((c.status == "ok" for c in calls), np.bool_, len(calls)),
            error_types=tuple(c.error_type or "unknown" for c in calls if c.status == "error"),
            prompt_hashes=tuple(c.prompt_hash for c in calls if c.prompt_hash),
            fixed=np.array(
                [-1 if c.prompt_tokens_fixed is None else c.prompt_tokens_fixed for c in calls],
                dtype=np.int64,
            ),
            shadow=paired_quality(pairs),
        )

    @staticmethod
    def concat(parts: Sequence[Columns]) -> Columns:
        """One set of columns from several (a window from its buckets)."""
        if len(parts) == 1:
            return parts[0]
        return Columns(
            ts=np.concatenate([p.ts for p in parts]),
            # A stable sort is numpy's timsort, which merges the parts' sorted runs.
            latency=np.sort(np.concatenate([p.latency for p in parts]), kind="stable"),
            ttft=np.sort(np.concatenate([p.ttft for p in parts]), kind="stable"),
            quality=np.concatenate([p.quality for p in parts]),
            cost=np.concatenate([p.cost for p in parts]),
            tokens=np.concatenate([p.tokens for p in parts]),
            ok=np.concatenate([p.ok for p in parts]),
            error_types=tuple(e for p in parts for e in p.error_types),
            prompt_hashes=tuple(h for p in parts for h in p.prompt_hashes),
            fixed=np.concatenate([p.fixed for p in parts]),
            shadow=merge_shadow(p.shadow for p in parts),
        )


def paired_quality(pairs: Iterable[tuple[str, float, float]]) -> dict[str, PairedQuality]:
    """Per shadow model, the sums of (shadow model, served score, shadow score) triples."""
    sums: dict[str, list[float]] = {}
    for model, served, shadow in pairs:
        acc = sums.setdefault(model, [0.0, 0.0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += served
        acc[2] += shadow
        acc[3] += (shadow - served) ** 2
    return {m: PairedQuality(int(a[0]), a[1], a[2], a[3]) for m, a in sorted(sums.items())}


def merge_shadow(parts: Iterable[Mapping[str, PairedQuality]]) -> dict[str, PairedQuality]:
    """Several windows' (or buckets') paired sums pooled per shadow model."""
    out: dict[str, PairedQuality] = {}
    for part in parts:
        for model, pq in part.items():
            old = out.get(model)
            out[model] = pq if old is None else old.merge(pq)
    return dict(sorted(out.items())) if len(out) > 1 else out


def _quality(scores: F64) -> QualityStats:
    n = len(scores)
    if n == 0:
        return quality_stats(0, None, None)
    mean = float(scores.mean())
    return quality_stats(n, mean, float(scores.std(ddof=1)) if n > 1 else None)


def quality_stats(n: int, mean: float | None, stddev: float | None) -> QualityStats:
    """Quality stats of ``n`` scores with this mean and sample stddev (95 % t-interval)."""
    if n == 0 or mean is None:
        return QualityStats(count=n, mean=None, stddev=None, ci95_low=None, ci95_high=None)
    if n == 1 or stddev is None:
        return QualityStats(count=n, mean=mean, stddev=None, ci95_low=None, ci95_high=None)
    half = float(stdtrit(n - 1, 0.975)) * stddev / math.sqrt(n)  # Student t quantile
    return QualityStats(
        count=n,
        mean=mean,
        stddev=stddev,
        ci95_low=max(0.0, mean - half),
        ci95_high=min(1.0, mean + half),
    )


def linear_percentiles(ordered: F64, fractions: F64 = _FRACTIONS) -> F64:
    """``np.percentile(values, 100 * fractions)`` of sorted ``values``, bit for bit.

    numpy's default (linear) method, the same arithmetic in the same order, without its
    partition and checks: a window sorts its latencies once and takes every percentile (and the
    canary sample) from that.
    """
    n = len(ordered)
    virtual = (n - 1) * fractions
    previous = np.floor(virtual)
    above = virtual >= n - 1
    previous[above] = -1  # numpy's marker for "the last value"
    below = previous.astype(np.intp)
    after = below + 1
    after[above] = -1
    gamma = virtual - below
    a, b = ordered[below], ordered[after]
    diff = b - a
    result: F64 = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5)
    return result


def systematic_sample(
    values: np.ndarray, size: int = SAMPLE_SIZE, *, ordered: bool = False
) -> tuple[float, ...]:
    """Every value when there are at most ``size``, else ``size`` evenly spaced order statistics.

    ``ordered`` says ``values`` are sorted already.
    """
    ordered_values = values if ordered else np.sort(values)
    if len(ordered_values) > size:
        picks = np.linspace(0, len(ordered_values) - 1, size).round().astype(np.int64)
        ordered_values = ordered_values[picks]
    return tuple(ordered_values.tolist())


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def summarize_columns(
    kind: Literal["tumbling", "sliding"],
    window_start: datetime,
    window_end: datetime,
    key: WindowKey,
    cols: Columns,
    revision: int = 0,
) -> WindowStats:
    """Aggregate one window of one segment from its columns (at least one call).

    Percentiles use numpy's default (linear) method, the definition tests pin them against.
    Costs the price table does not know count as 0; ``cost_per_success_usd`` is ``None``
    without a successful call.
    """
    n = len(cols.ts)
    if n == 0:
        raise ValueError("a window holds at least one call")
    ok = int(cols.ok.sum())
    latencies = cols.latency  # sorted
    p50, p90, p95, p99, top = linear_percentiles(latencies).tolist()
    ttfts = cols.ttft[~np.isnan(cols.ttft)]  # sorted
    ttft = None
    if len(ttfts):
        t50, t95 = linear_percentiles(ttfts, _TTFT_FRACTIONS).tolist()
        ttft = TtftStats(p50=t50, p95=t95)
    cost = float(cols.cost.sum())
    reported = cols.fixed >= 0
    fixed_sum = int(cols.fixed[reported].sum())
    fixed_inputs = int(cols.tokens[reported, 0].sum())
    distinct = len(set(cols.prompt_hashes))
    hashed = len(cols.prompt_hashes)
    span = (window_end - window_start).total_seconds()
    seconds = np.floor(cols.ts)
    per_second = np.bincount((seconds - seconds.min()).astype(np.int64))
    tokens = cols.tokens.sum(axis=0)
    qualities = cols.quality[~np.isnan(cols.quality)]
    return WindowStats(
        kind=kind,
        window_start=window_start,
        window_end=window_end,
        app=key.app,
        task=key.task,
        model=key.model,
        variant=key.variant,
        config_version=key.config_version,
        shadow=cols.shadow,
        count=n,
        ok_count=ok,
        error_count=n - ok,
        errors_by_type=dict(sorted(Counter(cols.error_types).items())),
        latency_ms=LatencyStats(p50=p50, p90=p90, p95=p95, p99=p99, max=top),
        ttft_ms=ttft,
        input_tokens=int(tokens[0]),
        output_tokens=int(tokens[1]),
        cache_read_tokens=int(tokens[2]),
        cost_usd=cost,
        cost_per_success_usd=cost / ok if ok else None,
        quality=_quality(qualities),
        prompt_tokens_fixed=fixed_sum,
        prompt_tokens_fixed_of=fixed_inputs,
        fixed_prompt_share=fixed_sum / fixed_inputs if fixed_inputs else None,
        distinct_prompts=distinct,
        repeat_ratio=(hashed - distinct) / hashed if hashed else 0.0,
        rate_per_s=n / span if span > 0 else float(n),
        peak_rate_per_s=float(per_second.max()),
        first_event_at=_utc(float(cols.ts.min())),
        last_event_at=_utc(float(cols.ts.max())),
        revision=revision,
        latency_sample=systematic_sample(latencies, ordered=True) if kind == "tumbling" else (),
        quality_sample=systematic_sample(qualities) if kind == "tumbling" else (),
    )


def summarize(
    kind: Literal["tumbling", "sliding"],
    window_start: datetime,
    window_end: datetime,
    key: WindowKey,
    calls: Sequence[LlmCall],
) -> WindowStats:
    """Aggregate the calls of one window of one segment (see :func:`summarize_columns`)."""
    if not calls:
        raise ValueError("a window holds at least one call")
    return summarize_columns(kind, window_start, window_end, key, Columns.from_calls(calls))
