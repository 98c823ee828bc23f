"""Integrations (Slack, Jira, GitHub, Anthropic connections) behind ``/api/v1/integrations``.

A connection has a unique name, a kind, a plain ``config`` (URLs, project, repo, model) and a
``secret`` (webhook URL, API token or key) that is write-only: it is stored, used to build the
client, and never returned or logged. ``test`` builds the client and sends a test notification
(Slack message, Jira/GitHub issue) or makes a tiny request (Anthropic).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from api.service.integration_shapes import check_shape
from core.errors import ConfigurationError, ConflictError, ValidationError
from integrations import (
    AnthropicClient,
    GitHubClient,
    IntegrationError,
    JiraClient,
    Notification,
    SlackWebhook,
)
from storage.audit import record_audit
from storage.database import session_scope
from storage.integrations import integration_row, list_integrations
from storage.models import IntegrationRow

__all__ = [
    "Integration",
    "IntegrationInput",
    "IntegrationKind",
    "IntegrationPatch",
    "IntegrationService",
    "TestResult",
]

IntegrationKind = Literal["slack", "jira", "github", "anthropic"]


class IntegrationInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new connection; ``secret`` is the webhook URL (Slack), API token or key."""

    name: str
    kind: IntegrationKind
    secret: str = msgspec.field(default="")
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    enabled: bool = True


class IntegrationPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Changes to a connection; absent fields stay as they are."""

    secret: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    config: dict[str, Any] | None = None
    enabled: bool | None = None


class Integration(msgspec.Struct, frozen=True, kw_only=True):
    """A stored connection as the API shows it: never its secret."""

    id: str
    name: str
    kind: IntegrationKind
    config: dict[str, Any]
    enabled: bool
    has_secret: bool
    created_at: datetime
    updated_at: datetime


class TestResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the test delivery answered (secret-free)."""

    ok: bool
    detail: str


