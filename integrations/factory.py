"""The clients the settings ask for: each one on when its credentials are set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.settings import IntegrationSettings
from integrations.anthropic import AnthropicClient
from integrations.circuit_breaker import CircuitBreaker
from integrations.config_files import ConfigFiles
from integrations.github import GitHubClient
from integrations.jira import JiraClient
from integrations.notifier import Notifier
from integrations.slack import SlackWebhook
from integrations.tracker import IssueTracker
from integrations.transport import ClientOptions, RetryPolicy

__all__ = ["Clients", "build_clients", "client_options"]


@dataclass
class Clients:
    """The configured clients, by target name."""

    notifiers: dict[str, Notifier] = field(default_factory=dict)
    trackers: dict[str, IssueTracker] = field(default_factory=dict)
    github: GitHubClient | None = None
    config_files: ConfigFiles | None = None
    anthropic: AnthropicClient | None = None

    @property
    def targets(self) -> frozenset[str]:
        """Names of the delivery targets that are on."""
        return frozenset({*self.notifiers, *self.trackers})

    def breakers(self) -> dict[str, CircuitBreaker]:
        """Each client's circuit breaker, by name."""
        out: dict[str, CircuitBreaker] = {}
        for name, notifier in self.notifiers.items():
            breaker = getattr(notifier, "breaker", None)
            if isinstance(breaker, CircuitBreaker):
                out[name] = breaker
        out.update({name: tracker.breaker for name, tracker in self.trackers.items()})
        if self.anthropic is not None:
            out["anthropic"] = self.anthropic.breaker
        return out

    async def close(self) -> None:
        """Close every client (idempotent)."""
        for client in [*self.notifiers.values(), *self.trackers.values(), self.anthropic]:
            if client is not None:
                await client.close()


def client_options(
    s: IntegrationSettings, name: str, client: httpx.AsyncClient | None = None
) -> ClientOptions:
    """Timeout, retries and a fresh breaker for the client ``name`` from the settings."""
    return ClientOptions(
        client=client,
        timeout=s.timeout.total_seconds(),
        policy=RetryPolicy(
            attempts=s.retry_attempts,
            base=s.retry_base.total_seconds(),
            cap=s.retry_cap.total_seconds(),
            max_retry_after=s.max_retry_after.total_seconds(),
        ),
        breaker=CircuitBreaker(
            name,
            failure_threshold=s.breaker_failure_threshold,
            reset_timeout=s.breaker_reset_timeout.total_seconds(),
        ),
    )


def build_clients(
    s: IntegrationSettings,
    *,
    client: httpx.AsyncClient | None = None,
    on_telemetry: Callable[[dict[str, Any]], object] | None = None,
) -> Clients:
    """Build the clients whose credentials are set.

    Args:
        s: The integrations settings.
        client: An httpx client for all of them to share (the caller closes it).
        on_telemetry: Where the Anthropic client reports its own calls.

    Returns:
        The clients; Slack as a notifier, Jira and GitHub as trackers, Anthropic apart.

    Raises:
        ConfigurationError: A credential set is unusable (e.g. a malformed webhook URL).
    """
    out = Clients()
    if s.slack.webhook_url:
        o = client_options(s, "slack", client)
        out.notifiers["slack"] = SlackWebhook(
            s.slack.webhook_url,
            client=client,
            timeout=o.timeout,
            attempts=o.policy.attempts,
            base=o.policy.base,
            cap=o.policy.cap,
            max_retry_after=o.policy.max_retry_after,
            breaker=o.breaker,
        )
    if s.jira.base_url:
        out.trackers["jira"] = JiraClient(
            s.jira.base_url,
            s.jira.email,
            s.jira.api_token,
            s.jira.project,
            issue_type=s.jira.issue_type,
            options=client_options(s, "jira", client),
        )
    if s.github.token:
        out.github = GitHubClient(
            s.github.token,
            s.github.repo,
            base_url=s.github.api_url,
            options=client_options(s, "github", client),
        )
        out.trackers["github"] = out.github
        if s.github.config_path:
            out.config_files = ConfigFiles(out.github, s.github.config_path, s.github.branch)
    if s.anthropic.api_key:
        out.anthropic = AnthropicClient(
            s.anthropic.api_key,
            model=s.anthropic.model,
            base_url=s.anthropic.base_url,
            max_tokens=s.anthropic.max_tokens,
            on_telemetry=on_telemetry,
            options=client_options(s, "anthropic", client),
        )
    return out
