"""Window statistics (CONTRACT.md §3): what the processor emits per closed window and segment."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

__all__ = [
    "LatencyStats",
    "PairedQuality",
    "QualityStats",
    "StrayEvent",
    "TtftStats",
    "WindowKey",
    "WindowStats",
]


class LatencyStats(msgspec.Struct, frozen=True):
    """Exact latency percentiles of one window, in milliseconds."""

    p50: float
    p90: float
    p95: float
    p99: float
    max: float


class TtftStats(msgspec.Struct, frozen=True):
    """Time-to-first-token percentiles, in milliseconds."""

    p50: float
    p95: float


class QualityStats(msgspec.Struct, frozen=True):
    """Quality scores (0..1) of the calls that carried one, with a 95 % t-interval of the mean."""

    count: int
    mean: float | None
    stddev: float | None
    ci95_low: float | None
    ci95_high: float | None


class PairedQuality(msgspec.Struct, frozen=True):
    """Quality of one shadow model paired with the served model's on the same requests.

    Sums over the window's calls that carried both scores (``quality`` and ``shadow_quality``
    for this ``shadow_model``): ``count`` pairs, the served and the shadow scores' sums and the
    sum of squared differences ``(shadow - served)**2``. Sums pool across windows by addition.
    """

    count: int = 0
    served_sum: float = 0.0
    shadow_sum: float = 0.0
    diff_sq_sum: float = 0.0

    def merge(self, other: PairedQuality) -> PairedQuality:
        """Both windows' pairs pooled."""
        return PairedQuality(
            self.count + other.count,
            self.served_sum + other.served_sum,
            self.shadow_sum + other.shadow_sum,
            self.diff_sq_sum + other.diff_sq_sum,
        )


class WindowKey(msgspec.Struct, frozen=True, array_like=True):
    """The segment a window aggregates: one (app, task, model, variant, config_version).

    Calls served under different config versions never pool into one window
    (``config_version`` None: the calls did not report one).
    """

    app: str
    task: str
    model: str
    variant: str
    config_version: int | None = None

    def route(self) -> str:
        """The Bytewax routing key of this segment."""
        version = "" if self.config_version is None else str(self.config_version)
        return f"{self.app}\x1f{self.task}\x1f{self.model}\x1f{self.variant}\x1f{version}"


class WindowStats(msgspec.Struct, frozen=True, kw_only=True):
    """Statistics of one closed window of one segment."""

    kind: Literal["tumbling", "sliding"]
    window_start: datetime
    window_end: datetime
    app: str
    task: str
    model: str
    variant: str
    count: int
    ok_count: int
    error_count: int
    errors_by_type: dict[str, int]
    latency_ms: LatencyStats
    ttft_ms: TtftStats | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: float
    cost_per_success_usd: float | None
    quality: QualityStats
    distinct_prompts: int
    repeat_ratio: float
    rate_per_s: float
    peak_rate_per_s: float
    first_event_at: datetime
    last_event_at: datetime
    revision: int = 0
    """0 for the first emission; each correction (late event, joined feedback) adds one."""
    prompt_tokens_fixed: int = 0
    """Input tokens that were the fixed part of the prompt, over calls that reported it."""
    prompt_tokens_fixed_of: int = 0
    """Input tokens of the calls that reported ``prompt_tokens_fixed`` (the share's base)."""
    fixed_prompt_share: float | None = None
    """prompt_tokens_fixed over the input tokens of those calls (None: none reported)."""
    latency_sample: tuple[float, ...] = ()
    """Up to ``SAMPLE_SIZE`` latencies, evenly spaced over the sorted values (all when fewer):
    what the canary judge's rank tests compare. Tumbling windows only; not stored."""
    quality_sample: tuple[float, ...] = ()
    """The same systematic sample of the window's quality scores."""
    config_version: int | None = None
    """The ``config_version`` the window's calls were served under (None: not reported)."""
    shadow: dict[str, PairedQuality] = msgspec.field(default_factory=dict)
    """Per shadow model, its scores paired with this segment's on the same requests."""


class StrayEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event that did not flow into its window the normal way, kept so it is never lost.

    ``late``: it arrived behind the watermark; ``in_window`` says whether its window still
    reflects it (open, or corrected and re-emitted) or it was older than the retained state.
    ``unmatched_feedback``: feedback whose call was not found within
    ``processor.feedback_join_window``.
    """

    kind: Literal["late", "unmatched_feedback"]
    event_id: str
    app: str
    task: str
    event_time: datetime
    watermark: datetime
    in_window: bool
    detail: str
