"""Merging windows of one segment served under several config versions (pure).

The window state never pools calls of different ``config_version`` s (the canary judge needs
them apart), so one period can hold several windows of one (task, model, variant). Consumers
that judge the segment as a whole (the analyzers, the metrics series) merge them back here:
counts and sums add, quality pools exactly (count, mean, stddev), paired shadow sums add.

Latency percentiles are exact when every window's ``latency_sample`` holds all its calls
(windows of at most :data:`~operators.window_stats.SAMPLE_SIZE` calls); otherwise they come from
the samples (evenly spaced order statistics): the windows' distribution functions, linear
between sample points, weighted by their calls. TTFT percentiles (no sample) are
the call-weighted mean of the windows'; ``peak_rate_per_s`` is the highest window's (exact when
the versions did not serve in the same second, as when a config change takes over); distinct
prompts add (a prompt sent under two versions counts twice).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from core.stats import LatencyStats, QualityStats, TtftStats, WindowStats
from operators.window_stats import (
    SAMPLE_SIZE,
    linear_percentiles,
    merge_shadow,
    quality_stats,
    systematic_sample,
)

__all__ = ["merge_versions", "merge_windows"]


def merge_versions(windows: Iterable[WindowStats]) -> list[WindowStats]:
    """One window per (kind, window_start, app, task, model, variant).

    Windows that differ only in ``config_version`` are merged with :func:`merge_windows`;
    the result keeps the order in which each segment first appears. A window alone in its
    segment is returned as it is.
    """
    groups: dict[tuple[object, ...], list[WindowStats]] = {}
    for w in windows:
        key = (w.kind, w.window_start, w.app, w.task, w.model, w.variant)
        groups.setdefault(key, []).append(w)
    return [ws[0] if len(ws) == 1 else merge_windows(ws) for ws in groups.values()]


def merge_windows(windows: Sequence[WindowStats]) -> WindowStats:
    """The windows (one segment and period, several config versions) as one window.

    ``config_version`` is kept when all windows share it, else None; ``revision`` is the
    highest. See the module docstring for which statistics are exact.

    Raises:
        ValueError: When ``windows`` is empty.
    """
    if not windows:
        raise ValueError("nothing to merge")
    if len(windows) == 1:
        return windows[0]
    first = windows[0]
    n = sum(w.count for w in windows)
    ok = sum(w.ok_count for w in windows)
    cost = sum(w.cost_usd for w in windows)
    errors: Counter[str] = Counter()
    for w in windows:
        errors.update(w.errors_by_type)
    fixed = sum(w.prompt_tokens_fixed for w in windows)
    fixed_of = sum(w.prompt_tokens_fixed_of for w in windows)
    distinct = sum(w.distinct_prompts for w in windows)
    hashed = sum(round(w.distinct_prompts / (1.0 - w.repeat_ratio)) for w in windows)
    span = (first.window_end - first.window_start).total_seconds()
    versions = {w.config_version for w in windows}
    latency, latency_sample = _latency(windows)
    return WindowStats(
        kind=first.kind,
        window_start=first.window_start,
        window_end=first.window_end,
        app=first.app,
        task=first.task,
        model=first.model,
        variant=first.variant,
        count=n,
        ok_count=ok,
        error_count=n - ok,
        errors_by_type=dict(sorted(errors.items())),
        latency_ms=latency,
        ttft_ms=_ttft(windows),
        input_tokens=sum(w.input_tokens for w in windows),
        output_tokens=sum(w.output_tokens for w in windows),
        cache_read_tokens=sum(w.cache_read_tokens for w in windows),
        cost_usd=cost,
        cost_per_success_usd=cost / ok if ok else None,
        quality=_quality(windows),
        distinct_prompts=distinct,
        repeat_ratio=(hashed - distinct) / hashed if hashed else 0.0,
        rate_per_s=n / span if span > 0 else float(n),
        peak_rate_per_s=max(w.peak_rate_per_s for w in windows),
        first_event_at=min(w.first_event_at for w in windows),
        last_event_at=max(w.last_event_at for w in windows),
        revision=max(w.revision for w in windows),
        prompt_tokens_fixed=fixed,
        prompt_tokens_fixed_of=fixed_of,
        fixed_prompt_share=fixed / fixed_of if fixed_of else None,
        latency_sample=latency_sample,
        quality_sample=_quality_sample(windows),
        config_version=versions.pop() if len(versions) == 1 else None,
        shadow=merge_shadow(w.shadow for w in windows),
    )


def _quality(windows: Sequence[WindowStats]) -> QualityStats:
    """Pooled count, mean and sample stddev (Chan et al.'s parallel update), with its CI."""
    n, mean, m2 = 0, 0.0, 0.0
    for w in windows:
        q = w.quality
        if not q.count or q.mean is None:
            continue
        qm2 = (q.stddev or 0.0) ** 2 * (q.count - 1)
        total = n + q.count
        delta = q.mean - mean
        mean += delta * q.count / total
        m2 += qm2 + delta**2 * n * q.count / total
        n = total
    if n == 0:
        return quality_stats(0, None, None)
    return quality_stats(n, mean, math.sqrt(m2 / (n - 1)) if n > 1 else None)


def _complete(windows: Sequence[WindowStats]) -> bool:
    return all(len(w.latency_sample) == w.count for w in windows)


def _latency(windows: Sequence[WindowStats]) -> tuple[LatencyStats, tuple[float, ...]]:
    top = max(w.latency_ms.max for w in windows)
    if _complete(windows):  # every call's latency is at hand: exact
        values = np.sort(np.concatenate([np.asarray(w.latency_sample) for w in windows]))
        p50, p90, p95, p99, _ = linear_percentiles(values).tolist()
        sample = systematic_sample(values, SAMPLE_SIZE, ordered=True)
        return LatencyStats(p50=p50, p90=p90, p95=p95, p99=p99, max=top), sample
    if all(w.latency_sample for w in windows):  # samples of evenly spaced order statistics
        grid = np.unique(np.concatenate([np.asarray(w.latency_sample) for w in windows]))
        cdf = np.zeros(len(grid))
        for w in windows:  # each window's quantile function, linear between its sample points
            ordered = np.asarray(w.latency_sample)
            cdf += w.count * np.interp(grid, ordered, np.linspace(0.0, 1.0, len(ordered)))
        cdf /= sum(w.count for w in windows)
        p50, p90, p95, p99 = np.interp([0.5, 0.9, 0.95, 0.99], cdf, grid).tolist()
        sample = tuple(np.interp(np.linspace(0.0, 1.0, SAMPLE_SIZE), cdf, grid).tolist())
        return LatencyStats(p50=p50, p90=p90, p95=p95, p99=p99, max=top), sample
    n = sum(w.count for w in windows)  # sliding windows keep no sample: call-weighted
    return (
        LatencyStats(
            p50=sum(w.latency_ms.p50 * w.count for w in windows) / n,
            p90=sum(w.latency_ms.p90 * w.count for w in windows) / n,
            p95=sum(w.latency_ms.p95 * w.count for w in windows) / n,
            p99=sum(w.latency_ms.p99 * w.count for w in windows) / n,
            max=top,
        ),
        (),
    )


def _ttft(windows: Sequence[WindowStats]) -> TtftStats | None:
    reported = [(w.ttft_ms, w.count) for w in windows if w.ttft_ms is not None]
    if not reported:
        return None
    if len(reported) == 1:
        return reported[0][0]
    n = sum(c for _, c in reported)
    return TtftStats(
        p50=sum(t.p50 * c for t, c in reported) / n,
        p95=sum(t.p95 * c for t, c in reported) / n,
    )


def _quality_sample(windows: Sequence[WindowStats]) -> tuple[float, ...]:
    parts = [w.quality_sample for w in windows]
    if not any(parts):
        return ()
    return systematic_sample(np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]))
