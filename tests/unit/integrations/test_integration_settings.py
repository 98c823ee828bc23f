"""The integrations settings section: defaults, routes from TOML, validation, as_env round trip."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import IntegrationSettings, RouteRule, Settings, load_settings, updated

TOKEN = "jira-token-value-0123456789"


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "settings.toml").write_text("[default]\n" + body)
    return tmp_path


def test_defaults_route_alerts_to_slack_and_approvals_to_trackers() -> None:
    i = Settings().integrations
    assert i.routes == (
        RouteRule(targets=("slack",), events=("critical_insight", "verdict", "rollback")),
        RouteRule(
            targets=("jira", "github"),
            events=("approval_needed", "decision", "decision_approved", "decision_rejected"),
        ),
    )
    assert (i.poll_interval, i.retry_base, i.max_attempts) == (
        timedelta(seconds=5),
        timedelta(milliseconds=500),
        10,
    )


def test_routes_and_durations_load_and_round_trip_through_as_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write(
        tmp_path,
        """
[default.integrations]
poll_interval = "2s"
routes = [
  { targets = ["slack"], events = ["rollback"], apps = ["billing-bot"] },
  { targets = ["jira"], min_severity = "critical", strategies = ["model_selection"] },
]

[default.integrations.jira]
base_url = "https://acme.atlassian.net"
email = "bot@acme.example"
project = "OPS"
""",
    )
    monkeypatch.setenv("LLMOPT_INTEGRATIONS__JIRA__API_TOKEN", TOKEN)
    settings = load_settings(root)
    i = settings.integrations
    assert i.routes == (
        RouteRule(targets=("slack",), events=("rollback",), apps=("billing-bot",)),
        RouteRule(targets=("jira",), min_severity="critical", strategies=("model_selection",)),
    )
    assert i.poll_interval == timedelta(seconds=2)
    assert i.jira.api_token == TOKEN
    assert TOKEN not in repr(settings)
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    assert load_settings(tmp_path / "nothing-here") == settings


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('routes = [{ targets = ["email"] }]', "routes[].targets must be one or more of"),
        ("routes = [{ targets = [] }]", "routes[].targets must be one or more of"),
        ('routes = [{ targets = ["slack"], events = ["x"] }]', "routes[].events must be"),
        ('routes = [{ targets = ["slack"], min_severity = "fatal" }]', "min_severity must be"),
        ('routes = [{ targets = ["slack"], colour = "red" }]', "unknown keys ['colour']"),
        ('routes = [{ targets = "slack" }]', "routes[].targets must be a list of strings"),
        ('jira = { base_url = "ftp://jira" }', "integrations.jira.base_url must be an https://"),
        ('github = { repo = "acme" }', "integrations.github.repo must be owner/name"),
        ("batch_size = 0", "integrations.batch_size"),
        ('poll_interval = "soon"', "integrations.poll_interval must be a positive duration"),
        (
            'jira = { base_url = "https://acme.atlassian.net" }',
            "integrations.jira.email must be set",
        ),
        ('github = { token = "t0ken-value" }', "integrations.github.repo must be owner/name when"),
        (
            'outbox_retry_interval = "2h"',
            "integrations.outbox_retry_interval must not exceed",
        ),
    ],
)
def test_invalid_values_name_key_and_rule(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(write(tmp_path, f"[default.integrations]\n{body}\n"))
    assert message in str(info.value)


def test_secret_values_are_not_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPT_INTEGRATIONS__SLACK__WEBHOOK_URL", "ftp://hooks/T0SECRET/xoxb")
    monkeypatch.setenv("LLMOPT_INTEGRATIONS__GITHUB__TOKEN", "1234567890123")
    with pytest.raises(ConfigurationError) as info:
        load_settings(tmp_path)
    assert "T0SECRET" not in str(info.value)
    assert "1234567890123" not in str(info.value)


def test_secrets_have_no_repr() -> None:
    i = updated(
        IntegrationSettings(),
        slack__webhook_url="https://hooks.slack.com/services/T/B/SECRETHOOK",
        github__token="ghp_SECRETTOKEN",
        jira__api_token="SECRETJIRA",
        anthropic__api_key="sk-ant-SECRETKEY",
    )
    assert "SECRET" not in repr(i)
