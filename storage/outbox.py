"""The integrations outbox: events written with the change they report, delivered later.

The actuator calls :func:`enqueue` in the transaction of its decision or verdict; the
integrations service claims due rows, delivers them, and marks each delivered or failed (with
the error and the time of the next attempt). A key is enqueued once: replays change nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import NotFoundError
from storage.models import OutboxRow

__all__ = [
    "KEY_MAX",
    "OutboxEntry",
    "OutboxStatus",
    "claim_due",
    "enqueue",
    "find_outbox",
    "list_outbox",
    "mark_delivered",
    "mark_failed",
    "outbox_backlog",
    "stored_key",
]

OutboxStatus = Literal["pending", "delivered", "failed"]
KEY_MAX = 200  # the ``outbox.key`` column's length


class OutboxEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One outbox row."""

    id: int
    key: str
    event_type: str
    app: str | None
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    result: dict[str, Any]


def _entry(r: OutboxRow) -> OutboxEntry:
    return OutboxEntry(
        id=r.id,
        key=r.key,
        event_type=r.event_type,
        app=r.app,
        payload=dict(r.payload),
        status=r.status,  # type: ignore[arg-type]
        attempts=r.attempts,
        last_error=r.last_error,
        next_attempt_at=r.next_attempt_at,
        created_at=r.created_at,
        delivered_at=r.delivered_at,
        result=dict(r.result),
    )


def stored_key(key: str) -> str:
    """``key`` as stored: keys over :data:`KEY_MAX` characters keep their start and a digest.

    Keys embed names (an app of up to 255 characters): cutting them would make two events
    one; the digest keeps them apart and the same key always maps to the same stored one.
    """
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{key[: KEY_MAX - 41]}~{digest}"


def enqueue(
    session: Session,
    *,
    key: str,
    event_type: str,
    payload: dict[str, Any],
    now: datetime,
    app: str | None = None,
) -> bool:
    """Add an event to deliver unless ``key`` is already queued; True when it was new."""
    key = stored_key(key)
    if session.scalars(select(OutboxRow.id).where(OutboxRow.key == key)).first() is not None:
        return False
    session.add(
        OutboxRow(
            key=key,
            event_type=event_type,
            app=app,
            payload=msgspec.to_builtins(payload),
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            result={},
        )
    )
    session.flush()
    return True


def claim_due(session: Session, *, now: datetime, limit: int = 100) -> list[OutboxEntry]:
    """Pending or failed rows whose next attempt is due, oldest first.

    On PostgreSQL the rows are locked (``FOR UPDATE SKIP LOCKED``) until the session's
    transaction ends, so several integrations replicas never deliver one row at once.
    """
    stmt = (
        select(OutboxRow)
        .where(OutboxRow.status.in_(["pending", "failed"]), OutboxRow.next_attempt_at <= now)
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return [_entry(r) for r in session.scalars(stmt)]


def find_outbox(session: Session, key: str) -> OutboxEntry | None:
    """The row of ``key``, if it was enqueued."""
    row = session.scalars(select(OutboxRow).where(OutboxRow.key == stored_key(key))).first()
    return None if row is None else _entry(row)


def _row(session: Session, entry_id: int) -> OutboxRow:
    row = session.get(OutboxRow, entry_id)
    if row is None:
        raise NotFoundError(f"no outbox entry {entry_id}")
    return row


def mark_delivered(
    session: Session, entry_id: int, *, now: datetime, result: dict[str, Any] | None = None
) -> None:
    """Record a successful delivery (and what the targets answered, e.g. an issue number)."""
    row = _row(session, entry_id)
    row.status = "delivered"
    row.attempts += 1
    row.delivered_at = now
    row.last_error = None
    row.result = {**row.result, **(result or {})}
    session.flush()


def mark_failed(
    session: Session,
    entry_id: int,
    *,
    error: str,
    next_attempt_at: datetime,
    result: dict[str, Any] | None = None,
) -> None:
    """Record a failed attempt and when to try again (kept visible in the API)."""
    row = _row(session, entry_id)
    row.status = "failed"
    row.attempts += 1
    row.last_error = error[:2048]
    row.next_attempt_at = next_attempt_at
    row.result = {**row.result, **(result or {})}
    session.flush()


def list_outbox(
    session: Session,
    *,
    status: str | None = None,
    app: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[OutboxEntry]:
    """Outbox rows, newest first; ``before_id`` continues a previous page."""
    stmt = select(OutboxRow)
    if status is not None:
        stmt = stmt.where(OutboxRow.status == status)
    if app is not None:
        stmt = stmt.where(OutboxRow.app == app)
    if before_id is not None:
        stmt = stmt.where(OutboxRow.id < before_id)
    return [_entry(r) for r in session.scalars(stmt.order_by(OutboxRow.id.desc()).limit(limit))]


def outbox_backlog(session: Session, now: datetime, parked_after: timedelta) -> dict[str, int]:
    """Rows by status (``pending``, ``failed``), those due now, and those parked.

    A parked row is a waiting one whose next attempt lies more than ``parked_after`` ahead.
    """
    by_status = dict(
        session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status)).all()
    )
    waiting = OutboxRow.status.in_(["pending", "failed"])
    due = session.scalar(select(func.count()).where(waiting, OutboxRow.next_attempt_at <= now))
    parked = session.scalar(
        select(func.count()).where(waiting, OutboxRow.next_attempt_at > now + parked_after)
    )
    return {
        "pending": int(by_status.get("pending", 0)),
        "failed": int(by_status.get("failed", 0)),
        "due": int(due or 0),
        "parked": int(parked or 0),
    }
