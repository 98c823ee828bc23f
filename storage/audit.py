"""The audit log: who changed what, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import AuditRow

__all__ = ["AuditEntry", "list_audit", "record_audit"]


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    resource: str
    resource_id: str
    detail: dict[str, Any]


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    resource: str,
    resource_id: str,
    detail: dict[str, Any],
    at: datetime,
) -> None:
    """Add an audit line to the session's transaction."""
    session.add(
        AuditRow(
            at=at,
            actor=actor[:200],
            action=action,
            resource=resource,
            resource_id=resource_id[:512],
            detail=detail,
        )
    )


def list_audit(
    session: Session,
    *,
    resource: str | None = None,
    resource_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Audit lines, newest first; ``before_id`` continues a previous page."""
    stmt = select(AuditRow)
    if resource is not None:
        stmt = stmt.where(AuditRow.resource == resource)
    if resource_id is not None:
        stmt = stmt.where(AuditRow.resource_id == resource_id)
    if before_id is not None:
        stmt = stmt.where(AuditRow.id < before_id)
    stmt = stmt.order_by(AuditRow.id.desc()).limit(limit)
    return [
        AuditEntry(
            id=r.id,
            at=r.at,
            actor=r.actor,
            action=r.action,
            resource=r.resource,
            resource_id=r.resource_id,
            detail=dict(r.detail),
        )
        for r in session.scalars(stmt)
    ]
