"""The one small interface of issue trackers (Jira, GitHub): open an issue, comment on it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

from integrations.circuit_breaker import CircuitBreaker
from integrations.notifier import Notification

__all__ = ["IssueRef", "IssueTracker"]


class IssueRef(msgspec.Struct, frozen=True):
    """An issue opened in a tracker.

    Attributes:
        target: The tracker (``"jira"``, ``"github"``).
        key: The issue's key (``"OPS-12"``) or number (``"42"``).
        url: Where a person reads it.
    """

    target: str
    key: str
    url: str


@runtime_checkable
class IssueTracker(Protocol):
    """A tracker where a decision that needs approval becomes an issue.

    ``open_issue`` is idempotent by the notification's key: an issue opened for the same key
    before (a retried delivery whose answer was lost) is found and returned, not opened twice.
    Failures raise :class:`~integrations.errors.IntegrationError`.
    """

    name: str

    @property
    def breaker(self) -> CircuitBreaker:
        """The client's circuit breaker."""
        ...

    async def open_issue(self, n: Notification) -> IssueRef:
        """Open an issue for ``n``, or return the one already opened for ``n.key``."""
        ...

    async def comment(self, issue_key: str, n: Notification) -> str:
        """Comment ``n`` on the issue ``issue_key``; returns the comment's id."""
        ...

    async def close(self) -> None:
        """Release the client's connections (idempotent)."""
        ...
