"""Mergeable summaries of many calls: what a busy bucket keeps instead of one row per call.

A :class:`Digest` holds counts, sums, the per-second counts of its span, quantile sketches of
latency, ttft and quality (:class:`~operators.sketch.LogSketch`), and cost and quality as exact
fixed-point integer sums (:func:`fixed_sum`): every value is rounded once, on its own, to a
multiple of 2^-40 USD or 2^-26 quality points, so the sums do not depend on the order or the
batches in which calls arrive (a run resumed from a snapshot, whose batches are cut elsewhere,
gives the same windows to the last bit as one that was not stopped). Digests of disjoint sets of
calls merge into the digest of their union, so a window is summarised from its buckets' digests
in memory that does not grow with the calls it holds. :func:`summarize_digest` gives the same
:class:`~core.stats.WindowStats` fields as ``window_stats.summarize_columns``: counts, sums,
tokens, errors, prompts, rates and the first and last event times exactly; percentiles, the
canary samples' order statistics within the sketch's relative error; cost within 2^-41 USD per
call; the quality mean and stddev within 2^-27 per score.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from core.call_batch import F64, I64
from core.stats import LatencyStats, PairedQuality, TtftStats, WindowKey, WindowStats
from operators.sketch import LogSketch
from operators.window_stats import SAMPLE_SIZE, Columns, merge_shadow, quality_stats

__all__ = ["COST_SCALE", "QUALITY_SCALE", "Digest", "fixed_sum", "summarize_digest"]

_PCTS = np.true_divide((50, 90, 95, 99), 100)
#: Fixed-point scales: cost in units of 2^-40 USD (a chunk's int64 sum holds 8.4M USD), quality
#: in units of 2^-26 (a chunk's int64 sum of squares holds 2,048 scores of 1.0; chunks are 1,024).
COST_SCALE = float(2**40)
QUALITY_SCALE = float(2**26)
_CHUNK = 1024


def fixed_sum(values: F64, scale: float, *, squared: bool = False) -> int:
    """The exact sum of ``values``, each rounded to a multiple of ``1/scale``, in those units.

    With ``squared``, the sum of the rounded values' squares in ``1/scale**2`` units. An integer,
    whatever the order of the values; chunks of 1,024 keep each int64 partial sum in range.
    """
    units = np.rint(values * scale).astype(np.int64)
    if squared:
        units = units * units
    return sum(int(units[i : i + _CHUNK].sum()) for i in range(0, len(units), _CHUNK))


_TTFT_PCTS = np.true_divide((50, 95), 100)


@dataclass(slots=True)
class Digest:
    """Counts, sums and sketches of a set of calls (a bucket's or a window's)."""

    count: int = 0
    ok: int = 0
    first: float = math.inf  # event time (epoch s) of the earliest call
    last: float = -math.inf
    second0: int = 0  # epoch second of per_second[0]
    per_second: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    latency: LogSketch = field(default_factory=LogSketch)
    ttft: LogSketch = field(default_factory=LogSketch)
    quality: LogSketch = field(default_factory=LogSketch)
    quality_n: int = 0
    quality_sum: int = 0  # fixed_sum of the scores (QUALITY_SCALE units)
    quality_sq: int = 0  # fixed_sum of their squares (QUALITY_SCALE**2 units)
    cost_units: int = 0  # fixed_sum of the costs (COST_SCALE units)
    tokens: I64 = field(default_factory=lambda: np.zeros(3, np.int64))
    fixed: int = 0  # prompt_tokens_fixed summed over the calls that reported it
    fixed_of: int = 0  # input tokens of those calls
    errors: Counter[str] = field(default_factory=Counter)
    prompts: set[str] = field(default_factory=set)  # distinct prompt hashes
    hashed: int = 0  # calls that carried a prompt hash
    shadow: dict[str, PairedQuality] = field(default_factory=dict)

    @staticmethod
    def of_columns(cols: Columns) -> Digest:
        """The digest of a bucket's exact columns."""
        digest = Digest()
        digest.add_columns(cols)
        return digest

    def add_columns(self, cols: Columns) -> None:
        """Count the calls of ``cols`` (calls not counted before)."""
        if not len(cols.ts):
            return
        self.count += len(cols.ts)
        self.ok += int(cols.ok.sum())
        self.first, self.last = (
            min(self.first, float(cols.ts.min())),
            max(self.last, float(cols.ts.max())),
        )
        self._count_seconds(np.floor(cols.ts).astype(np.int64))
        self.latency.add(cols.latency)
        self.ttft.add(cols.ttft)
        self.add_quality(cols.quality[~np.isnan(cols.quality)])
        self.cost_units += fixed_sum(cols.cost, COST_SCALE)
        self.tokens = self.tokens + cols.tokens.sum(axis=0)
        reported = cols.fixed >= 0
        self.fixed += int(cols.fixed[reported].sum())
        self.fixed_of += int(cols.tokens[reported, 0].sum())
        self.errors.update(cols.error_types)
        self.prompts.update(cols.prompt_hashes)
        self.hashed += len(cols.prompt_hashes)
        self.shadow = merge_shadow((self.shadow, cols.shadow))

    def _count_seconds(self, seconds: I64) -> None:
        low = (
            int(seconds.min())
            if not len(self.per_second)
            else min(self.second0, int(seconds.min()))
        )
        high = max(int(seconds.max()), self.second0 + len(self.per_second) - 1)
        counts = np.zeros(high - low + 1, np.int64)
        if len(self.per_second):
            start = self.second0 - low
            counts[start : start + len(self.per_second)] = self.per_second
        np.add.at(counts, seconds - low, 1)
        self.second0, self.per_second = low, counts

    @property
    def cost(self) -> float:
        """The calls' cost in USD."""
        return self.cost_units / COST_SCALE

    def quality_moments(self) -> tuple[float | None, float | None]:
        """Mean and sample standard deviation of the pooled scores (None without enough)."""
        n, s1, s2 = self.quality_n, self.quality_sum, self.quality_sq
        if not n:
            return None, None
        mean = s1 / (n * QUALITY_SCALE)
        if n < 2:
            return mean, None
        # exact integers up to the one division: n*sum(q^2) - sum(q)^2 >= 0
        var = max(n * s2 - s1 * s1, 0) / (n * (n - 1) * QUALITY_SCALE * QUALITY_SCALE)
        return mean, math.sqrt(var)

    def add_quality(self, scores: F64) -> None:
        """Pool ``scores`` (no NaN) into the quality count, sums and sketch."""
        if not len(scores):
            return
        self.quality_n += len(scores)
        self.quality_sum += fixed_sum(scores, QUALITY_SCALE)
        self.quality_sq += fixed_sum(scores, QUALITY_SCALE, squared=True)
        self.quality.add(scores)

    def remove_quality(self, score: float) -> None:
        """Take out one score pooled before (a joined feedback replaces it)."""
        one = np.array([score])
        self.quality_n -= 1
        self.quality_sum -= fixed_sum(one, QUALITY_SCALE)
        self.quality_sq -= fixed_sum(one, QUALITY_SCALE, squared=True)
        self.quality.remove(one)

    def merge(self, other: Digest) -> Digest:
        """The digest of both digests' calls (disjoint sets)."""
        out = Digest(
            count=self.count + other.count,
            ok=self.ok + other.ok,
            first=min(self.first, other.first),
            last=max(self.last, other.last),
            latency=self.latency.merge(other.latency),
            ttft=self.ttft.merge(other.ttft),
            quality=self.quality.merge(other.quality),
            cost_units=self.cost_units + other.cost_units,
            quality_n=self.quality_n + other.quality_n,
            quality_sum=self.quality_sum + other.quality_sum,
            quality_sq=self.quality_sq + other.quality_sq,
            tokens=self.tokens + other.tokens,
            fixed=self.fixed + other.fixed,
            fixed_of=self.fixed_of + other.fixed_of,
            errors=self.errors + other.errors,
            prompts=self.prompts | other.prompts,
            hashed=self.hashed + other.hashed,
            shadow=merge_shadow((self.shadow, other.shadow)),
        )
        out.second0, out.per_second = self.second0, self.per_second.copy()
        if len(other.per_second):
            out._count_seconds_weighted(other.second0, other.per_second)
        return out

    def _count_seconds_weighted(self, second0: int, counts: I64) -> None:
        if not len(self.per_second):
            self.second0, self.per_second = second0, counts.copy()
            return
        low = min(self.second0, second0)
        high = max(self.second0 + len(self.per_second), second0 + len(counts))
        out = np.zeros(high - low, np.int64)
        out[self.second0 - low : self.second0 - low + len(self.per_second)] += self.per_second
        out[second0 - low : second0 - low + len(counts)] += counts
        self.second0, self.per_second = low, out


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def summarize_digest(
    kind: Literal["tumbling", "sliding"],
    window_start: datetime,
    window_end: datetime,
    key: WindowKey,
    digest: Digest,
    revision: int = 0,
) -> WindowStats:
    """Aggregate one window of one segment from its digest (at least one call)."""
    n = digest.count
    if n == 0:
        raise ValueError("a window holds at least one call")
    p50, p90, p95, p99 = digest.latency.percentiles(_PCTS).tolist()
    ttft = None
    if len(digest.ttft):
        t50, t95 = digest.ttft.percentiles(_TTFT_PCTS).tolist()
        ttft = TtftStats(p50=t50, p95=t95)
    q = digest.quality_n
    mean, stddev = digest.quality_moments()
    fixed, fixed_of, ok = digest.fixed, digest.fixed_of, digest.ok
    distinct, hashed = len(digest.prompts), digest.hashed
    span = (window_end - window_start).total_seconds()
    tokens = digest.tokens.tolist()
    tumbling = kind == "tumbling"
    return WindowStats(
        kind=kind,
        window_start=window_start,
        window_end=window_end,
        app=key.app,
        task=key.task,
        model=key.model,
        variant=key.variant,
        config_version=key.config_version,
        shadow=digest.shadow,
        count=n,
        ok_count=ok,
        error_count=n - ok,
        errors_by_type=dict(sorted(digest.errors.items())),
        latency_ms=LatencyStats(p50=p50, p90=p90, p95=p95, p99=p99, max=digest.latency.max),
        ttft_ms=ttft,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cache_read_tokens=tokens[2],
        cost_usd=digest.cost,
        cost_per_success_usd=digest.cost / ok if ok else None,
        quality=quality_stats(q, mean, stddev),
        prompt_tokens_fixed=fixed,
        prompt_tokens_fixed_of=fixed_of,
        fixed_prompt_share=fixed / fixed_of if fixed_of else None,
        distinct_prompts=distinct,
        repeat_ratio=(hashed - distinct) / hashed if hashed else 0.0,
        rate_per_s=n / span if span > 0 else float(n),
        peak_rate_per_s=float(digest.per_second.max()),
        first_event_at=_utc(digest.first),
        last_event_at=_utc(digest.last),
        revision=revision,
        latency_sample=digest.latency.systematic_sample(SAMPLE_SIZE) if tumbling else (),
        quality_sample=(digest.quality.systematic_sample(SAMPLE_SIZE) if tumbling and q else ()),
    )
