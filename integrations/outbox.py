"""The outbox as the dispatcher sees it: claim a due row, record how its delivery went.

The storage layer implements :class:`OutboxStore` (``storage.outbox`` on SQLAlchemy, wrapped by
the integrations service); tests use an in-memory one. Keys follow :func:`outbox_key` so that
an approval or rejection finds the issue opened for its decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

__all__ = [
    "PARK_FOR",
    "OutboxClaim",
    "OutboxRecord",
    "OutboxStore",
    "outbox_key",
]

#: How far a row that gave up is pushed back: out of the way, still visible, replayable by
#: setting ``next_attempt_at`` to now (``result["parked"]`` is true).
PARK_FOR = timedelta(days=3650)


def outbox_key(event_type: str, subject_id: str) -> str:
    """The idempotency key of an event: ``"<event_type>:<subject id>"``.

    Args:
        event_type: E.g. ``"approval_needed"``.
        subject_id: The insight, verdict or decision id (plus a qualifier when one subject has
            several events of a type, e.g. ``"<deployment>:<stage>"``).

    Returns:
        The key; the dispatcher finds a decision's issue under ``outbox_key("approval_needed",
        decision_id)``.
    """
    return f"{event_type}:{subject_id}"


class OutboxRecord(Protocol):
    """The fields of an outbox row the dispatcher reads (``storage.outbox.OutboxEntry``)."""

    @property
    def id(self) -> int:
        """Row id."""
        ...

    @property
    def key(self) -> str:
        """Idempotency key."""
        ...

    @property
    def event_type(self) -> str:
        """Event type."""
        ...

    @property
    def app(self) -> str | None:
        """The app concerned."""
        ...

    @property
    def payload(self) -> dict[str, Any]:
        """What to say."""
        ...

    @property
    def status(self) -> str:
        """``pending``, ``delivered`` or ``failed``."""
        ...

    @property
    def attempts(self) -> int:
        """Delivery attempts recorded so far."""
        ...

    @property
    def result(self) -> dict[str, Any]:
        """What the targets answered: ``{"targets": {name: {...}}}``."""
        ...


@dataclass(frozen=True)
class OutboxClaim:
    """A row taken for delivery; ``handle`` is the store's own (e.g. an open transaction)."""

    entry: OutboxRecord
    handle: Any = None


class OutboxStore(Protocol):
    """Where the dispatcher takes rows from and records outcomes (synchronous; run in a thread).

    A claimed row stays the claimer's until :meth:`delivered`, :meth:`failed` or
    :meth:`release`: no other dispatcher takes it meanwhile (``FOR UPDATE SKIP LOCKED``).
    """

    def claim(self, now: datetime) -> OutboxClaim | None:
        """Take the oldest due row (pending or failed, ``next_attempt_at <= now``), if any."""
        ...

    def delivered(self, claim: OutboxClaim, *, now: datetime, result: Mapping[str, Any]) -> None:
        """Mark the claimed row delivered, merging ``result`` into its result."""
        ...

    def failed(
        self,
        claim: OutboxClaim,
        *,
        error: str,
        next_attempt_at: datetime,
        result: Mapping[str, Any],
    ) -> None:
        """Record a failed attempt, its error, the next attempt and the partial result."""
        ...

    def release(self, claim: OutboxClaim) -> None:
        """Give the row back untouched (the dispatcher was stopped mid-delivery)."""
        ...

    def find(self, key: str) -> OutboxRecord | None:
        """The row with ``key``, if any."""
        ...

    def backlog(self, now: datetime) -> dict[str, int]:
        """Counts for health: ``pending``, ``failed``, ``due`` (and ``parked`` if known)."""
        ...
