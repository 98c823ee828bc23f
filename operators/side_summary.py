"""What one side of a rollout served, as sums that pool by addition (the judge's input).

A :class:`SideSummary` is built from the processor's tumbling windows (:meth:`SideSummary.of`)
and merged period by period into a rollout's running totals; the judge
(:mod:`operators.judge`) reads means and variances from its sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np

from core.stats import PairedQuality, WindowStats

__all__ = ["LATENCY_SAMPLE", "SideSummary", "Stratum"]

LATENCY_SAMPLE = 128  # latencies a side keeps for the p95/p99 gates (sorted, evenly spaced)

_SUMMED = (
    "calls",
    "errors",
    "cost_usd",
    "quality_count",
    "quality_sum",
    "quality_sq_sum",
    "log_latency_n",
    "log_latency_sum",
    "log_latency_sq_sum",
)


def _summed(sides: Sequence[SideSummary]) -> dict[str, Any]:
    """Each additive field summed over ``sides``."""
    return {name: sum(getattr(s, name) for s in sides) for name in _SUMMED}


def _thin(values: Sequence[float], size: int) -> tuple[float, ...]:
    """At most ``size`` values evenly spaced over the sorted ``values`` (all when fewer)."""
    if size <= 0:
        return ()
    ordered = sorted(values)
    if len(ordered) <= size:
        return tuple(ordered)
    stride = -(-len(ordered) // size)
    return tuple(ordered[stride // 2 :: stride])


class SideSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What one side of a rollout served: counts, cost, and sums that pool by addition.

    ``log_latency_*`` are sums of ``ln(1 + latency_ms)`` over calls (estimated from each
    window's systematic latency sample, weighted by its calls); ``latency`` is a bounded
    sample for the percentile gates; ``shadow`` holds shadow models' paired quality.
    """

    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    quality_count: int = 0
    quality_sum: float = 0.0
    quality_sq_sum: float = 0.0
    log_latency_n: float = 0.0
    log_latency_sum: float = 0.0
    log_latency_sq_sum: float = 0.0
    latency: tuple[float, ...] = ()
    shadow: dict[str, PairedQuality] = msgspec.field(default_factory=dict)

    @property
    def ok(self) -> int:
        """Successful calls."""
        return self.calls - self.errors

    @property
    def error_rate(self) -> float:
        """Errors over calls (0 without calls)."""
        return self.errors / self.calls if self.calls else 0.0

    @property
    def cost_per_success(self) -> float | None:
        """Spend over successful calls."""
        return self.cost_usd / self.ok if self.ok else None

    @property
    def quality_mean(self) -> float | None:
        """Mean quality score (None without scores)."""
        return self.quality_sum / self.quality_count if self.quality_count else None

    def merge(self, other: SideSummary) -> SideSummary:
        """Both sides' calls pooled (the latency sample keeps each side's share of calls)."""
        if not other.calls and not other.quality_count and not other.shadow:
            return self
        if not self.calls and not self.quality_count and not self.shadow:
            return other
        calls = self.calls + other.calls  # the latency sample keeps each side's share
        if len(self.latency) + len(other.latency) <= LATENCY_SAMPLE:
            latency = tuple(sorted(self.latency + other.latency))
        else:
            k = round(LATENCY_SAMPLE * self.calls / calls) if calls else LATENCY_SAMPLE // 2
            latency = tuple(
                sorted(_thin(self.latency, k) + _thin(other.latency, LATENCY_SAMPLE - k))
            )
        shadow = dict(self.shadow)
        for model, pairs in other.shadow.items():
            shadow[model] = shadow[model].merge(pairs) if model in shadow else pairs
        return SideSummary(**_summed((self, other)), latency=latency, shadow=shadow)

    @classmethod
    def pooled(cls, sides: Sequence[SideSummary]) -> SideSummary:
        """The sides' counts and sums pooled; the latency sample is the last side's (shown)."""
        if not sides:
            return cls()
        return cls(**_summed(sides), latency=sides[-1].latency)

    @classmethod
    def of_window(cls, w: WindowStats) -> SideSummary:
        """One tumbling window's calls."""
        q = w.quality
        q_sum = (q.mean or 0.0) * q.count
        q_sq = (q.stddev or 0.0) ** 2 * (q.count - 1) + (q.mean or 0.0) ** 2 * q.count
        n_lat = log_sum = log_sq = 0.0
        if w.latency_sample and w.count:
            logs = np.log1p(np.asarray(w.latency_sample, dtype=np.float64))
            n_lat = float(w.count)
            log_sum = float(logs.mean()) * n_lat
            log_sq = float((logs * logs).mean()) * n_lat
        return cls(
            calls=w.count,
            errors=w.error_count,
            cost_usd=w.cost_usd,
            quality_count=q.count,
            quality_sum=q_sum,
            quality_sq_sum=q_sq if q.count else 0.0,
            log_latency_n=n_lat,
            log_latency_sum=log_sum,
            log_latency_sq_sum=log_sq,
            latency=_thin(w.latency_sample, LATENCY_SAMPLE),
            shadow=dict(w.shadow),
        )

    @classmethod
    def of(cls, windows: Iterable[WindowStats]) -> SideSummary:
        """Pool tumbling windows."""
        out = cls()
        for w in windows:
            out = out.merge(cls.of_window(w))
        return out


Stratum = tuple[SideSummary, SideSummary]  # (baseline, canary) over one weight
