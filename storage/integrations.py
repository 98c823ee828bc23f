"""Stored integration connections (``POST /api/v1/integrations``): queries over ``integrations``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import NotFoundError
from storage.models import IntegrationRow

__all__ = [
    "Connection",
    "connections_fingerprint",
    "enabled_connections",
    "integration_row",
    "list_integrations",
]

Connection = tuple[str, str, dict[str, Any]]  # kind, secret, config


def list_integrations(session: Session) -> list[IntegrationRow]:
    """Every connection, by name."""
    return list(session.scalars(select(IntegrationRow).order_by(IntegrationRow.name)))


def integration_row(session: Session, integration_id: str) -> IntegrationRow:
    """One connection's row (NotFoundError when unknown)."""
    row = session.get(IntegrationRow, integration_id)
    if row is None:
        raise NotFoundError(f"no integration {integration_id!r}")
    return row


def connections_fingerprint(session: Session) -> tuple[int, datetime | None]:
    """Changes whenever a connection is created, changed, enabled, disabled or deleted."""
    count, latest = session.execute(
        select(func.count(IntegrationRow.id), func.max(IntegrationRow.updated_at))
    ).one()
    return int(count), latest


def enabled_connections(session: Session) -> list[Connection]:
    """Enabled connections, newest first."""
    rows = session.scalars(
        select(IntegrationRow)
        .where(IntegrationRow.enabled.is_(True))
        .order_by(IntegrationRow.updated_at.desc())
    )
    return [(r.kind, r.secret, dict(r.config)) for r in rows]
