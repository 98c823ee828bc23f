"""build_clients: a client per configured credential set, sharing the retry and breaker settings."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core.settings import IntegrationSettings, updated
from integrations import AnthropicClient, BreakerState, GitHubClient, JiraClient, SlackWebhook
from integrations.factory import build_clients


def test_nothing_configured_builds_nothing() -> None:
    clients = build_clients(IntegrationSettings())
    assert clients.targets == frozenset()
    assert clients.anthropic is None
    assert clients.breakers() == {}


def test_each_credential_set_turns_its_client_on() -> None:
    s = updated(
        IntegrationSettings(),
        slack__webhook_url="https://hooks.slack.com/services/T0/B0/SECRETHOOK123",
        jira__base_url="https://acme.atlassian.net",
        jira__email="bot@acme.example",
        jira__api_token="jira-secret-token",
        jira__project="OPS",
        github__token="ghp_secret_token_value",
        github__repo="acme/config",
        anthropic__api_key="sk-ant-secret-key-value",
        breaker_failure_threshold=7,
        breaker_reset_timeout=timedelta(seconds=12),
    )
    clients = build_clients(s, on_telemetry=print)
    try:
        assert isinstance(clients.notifiers["slack"], SlackWebhook)
        assert isinstance(clients.trackers["jira"], JiraClient)
        assert isinstance(clients.trackers["github"], GitHubClient)
        assert clients.github is clients.trackers["github"]
        assert isinstance(clients.anthropic, AnthropicClient)
        assert clients.targets == {"slack", "jira", "github"}
        breakers = clients.breakers()
        assert sorted(breakers) == ["anthropic", "github", "jira", "slack"]
        assert {b.state for b in breakers.values()} == {BreakerState.CLOSED}
        assert len({id(b) for b in breakers.values()}) == 4  # one per client
        assert breakers["jira"]._threshold == 7
        assert breakers["jira"]._reset_timeout == 12.0
        text = repr(clients)
        for secret in ("SECRETHOOK123", "jira-secret-token", "ghp_secret", "sk-ant-secret"):
            assert secret not in text
    finally:
        asyncio.run(clients.close())
