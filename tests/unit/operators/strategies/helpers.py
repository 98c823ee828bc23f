"""Constructed window stats, insights and periods for the strategy tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.app_config import TaskConfig
from core.insights import Insight, insight_id
from core.stats import LatencyStats, QualityStats, WindowStats
from operators.strategies import StrategyInput

APP = "support"
TASK = "triage"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def window(
    *,
    model: str = "gpt-4o",
    variant: str = "baseline",
    start: datetime = T0,
    count: int = 200,
    errors: dict[str, int] | None = None,
    p95: float = 400.0,
    cost: float = 1.0,
    tokens: tuple[int, int] = (100_000, 10_000),
    cache_read: int = 0,
    quality: tuple[int, float, float] | None = None,  # (count, mean, stddev)
    distinct: int | None = None,
    repeat_ratio: float = 0.0,
    peak: float | None = None,
    fixed: tuple[int, int] = (0, 0),  # (prompt_tokens_fixed, prompt_tokens_fixed_of)
    task: str = TASK,
) -> WindowStats:
    errs = errors or {}
    n_err = sum(errs.values())
    q = (
        QualityStats(count=0, mean=None, stddev=None, ci95_low=None, ci95_high=None)
        if quality is None
        else QualityStats(
            count=quality[0], mean=quality[1], stddev=quality[2], ci95_low=None, ci95_high=None
        )
    )
    return WindowStats(
        kind="tumbling",
        window_start=start,
        window_end=start + MINUTE,
        app=APP,
        task=task,
        model=model,
        variant=variant,
        count=count,
        ok_count=count - n_err,
        error_count=n_err,
        errors_by_type=errs,
        latency_ms=LatencyStats(p50=p95 / 2, p90=p95 * 0.9, p95=p95, p99=p95 * 1.5, max=p95 * 2),
        ttft_ms=None,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cache_read_tokens=cache_read,
        cost_usd=cost,
        cost_per_success_usd=cost / (count - n_err) if count > n_err else None,
        quality=q,
        distinct_prompts=count if distinct is None else distinct,
        repeat_ratio=repeat_ratio,
        rate_per_s=count / 60,
        peak_rate_per_s=count / 60 if peak is None else peak,
        first_event_at=start,
        last_event_at=start + MINUTE - timedelta(seconds=1),
        prompt_tokens_fixed=fixed[0],
        prompt_tokens_fixed_of=fixed[1],
        fixed_prompt_share=fixed[0] / fixed[1] if fixed[1] else None,
    )


def insight(
    analyzer: Any, kind: str, evidence: dict[str, float | str], *, task: str = TASK,
    start: datetime = T0, value: float = 0.0, baseline: float | None = None,
) -> Insight:  # fmt: skip
    return Insight(
        id=insight_id(APP, task, analyzer, kind, start, "m"),
        app=APP,
        task=task,
        analyzer=analyzer,
        kind=kind,
        severity="info",
        window_start=start,
        window_end=start + MINUTE,
        metric="m",
        value=value,
        baseline=baseline,
        score=1.0,
        message=f"{kind} found",
        evidence=evidence,
    )


def period(
    windows: list[WindowStats],
    insights: list[Insight] | None = None,
    config: TaskConfig | None = None,
    start: datetime | None = None,
) -> StrategyInput:
    begin = start if start is not None else windows[0].window_start
    return StrategyInput(
        app=APP,
        task=TASK,
        window_start=begin,
        window_end=begin + MINUTE,
        windows=windows,
        insights=insights or [],
        config=config,
    )
