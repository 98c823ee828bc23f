"""Integration connections made through the API, merged into the integrations settings.

``/api/v1/integrations`` stores connections (kind, plain config, write-only secret) in the
``integrations`` table. The integrations service builds its clients from the settings and, for
every kind the settings leave unconfigured, from the newest enabled connection of that kind
(settings win: an operator's file is not overridden by an API call). The service re-reads the
table when its fingerprint changes, so a connection made or disabled through the API takes
effect at the next poll without a restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from core.settings import IntegrationSettings, updated
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
        if kind == "slack" and not s.slack.webhook_url:
            changes["slack__webhook_url"] = secret
        elif kind == "jira" and not s.jira.base_url and _text(config, "base_url", ""):
            changes.update(
                jira__base_url=_text(config, "base_url", ""),
                jira__email=_text(config, "email", ""),
                jira__project=_text(config, "project", ""),
                jira__api_token=secret,
            )
        elif kind == "github" and not s.github.token:
            changes.update(
                github__token=secret,
                github__repo=_text(config, "repo", s.github.repo),
                github__api_url=_text(config, "base_url", s.github.api_url),
            )
        elif kind == "anthropic" and not s.anthropic.api_key:
            changes.update(
                anthropic__api_key=secret,
                anthropic__model=_text(config, "model", s.anthropic.model),
                anthropic__base_url=_text(config, "base_url", s.anthropic.base_url),
            )
    return updated(s, **changes)
