"""Clients for the outside services the optimizer talks to, each behind one small interface.

Today: Slack incoming webhooks (:class:`SlackWebhook`), behind :class:`Notifier`. Every client
retries transient failures with backoff and jitter (:func:`with_retries`) and keeps its secrets out
of reprs, errors and log lines.
"""

from integrations.errors import IntegrationError
from integrations.notifier import DeliveryResult, Notification, Notifier, Severity
from integrations.redaction import Secret, redact, register_secret
from integrations.retry import (
    backoff_delay,
    is_retryable_status,
    parse_retry_after,
    with_retries,
)
from integrations.slack import SEVERITY_EMOJI, SlackWebhook, build_slack_message

__all__ = [
    "SEVERITY_EMOJI",
    "DeliveryResult",
    "IntegrationError",
    "Notification",
    "Notifier",
    "Secret",
    "Severity",
    "SlackWebhook",
    "backoff_delay",
    "build_slack_message",
    "is_retryable_status",
    "parse_retry_after",
    "redact",
    "register_secret",
    "with_retries",
]
