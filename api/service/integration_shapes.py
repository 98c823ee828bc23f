"""What a connection of each kind must hold, as types: one per kind, tagged by ``kind``.

The integration service checks every new or changed connection against these before it
builds the client, and the OpenAPI document describes ``POST /api/v1/integrations`` with
their JSON Schema (``msgspec.json.schema_components``), so the schema says what the validation
does: a Slack secret is an https webhook URL (http only to the loopback host), Jira needs a
base URL, an account email and a project key, GitHub an ``owner/name`` repo, and every kind
a non-empty secret. The clients (:mod:`integrations`) check the same rules again when built.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from core.errors import ValidationError

__all__ = [
    "AnthropicShape",
    "GitHubShape",
    "IntegrationShape",
    "JiraShape",
    "SlackShape",
    "check_shape",
]

_HOST = r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_TAIL = rf"(:{_PORT})?(/[A-Za-z0-9._~-]*)*"
#: https to a named host, or http to the loopback host (as integrations.transport checks).
URL_PATTERN = rf"^(https://{_HOST}|http://(127\.0\.0\.1|localhost)){_TAIL}$"

Url = Annotated[str, msgspec.Meta(pattern=URL_PATTERN)]
Secret = Annotated[str, msgspec.Meta(min_length=1)]
#: A secret sent as an HTTP header value (integrations.transport.HEADER_VALUE).
HeaderSecret = Annotated[str, msgspec.Meta(pattern=r"^[!-~]([ -~]*[!-~])?$")]
Name = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z0-9._\-]{1,200}$", description="letters, digits, . _ -")
]


class JiraConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Jira Cloud: the site, the account whose API token is the secret, the project key."""

    base_url: Url
    email: Annotated[str, msgspec.Meta(min_length=1)]
    project: Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]{0,254}$")]


class GitHubConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The repository issues are opened in (``owner/name``) and the API root."""

    repo: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")]
    base_url: Url = "https://api.github.com"


class AnthropicConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The model and API root of the prompt rewriter."""

    model: str = "claude-haiku-4-5"
    base_url: Url = "https://api.anthropic.com"


class _Shape(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    name: Name
    secret: Secret
    enabled: bool = True


class SlackShape(_Shape, frozen=True, kw_only=True, tag="slack"):
    """A Slack connection: the secret is the incoming-webhook URL."""

    secret: Url
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class JiraShape(_Shape, frozen=True, kw_only=True, tag="jira"):
    """A Jira connection: the secret is the API token."""

    config: JiraConfig


class GitHubShape(_Shape, frozen=True, kw_only=True, tag="github"):
    """A GitHub connection: the secret is a token that may open issues."""

    secret: HeaderSecret
    config: GitHubConfig


class AnthropicShape(_Shape, frozen=True, kw_only=True, tag="anthropic"):
    """An Anthropic connection: the secret is the API key."""

    secret: HeaderSecret
    config: AnthropicConfig = AnthropicConfig()


IntegrationShape = SlackShape | JiraShape | GitHubShape | AnthropicShape


def check_shape(
    *, name: str, kind: str, secret: str, config: dict[str, Any], enabled: bool
) -> None:
    """Raise :class:`ValidationError` (saying where) unless the connection fits its kind's shape."""
    data = {"name": name, "kind": kind, "secret": secret, "config": config, "enabled": enabled}
    try:
        msgspec.convert(data, IntegrationShape)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"invalid {kind} integration: {exc}") from exc
