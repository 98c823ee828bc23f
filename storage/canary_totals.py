"""A rollout's running totals: one ``canary_samples`` row per deployment and weight.

The rollout domain (``rollout.stages``) keeps, per weight a deployment has served, both sides'
summaries through the last period it added (a JSON document it defines); a period then costs the
same however long the rollout has run. Rows are returned as the session's objects: assigning a
row's ``summary`` is written with the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import CanarySampleRow

__all__ = ["TOTALS_SIDE", "add_totals", "load_totals"]

#: ``canary_samples.side`` of a running-totals row.
TOTALS_SIDE = "totals"


def load_totals(
    session: Session, deployment_ids: Sequence[str]
) -> dict[str, dict[int, CanarySampleRow]]:
    """Every weight's totals row of these deployments, by deployment and stage (one query)."""
    out: dict[str, dict[int, CanarySampleRow]] = {d: {} for d in deployment_ids}
    if not deployment_ids:
        return out
    rows = session.scalars(
        select(CanarySampleRow).where(
            CanarySampleRow.deployment_id.in_(list(deployment_ids)),
            CanarySampleRow.side == TOTALS_SIDE,
        )
    )
    for row in rows:
        out[row.deployment_id][row.stage] = row
    return out


def add_totals(
    session: Session, deployment_id: str, stage: int, stage_started_at: datetime
) -> CanarySampleRow:
    """A new, empty totals row for a deployment's stage (written with the transaction)."""
    row = CanarySampleRow(
        deployment_id=deployment_id,
        stage=stage,
        window_start=stage_started_at,
        side=TOTALS_SIDE,
        summary={},
    )
    session.add(row)
    return row
