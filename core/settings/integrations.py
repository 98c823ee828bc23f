"""``[integrations]``: Slack, Jira, GitHub and Anthropic: credentials, routing, delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from core.errors import ConfigurationError
from core.settings.rules import Check, Int, Text, Url
from core.settings.spec import section, setting

__all__ = [
    "DEFAULT_ROUTES",
    "ROUTE_EVENTS",
    "ROUTE_TARGETS",
    "SEVERITIES",
    "AnthropicSettings",
    "GithubSettings",
    "IntegrationSettings",
    "JiraSettings",
    "RouteRule",
    "SlackSettings",
]

ROUTE_EVENTS = (
    "critical_insight",
    "insight",
    "verdict",
    "rollback",
    "approval_needed",
    "decision",
    "decision_approved",
    "decision_rejected",
)
ROUTE_TARGETS = ("slack", "jira", "github")
SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class RouteRule:
    """One routing rule of the integrations: matching events go to each of ``targets``.

    An empty ``events``, ``apps`` or ``strategies`` matches anything; ``strategies`` only
    constrains events that name a strategy (decisions, approvals, rollbacks).
    """

    targets: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    min_severity: str = "info"
    apps: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("targets", "events", "apps", "strategies"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigurationError(
                    f"invalid settings: integrations.routes[].{name} must be a list of strings "
                    f"but it is {value!r}"
                )
            object.__setattr__(self, name, tuple(value))
        rules = (
            ("targets", ROUTE_TARGETS, self.targets),
            ("events", ROUTE_EVENTS, self.events),
            ("min_severity", SEVERITIES, (self.min_severity,)),
        )
        for name, allowed, values in rules:
            bad = [v for v in values if v not in allowed]
            if bad or (name == "targets" and not values):
                raise ConfigurationError(
                    f"invalid settings: integrations.routes[].{name} must be one or more of "
                    f"{', '.join(allowed)} but it is {bad or list(values)!r}"
                )


DEFAULT_ROUTES = (
    RouteRule(targets=("slack",), events=("critical_insight", "verdict", "rollback")),
    RouteRule(
        targets=("jira", "github"),
        events=("approval_needed", "decision", "decision_approved", "decision_rejected"),
    ),
)


def _route(raw: Any) -> RouteRule:
    if isinstance(raw, RouteRule):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"invalid settings: integrations.routes must be a list of tables but has {raw!r}"
        )
    values = {str(k).lower(): v for k, v in raw.items()}
    unknown = sorted(set(values) - {f.name for f in fields(RouteRule)})
    if unknown:
        raise ConfigurationError(
            f"invalid settings: integrations.routes[] has unknown keys {unknown} in {raw!r}"
        )
    return RouteRule(**values)


_HTTPS = ("http", "https")
_ROUTES = Check(
    lambda v: isinstance(v, list | tuple),
    "a list of rules {targets, events, min_severity, apps, strategies}",
    lambda v: tuple(_route(r) for r in v),
)
_SECRET = Text()


def _old(name: str) -> str:
    return f"integrations.{name}"


@dataclass(frozen=True, slots=True)
class SlackSettings:
    """Slack: messages through an incoming webhook."""

    webhook_url: str = setting(
        "",
        "Slack incoming webhook (a secret: `.secrets.toml` or a variable)",
        Url(_HTTPS, "an https:// Slack webhook URL (empty: off)"),
        shown="empty (off)",
        secret=True,
        old=_old("slack_webhook_url"),
    )


@dataclass(frozen=True, slots=True)
class JiraSettings:
    """Jira Cloud: approval issues (basic auth with an account and an API token)."""

    base_url: str = setting(
        "",
        "Jira Cloud site, e.g. `https://example.atlassian.net`",
        Url(_HTTPS, "an https:// Jira site (empty: off)"),
        shown="empty (off)",
        old=_old("jira_base_url"),
    )
    email: str = setting("", "Jira account (basic auth)", old=_old("jira_email"))
    api_token: str = setting("", "Jira API token", _SECRET, secret=True, old=_old("jira_api_token"))
    project: str = setting(
        "", "project key approval issues are created in", old=_old("jira_project")
    )
    issue_type: str = setting("Task", "issue type of approval issues", old=_old("jira_issue_type"))


@dataclass(frozen=True, slots=True)
class GithubSettings:
    """GitHub: approval issues and config files committed through the contents API."""

    token: str = setting(
        "", "GitHub token", _SECRET, shown="empty (off)", secret=True, old=_old("github_token")
    )
    repo: str = setting(
        "",
        "`owner/name` of the repository for approval issues",
        Check(lambda v: isinstance(v, str) and (v == "" or v.count("/") == 1), "owner/name"),
        old=_old("github_repo"),
    )
    api_url: str = setting(
        "https://api.github.com",
        "the API root (GHES: `https://HOST/api/v3`)",
        Url(_HTTPS, "an https:// API root"),
        old=_old("github_api_url"),
    )
    config_path: str = setting(
        "",
        "folder where each config version is committed as `<app>.json` (contents API)",
        shown="empty (off)",
        old=_old("github_config_path"),
    )
    branch: str = setting(
        "",
        "branch of those files",
        shown="empty (the default branch)",
        old=_old("github_branch"),
    )


@dataclass(frozen=True, slots=True)
class AnthropicSettings:
    """Anthropic's Messages API: prompt rewrites."""

    api_key: str = setting(
        "",
        "Messages API key for prompt rewrites",
        _SECRET,
        shown="empty (off)",
        secret=True,
        old=_old("anthropic_api_key"),
    )
    model: str = setting(
        "claude-haiku-4-5",
        "model of prompt rewrites; its own calls are reported as telemetry of app "
        "`llm-auto-optimizer`, task `prompt_rewrite`",
        old=_old("anthropic_model"),
    )
    base_url: str = setting(
        "https://api.anthropic.com",
        "the API root",
        Url(_HTTPS, "an https:// API root"),
        old=_old("anthropic_base_url"),
    )
    max_tokens: int = setting(1024, "largest rewrite", Int(1), old=_old("anthropic_max_tokens"))


