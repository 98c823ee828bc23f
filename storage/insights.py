"""Insights in the database: idempotent by id, listed with filters for the API."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.insights import Insight
from storage.database import insert_for
from storage.models import InsightRow

__all__ = ["InsightRepository", "insight_of_row"]


class InsightRepository:
    """Writes insights (a replay keeps what is stored) and lists them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, insights: Iterable[Insight]) -> int:
        """Store insights; one with a stored id is kept as it was. Returns the count given."""
        now = datetime.now(UTC)
        rows = [
            {
                "id": i.id,
                "app": i.app,
                "task": i.task,
                "analyzer": i.analyzer,
                "kind": i.kind,
                "severity": i.severity,
                "window_start": i.window_start,
                "window_end": i.window_end,
                "metric": i.metric,
                "value": i.value,
                "baseline": i.baseline,
                "score": i.score,
                "message": i.message[:2048],
                "evidence": i.evidence,
                "recorded_at": now,
            }
            for i in insights
        ]
        if not rows:
            return 0
        stmt = insert_for(self._engine)(InsightRow).on_conflict_do_nothing(index_elements=["id"])
        with self._engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def list(
        self,
        *,
        app: str,
        task: str | None = None,
        analyzer: str | None = None,
        severity: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> Sequence[Insight]:
        """Insights of ``app`` matching the filters, newest window first."""
        stmt = select(InsightRow).where(InsightRow.app == app)
        if task is not None:
            stmt = stmt.where(InsightRow.task == task)
        if analyzer is not None:
            stmt = stmt.where(InsightRow.analyzer == analyzer)
        if severity is not None:
            stmt = stmt.where(InsightRow.severity == severity)
        if since is not None:
            stmt = stmt.where(InsightRow.window_start >= since)
        if until is not None:
            stmt = stmt.where(InsightRow.window_end <= until)
        stmt = stmt.order_by(InsightRow.window_start.desc(), InsightRow.id).limit(limit)
        with Session(self._engine) as session:
            return [insight_of_row(r) for r in session.scalars(stmt)]


def insight_of_row(r: InsightRow) -> Insight:
    """The insight a stored row holds."""
    return Insight(
        id=r.id,
        app=r.app,
        task=r.task,
        analyzer=r.analyzer,  # type: ignore[arg-type]
        kind=r.kind,
        severity=r.severity,  # type: ignore[arg-type]
        window_start=r.window_start,
        window_end=r.window_end,
        metric=r.metric,
        value=r.value,
        baseline=r.baseline,
        score=r.score,
        message=r.message,
        evidence=dict(r.evidence),
    )
