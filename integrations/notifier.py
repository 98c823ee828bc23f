"""The one small interface every outgoing notification client sits behind.

A :class:`Notification` is what the optimizer wants to say (a critical insight, a canary verdict, a
rollback); a :class:`Notifier` delivers it somewhere (Slack today) and answers with a
:class:`DeliveryResult` instead of raising, so the outbox can decide what to retry later.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import msgspec

__all__ = ["DeliveryResult", "Notification", "Notifier", "Severity"]

Severity = Literal["info", "warning", "critical"]


class Notification(msgspec.Struct, frozen=True):
    """One message to deliver, at least once, idempotent by ``key``.

    Attributes:
        key: Idempotency key of the event (the outbox row's key); the same key is the same message.
        title: One line saying what happened.
        text: The explanation, as plain text (each client escapes what its format needs).
        severity: ``"info"``, ``"warning"`` or ``"critical"``.
        app: The LLM application concerned, when there is one.
        fields: The numbers behind the message, name to formatted value, in display order.
        link: Where to read more (the deployment or recommendation in the API or a dashboard).
    """

    key: str
    title: str
    text: str
    severity: Severity
    app: str | None = None
    fields: dict[str, str] = msgspec.field(default_factory=dict)
    link: str | None = None


class DeliveryResult(msgspec.Struct, frozen=True):
    """How the delivery of one :class:`Notification` went.

    Attributes:
        ok: Whether the receiving service accepted the message.
        attempts: How many requests were made (1 when the first one settled it).
        status: The last HTTP status, or ``None`` when no response ever arrived.
        error: A short, secret-free reason when ``ok`` is false (e.g. ``"invalid_payload"``).
        retry_after: Seconds the service (or an open breaker) asked to wait before trying again.
    """

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


@runtime_checkable
class Notifier(Protocol):
    """A client that delivers notifications to one outside service.

    ``send`` reports failures in its :class:`DeliveryResult` rather than raising, and never puts a
    secret (webhook URL, token) into a result, a log line or its ``repr``.
    """

    name: str

    async def send(self, n: Notification) -> DeliveryResult:
        """Deliver ``n``, retrying transient failures.

        Args:
            n: The notification to deliver.

        Returns:
            The outcome, with the number of attempts made.
        """
        ...

    async def close(self) -> None:
        """Release the client's connections (idempotent)."""
        ...
