"""An in-memory OutboxStore with the semantics of storage.outbox (claims, merges, backlog)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from integrations.outbox import OutboxClaim


@dataclass(frozen=True)
class Row:
    id: int
    key: str
    event_type: str
    payload: dict[str, Any]
    next_attempt_at: datetime
    app: str | None = None
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)


class MemoryOutbox:
    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self._claimed: set[int] = set()

    def enqueue(self, key: str, event_type: str, payload: dict[str, Any], now: datetime) -> bool:
        if any(r.key == key for r in self.rows.values()):
            return False
        row_id = len(self.rows) + 1
        self.rows[row_id] = Row(row_id, key, event_type, payload, now)
        return True

    def by_key(self, key: str) -> Row:
        return next(r for r in self.rows.values() if r.key == key)

    def claim(self, now: datetime) -> OutboxClaim | None:
        due = sorted(
            (
                r
                for r in self.rows.values()
                if r.status != "delivered"
                and r.next_attempt_at <= now
                and r.id not in self._claimed
            ),
            key=lambda r: (r.next_attempt_at, r.id),
        )
        if not due:
            return None
        self._claimed.add(due[0].id)
        return OutboxClaim(due[0], due[0].id)

    def delivered(self, claim: OutboxClaim, *, now: datetime, result: Mapping[str, Any]) -> None:
        row = self.rows[claim.handle]
        self.rows[row.id] = replace(
            row,
            status="delivered",
            attempts=row.attempts + 1,
            delivered_at=now,
            last_error=None,
            result={**row.result, **result},
        )
        self._claimed.discard(row.id)

    def failed(
        self,
        claim: OutboxClaim,
        *,
        error: str,
        next_attempt_at: datetime,
        result: Mapping[str, Any],
    ) -> None:
        row = self.rows[claim.handle]
        self.rows[row.id] = replace(
            row,
            status="failed",
            attempts=row.attempts + 1,
            last_error=error,
            next_attempt_at=next_attempt_at,
            result={**row.result, **result},
        )
        self._claimed.discard(row.id)

    def release(self, claim: OutboxClaim) -> None:
        self._claimed.discard(claim.handle)

    def find(self, key: str) -> Row | None:
        return next((r for r in self.rows.values() if r.key == key), None)

    def backlog(self, now: datetime) -> dict[str, int]:
        rows = list(self.rows.values())
        return {
            "pending": sum(r.status == "pending" for r in rows),
            "failed": sum(r.status == "failed" for r in rows),
            "due": sum(r.status != "delivered" and r.next_attempt_at <= now for r in rows),
        }
