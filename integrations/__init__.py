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
from integrations.errors import IntegrationError
from integrations.formats import build_adf, build_markdown, issue_label
from integrations.github import FileCommit, GitHubClient
from integrations.jira import JiraClient
from integrations.notifier import DeliveryResult, Notification, Notifier, Severity
from integrations.redaction import Secret, redact, register_secret
from integrations.retry import (
    backoff_delay,
    is_retryable_status,
    parse_retry_after,
    with_retries,
)
from integrations.slack import SEVERITY_EMOJI, SlackWebhook, build_slack_message
from integrations.tracker import IssueRef, IssueTracker
from integrations.transport import ClientOptions, RetryPolicy

__all__ = [
    "SEVERITY_EMOJI",
    "AnthropicClient",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientOptions",
    "DeliveryResult",
    "FileCommit",
    "GitHubClient",
    "IntegrationError",
    "IssueRef",
    "IssueTracker",
    "JiraClient",
    "Notification",
    "Notifier",
    "PromptConstraints",
    "PromptProposal",
    "RetryPolicy",
    "Secret",
    "Severity",
    "SlackWebhook",
    "backoff_delay",
    "build_adf",
    "build_markdown",
    "build_slack_message",
    "is_retryable_status",
    "issue_label",
    "parse_retry_after",
    "redact",
    "register_secret",
    "with_retries",
]
