"""Counts over the stored records (``GET /api/v1/admin/stats``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import (
    AppConfigRow,
    DecisionRow,
    DeploymentRow,
    InsightRow,
    IntegrationRow,
    OutboxRow,
    WindowRow,
)

__all__ = ["StoredCounts", "stored_counts"]


@dataclass(frozen=True, slots=True)
class StoredCounts:
    """Rows per table; decisions, deployments and outbox rows by status."""

    windows: int
    insights: int
    apps_with_config: int
    config_versions: int
    decisions: dict[str, int]
    deployments: dict[str, int]
    outbox: dict[str, int]
    integrations: int


def stored_counts(session: Session) -> StoredCounts:
    """Count what is stored (one aggregate query per table)."""

    def count(column: Any) -> int:
        return int(session.scalar(select(func.count(column))) or 0)

    def by_status(column: Any) -> dict[str, int]:
        rows = session.execute(select(column, func.count()).group_by(column))
        return {str(s): int(n) for s, n in rows}

    return StoredCounts(
        windows=count(WindowRow.id),
        insights=count(InsightRow.id),
        apps_with_config=count(func.distinct(AppConfigRow.app)),
        config_versions=count(AppConfigRow.id),
        decisions=by_status(DecisionRow.status),
        deployments=by_status(DeploymentRow.status),
        outbox=by_status(OutboxRow.status),
        integrations=count(IntegrationRow.id),
    )
