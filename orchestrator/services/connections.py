"""Integration connections made through the API, merged into the integrations settings.

``/api/v1/integrations`` stores connections (kind, plain config, write-only secret) in the
``integrations`` table. The integrations service builds its clients from the settings and, for
every kind the settings leave unconfigured, from the newest enabled connection of that kind
(settings win: an operator's file is not overridden by an API call). The service re-reads the
table when its fingerprint changes, so a connection made or disabled through the API takes
effect at the next poll without a restart.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from core.settings import IntegrationSettings
from storage.database import session_scope
from storage.integrations import Connection, enabled_connections
from storage.integrations import connections_fingerprint as stored_fingerprint

__all__ = ["Connection", "connections_fingerprint", "load_connections", "with_connections"]


def connections_fingerprint(engine: Engine) -> tuple[int, datetime | None]:
    """Changes whenever a connection is created, changed, enabled, disabled or deleted."""
    with session_scope(engine) as session:
        return stored_fingerprint(session)


def load_connections(engine: Engine) -> list[Connection]:
    """Enabled connections, newest first."""
    with session_scope(engine) as session:
        return enabled_connections(session)


def _text(config: dict[str, Any], key: str, default: str) -> str:
    value = config.get(key)
    return value if isinstance(value, str) and value else default


def with_connections(s: IntegrationSettings, connections: list[Connection]) -> IntegrationSettings:
    """``s`` with each kind it leaves empty filled from the first connection of that kind."""
    changes: dict[str, Any] = {}
    seen: set[str] = set()
    for kind, secret, config in connections:
        if kind in seen or not secret:
            continue
        seen.add(kind)
        if kind == "slack" and not s.slack_webhook_url:
            changes["slack_webhook_url"] = secret
        elif kind == "jira" and not s.jira_base_url:
            changes.update(
                jira_base_url=_text(config, "base_url", ""),
                jira_email=_text(config, "email", ""),
                jira_project=_text(config, "project", ""),
                jira_api_token=secret,
            )
        elif kind == "github" and not s.github_token:
            changes.update(
                github_token=secret,
                github_repo=_text(config, "repo", s.github_repo),
                github_api_url=_text(config, "base_url", s.github_api_url),
            )
        elif kind == "anthropic" and not s.anthropic_api_key:
            changes.update(
                anthropic_api_key=secret,
                anthropic_model=_text(config, "model", s.anthropic_model),
                anthropic_base_url=_text(config, "base_url", s.anthropic_base_url),
            )
    if changes.get("jira_base_url") == "":
        for key in ("jira_base_url", "jira_email", "jira_project", "jira_api_token"):
            changes.pop(key)
    return dataclasses.replace(s, **changes)