@dataclass(frozen=True, slots=True)
class IntegrationSettings:
    """Slack, Jira, GitHub and Anthropic: credentials, routing, retries, outbox delivery.

    A client is on when its credentials are set; secrets never show in a ``repr``.
    """

    enabled: bool = setting(
        True, "`false`: the integrations service delivers nothing (rows wait in the outbox)"
    )
    link_base_url: str = setting(
        "",
        'base URL of the "open details" links in messages (the REST API as people reach it)',
        Url(_HTTPS, "an http(s):// URL (empty: no links)"),
        shown="empty (no links)",
    )
    routes: tuple[RouteRule, ...] = setting(
        DEFAULT_ROUTES,
        "list of rules `{targets, events, min_severity, apps, strategies}`; an event goes to the "
        "targets of every rule it matches (empty filter: any); targets "
        + ", ".join(f"`{t}`" for t in ROUTE_TARGETS)
        + "; events "
        + ", ".join(f"`{e}`" for e in ROUTE_EVENTS),
        _ROUTES,
        shown="critical insights, verdicts, rollbacks → Slack; approvals and the later decision "
        "events (canary started after approval, rejection) → Jira and GitHub",
    )
    timeout: timedelta = setting(timedelta(seconds=10), "per request")
    retry_attempts: int = setting(
        4, "requests per delivery attempt, backoff with full jitter", Int(1)
    )
    retry_base: timedelta = setting(timedelta(milliseconds=500), "backoff ceiling after a failure")
    retry_cap: timedelta = setting(timedelta(seconds=8), "largest backoff ceiling")
    max_retry_after: timedelta = setting(
        timedelta(seconds=60),
        "a longer `Retry-After` (or GitHub rate-limit reset) goes back to the outbox",
    )
    breaker_failure_threshold: int = setting(
        5, "consecutive failures that open a client's breaker", Int(1)
    )
    breaker_reset_timeout: timedelta = setting(
        timedelta(seconds=30), "wait of an open breaker before a half-open probe"
    )
    poll_interval: timedelta = setting(timedelta(seconds=5), "how often the outbox is polled")
    batch_size: int = setting(50, "outbox rows per poll", Int(1))
    outbox_retry_interval: timedelta = setting(
        timedelta(seconds=30), "first redelivery delay (doubling, jittered, bounded)"
    )
    outbox_max_retry_interval: timedelta = setting(timedelta(hours=1), "largest redelivery delay")
    max_attempts: int = setting(10, "delivery attempts before a row is parked as failed", Int(1))

    slack: SlackSettings = section(SlackSettings)
    jira: JiraSettings = section(JiraSettings)
    github: GithubSettings = section(GithubSettings)
    anthropic: AnthropicSettings = section(AnthropicSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", tuple(_route(r) for r in self.routes))
