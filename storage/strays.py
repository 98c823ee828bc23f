"""Stray events in the database: late events and unmatched feedback, counted per (app, task)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.stats import StrayEvent
from storage.database import insert_for
from storage.models import StrayEventRow

__all__ = ["StrayRepository"]


class StrayRepository:
    """Writes strays idempotently (one row per kind and event id) and counts them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, strays: Iterable[StrayEvent]) -> int:
        """Store strays; one already stored (a replay) is kept as it was. Returns the count."""
        now = datetime.now(UTC)
        rows = [
            {
                "kind": s.kind,
                "event_id": s.event_id,
                "app": s.app,
                "task": s.task,
                "event_time": s.event_time,
                "watermark": s.watermark,
                "in_window": s.in_window,
                "detail": s.detail[:1024],
                "recorded_at": now,
            }
            for s in strays
        ]
        if not rows:
            return 0
        stmt = insert_for(self._engine)(StrayEventRow).on_conflict_do_nothing(
            index_elements=["kind", "event_id"]
        )
        with self._engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def counts(self, app: str) -> dict[tuple[str, str], int]:
        """(task, kind) → number of strays of ``app``."""
        stmt = (
            select(StrayEventRow.task, StrayEventRow.kind, func.count())
            .where(StrayEventRow.app == app)
            .group_by(StrayEventRow.task, StrayEventRow.kind)
        )
        with self._engine.connect() as conn:
            return {(task, kind): int(n) for task, kind, n in conn.execute(stmt)}

    def list(self, app: str, limit: int = 1000) -> Sequence[StrayEvent]:
        """Strays of ``app``, by event time."""
        stmt = (
            select(StrayEventRow)
            .where(StrayEventRow.app == app)
            .order_by(StrayEventRow.event_time, StrayEventRow.event_id)
            .limit(limit)
        )
        with Session(self._engine) as session:
            return [
                StrayEvent(
                    kind="late" if r.kind == "late" else "unmatched_feedback",
                    event_id=r.event_id,
                    app=r.app,
                    task=r.task,
                    event_time=r.event_time,
                    watermark=r.watermark,
                    in_window=r.in_window,
                    detail=r.detail,
                )
                for r in session.scalars(stmt)
            ]
