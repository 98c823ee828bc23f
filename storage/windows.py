"""Window stats in the database: idempotent upsert (replays and corrections) and queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.stats import LatencyStats, PairedQuality, QualityStats, TtftStats, WindowStats
from storage.database import insert_for
from storage.models import WINDOW_VERSION_KEY, WindowRow

__all__ = ["WindowRepository", "window_of_row"]

_KEY = ("kind", "window_start", "app", "task", "model", "variant", "config_version")


def _to_row(w: WindowStats, now: datetime) -> dict[str, Any]:
    return {
        "kind": w.kind,
        "window_start": w.window_start,
        "window_end": w.window_end,
        "app": w.app,
        "task": w.task,
        "model": w.model,
        "variant": w.variant,
        "count": w.count,
        "ok_count": w.ok_count,
        "error_count": w.error_count,
        "errors_by_type": w.errors_by_type,
        "latency_p50": w.latency_ms.p50,
        "latency_p90": w.latency_ms.p90,
        "latency_p95": w.latency_ms.p95,
        "latency_p99": w.latency_ms.p99,
        "latency_max": w.latency_ms.max,
        "ttft_p50": w.ttft_ms.p50 if w.ttft_ms else None,
        "ttft_p95": w.ttft_ms.p95 if w.ttft_ms else None,
        "input_tokens": w.input_tokens,
        "output_tokens": w.output_tokens,
        "cache_read_tokens": w.cache_read_tokens,
        "cost_usd": w.cost_usd,
        "cost_per_success_usd": w.cost_per_success_usd,
        "quality_count": w.quality.count,
        "quality_mean": w.quality.mean,
        "quality_stddev": w.quality.stddev,
        "quality_ci95_low": w.quality.ci95_low,
        "quality_ci95_high": w.quality.ci95_high,
        "distinct_prompts": w.distinct_prompts,
        "repeat_ratio": w.repeat_ratio,
        "rate_per_s": w.rate_per_s,
        "peak_rate_per_s": w.peak_rate_per_s,
        "first_event_at": w.first_event_at,
        "last_event_at": w.last_event_at,
        "revision": w.revision,
        "prompt_tokens_fixed": w.prompt_tokens_fixed,
        "prompt_tokens_fixed_of": w.prompt_tokens_fixed_of,
        "fixed_prompt_share": w.fixed_prompt_share,
        "updated_at": now,
        "config_version": w.config_version,
        "shadow": {m: msgspec.to_builtins(pq) for m, pq in w.shadow.items()} or None,
    }


def window_of_row(r: WindowRow) -> WindowStats:
    """The window stats a stored row holds (without the judge's samples: not stored)."""
    ttft = None
    if r.ttft_p50 is not None and r.ttft_p95 is not None:
        ttft = TtftStats(p50=r.ttft_p50, p95=r.ttft_p95)
    return WindowStats(
        kind="sliding" if r.kind == "sliding" else "tumbling",
        window_start=r.window_start,
        window_end=r.window_end,
        app=r.app,
        task=r.task,
        model=r.model,
        variant=r.variant,
        count=r.count,
        ok_count=r.ok_count,
        error_count=r.error_count,
        errors_by_type=dict(r.errors_by_type),
        latency_ms=LatencyStats(
            p50=r.latency_p50,
            p90=r.latency_p90,
            p95=r.latency_p95,
            p99=r.latency_p99,
            max=r.latency_max,
        ),
        ttft_ms=ttft,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        cache_read_tokens=r.cache_read_tokens,
        cost_usd=r.cost_usd,
        cost_per_success_usd=r.cost_per_success_usd,
        quality=QualityStats(
            count=r.quality_count,
            mean=r.quality_mean,
            stddev=r.quality_stddev,
            ci95_low=r.quality_ci95_low,
            ci95_high=r.quality_ci95_high,
        ),
        distinct_prompts=r.distinct_prompts,
        repeat_ratio=r.repeat_ratio,
        rate_per_s=r.rate_per_s,
        peak_rate_per_s=r.peak_rate_per_s,
        first_event_at=r.first_event_at,
        last_event_at=r.last_event_at,
        revision=r.revision,
        prompt_tokens_fixed=r.prompt_tokens_fixed,
        prompt_tokens_fixed_of=r.prompt_tokens_fixed_of,
        fixed_prompt_share=r.fixed_prompt_share,
        config_version=r.config_version,
        shadow={m: msgspec.convert(pq, PairedQuality) for m, pq in (r.shadow or {}).items()},
    )


class WindowRepository:
    """Reads and writes window stats; safe to share between threads (one engine)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def upsert(self, windows: Iterable[WindowStats]) -> int:
        """Insert windows, replacing any stored window with the same key. Returns the count."""
        now = datetime.now(UTC)
        rows = [_to_row(w, now) for w in windows]
        if not rows:
            return 0
        stmt = insert_for(self._engine)(WindowRow)
        updates = {c: stmt.excluded[c] for c in rows[0] if c not in _KEY}
        conflict = [*_KEY[:-1], WINDOW_VERSION_KEY]  # the unique index's elements
        stmt = stmt.on_conflict_do_update(index_elements=conflict, set_=updates)
        with self._engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def query(
        self,
        *,
        app: str,
        task: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> Sequence[WindowStats]:
        """Windows of an app (optionally one task, kind, time range), oldest first."""
        stmt = select(WindowRow).where(WindowRow.app == app)
        if task is not None:
            stmt = stmt.where(WindowRow.task == task)
        if kind is not None:
            stmt = stmt.where(WindowRow.kind == kind)
        if since is not None:
            stmt = stmt.where(WindowRow.window_start >= since)
        if until is not None:
            stmt = stmt.where(WindowRow.window_end <= until)
        stmt = stmt.order_by(
            WindowRow.window_start,
            WindowRow.task,
            WindowRow.model,
            WindowRow.variant,
            WINDOW_VERSION_KEY,
        ).limit(limit)
        with Session(self._engine) as session:
            return [window_of_row(r) for r in session.scalars(stmt)]