def _shown(row: IntegrationRow) -> Integration:
    return Integration(
        id=row.id,
        name=row.name,
        kind=row.kind,  # type: ignore[arg-type]
        config=dict(row.config),
        enabled=row.enabled,
        has_secret=bool(row.secret),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _str(config: dict[str, Any], key: str, default: str = "") -> str:
    value = config.get(key, default)
    if not isinstance(value, str):
        raise ValidationError(f"config.{key} must be a string")
    return value


def build_client(kind: str, secret: str, config: dict[str, Any]) -> Any:
    """The client of a connection (raises ValidationError for an unusable config)."""
    try:
        if kind == "slack":
            return SlackWebhook(secret)
        if kind == "jira":
            return JiraClient(
                _str(config, "base_url"), _str(config, "email"), secret, _str(config, "project")
            )
        if kind == "github":
            base = _str(config, "base_url", "https://api.github.com")
            return GitHubClient(secret, _str(config, "repo"), base_url=base)
        if kind == "anthropic":
            base = _str(config, "base_url", "https://api.anthropic.com")
            model = _str(config, "model", "claude-haiku-4-5")
            return AnthropicClient(secret, model=model, base_url=base)
    except ConfigurationError as exc:
        raise ValidationError(f"invalid {kind} integration: {exc}") from exc
    raise ValidationError(f"unknown integration kind {kind!r}")


class IntegrationService:
    """CRUD of connections (audited) and test deliveries."""

    def __init__(
        self, engine: Engine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._engine = engine
        self._clock = clock

    def list(self) -> list[Integration]:
        """Every connection, by name."""
        with session_scope(self._engine) as session:
            return [_shown(r) for r in list_integrations(session)]

    def get(self, integration_id: str) -> Integration:
        """One connection (NotFoundError when unknown)."""
        with session_scope(self._engine) as session:
            return _shown(self._row(session, integration_id))

    @staticmethod
    def _row(session: Any, integration_id: str) -> IntegrationRow:
        return integration_row(session, integration_id)

    async def create(self, data: IntegrationInput, *, actor: str) -> Integration:
        """Store a new connection after checking that its client can be built."""
        check_shape(
            name=data.name,
            kind=data.kind,
            secret=data.secret,
            config=dict(data.config),
            enabled=data.enabled,
        )
        await _validate(data.kind, data.secret, data.config)
        return await asyncio.to_thread(self._insert, data, actor)

    def _insert(self, data: IntegrationInput, actor: str) -> Integration:
        now = self._clock()
        row = IntegrationRow(
            id=str(uuid.uuid4()),
            name=data.name,
            kind=data.kind,
            config=dict(data.config),
            secret=data.secret,
            enabled=data.enabled,
            created_at=now,
            updated_at=now,
        )
        try:
            with session_scope(self._engine) as session:
                session.add(row)
                session.flush()
                _audit(session, actor, "integration.create", row, now)
                return _shown(row)
        except IntegrityError as exc:
            raise ConflictError(f"an integration named {data.name!r} exists") from exc

    async def update(
        self, integration_id: str, patch: IntegrationPatch, *, actor: str
    ) -> Integration:
        """Change a connection's secret, config or enabled flag."""
        with session_scope(self._engine) as session:
            row = self._row(session, integration_id)
            secret = row.secret if patch.secret is None else patch.secret
            config = dict(row.config) if patch.config is None else dict(patch.config)
            kind, name = row.kind, row.name
            enabled = row.enabled if patch.enabled is None else patch.enabled
        check_shape(name=name, kind=kind, secret=secret, config=config, enabled=enabled)
        await _validate(kind, secret, config)
        return await asyncio.to_thread(self._change, integration_id, patch, actor)

    def _change(self, integration_id: str, patch: IntegrationPatch, actor: str) -> Integration:
        now = self._clock()
        with session_scope(self._engine) as session:
            row = self._row(session, integration_id)
            if patch.secret is not None:
                row.secret = patch.secret
            if patch.config is not None:
                row.config = dict(patch.config)
            if patch.enabled is not None:
                row.enabled = patch.enabled
            row.updated_at = now
            _audit(session, actor, "integration.update", row, now)
            return _shown(row)

    def delete(self, integration_id: str, *, actor: str) -> None:
        """Remove a connection."""
        now = self._clock()
        with session_scope(self._engine) as session:
            row = self._row(session, integration_id)
            _audit(session, actor, "integration.delete", row, now)
            session.delete(row)

    def _connection(self, integration_id: str) -> tuple[str, str, dict[str, Any]]:
        with session_scope(self._engine) as session:
            row = self._row(session, integration_id)
            return row.kind, row.secret, dict(row.config)

    async def test(self, integration_id: str) -> TestResult:
        """Send a test notification through the connection."""
        kind, secret, config = await asyncio.to_thread(self._connection, integration_id)
        client = build_client(kind, secret, config)
        note = Notification(
            key=f"test:{integration_id}:{self._clock().isoformat()}",
            title="LLM Auto Optimizer: test notification",
            text="This connection works. Sent by POST /api/v1/integrations/{id}/test.",
            severity="info",
        )
        try:
            if kind == "slack":
                result = await client.send(note)
                detail = "delivered" if result.ok else f"failed: {result.error}"
                return TestResult(ok=result.ok, detail=detail)
            if kind in ("jira", "github"):
                issue = await client.open_issue(note)
                return TestResult(ok=True, detail=f"opened issue {issue.key}")
            await client.propose_shorter_prompt("Reply with the single word: ok.")
            return TestResult(ok=True, detail="the API answered")
        except IntegrationError as exc:
            return TestResult(ok=False, detail=f"failed: {exc}")
        finally:
            await client.close()


async def _validate(kind: str, secret: str, config: dict[str, Any]) -> None:
    if not secret:
        raise ValidationError(f"a {kind} integration needs a secret")
    await build_client(kind, secret, config).close()  # built only to validate


def _audit(session: Any, actor: str, action: str, row: IntegrationRow, now: datetime) -> None:
    # Never the secret: only that one is set.
    detail = {"name": row.name, "kind": row.kind, "config": row.config, "enabled": row.enabled}
    record_audit(
        session,
        actor=actor,
        action=action,
        resource="integration",
        resource_id=row.id,
        detail=detail,
        at=now,
    )
