"""Clients for the outside services the optimizer talks to, each behind one small interface.

Slack incoming webhooks (:class:`SlackWebhook`, a :class:`Notifier`), Jira and GitHub
(:class:`JiraClient`, :class:`GitHubClient`, each an :class:`IssueTracker`) and Anthropic
(:class:`AnthropicClient`, shorter prompts). Every client retries transient failures with backoff
and jitter (:func:`with_retries`), stops calling a service that is down (:class:`CircuitBreaker`)
and keeps its secrets out of reprs, errors and log lines.
"""

from integrations.anthropic import (
    AnthropicClient,
    PromptConstraints,
    PromptProposal,
)
from integrations.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpenError
from integrations.dispatcher import Dispatcher, DispatchReport
from integrations.errors import IntegrationError
from integrations.factory import Clients, build_clients
from integrations.formats import build_adf, build_markdown, issue_label
from integrations.github import FileCommit, GitHubClient
from integrations.jira import JiraClient
from integrations.messages import EventFacts, build_notification, event_facts
from integrations.notifier import DeliveryResult, Notification, Notifier, Severity
from integrations.outbox import PARK_FOR, OutboxClaim, OutboxRecord, OutboxStore, outbox_key
from integrations.redaction import Secret, redact, register_secret
from integrations.retry import (
    backoff_delay,
    is_retryable_status,
    parse_retry_after,
    with_retries,
)
from integrations.routing import Router, rule_matches
from integrations.slack import SEVERITY_EMOJI, SlackWebhook, build_slack_message
from integrations.tracker import IssueRef, IssueTracker
from integrations.transport import ClientOptions, RetryPolicy

__all__ = [
    "PARK_FOR",
    "SEVERITY_EMOJI",
    "AnthropicClient",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientOptions",
    "Clients",
    "DeliveryResult",
    "DispatchReport",
    "Dispatcher",
    "EventFacts",
    "FileCommit",
    "GitHubClient",
    "IntegrationError",
    "IssueRef",
    "IssueTracker",
    "JiraClient",
    "Notification",
    "Notifier",
    "OutboxClaim",
    "OutboxRecord",
    "OutboxStore",
    "PromptConstraints",
    "PromptProposal",
    "RetryPolicy",
    "Router",
    "Secret",
    "Severity",
    "SlackWebhook",
    "backoff_delay",
    "build_adf",
    "build_clients",
    "build_markdown",
    "build_notification",
    "build_slack_message",
    "event_facts",
    "is_retryable_status",
    "issue_label",
    "outbox_key",
    "parse_retry_after",
    "redact",
    "register_secret",
    "rule_matches",
    "with_retries",
]
