"""Administration behind ``/api/v1/admin``: API keys, the audit log, stats and reload.

Creating a key returns it once (only its SHA-256 digest is stored); revoking takes effect at once
on this replica and within the key cache TTL on the others. Every change is audited. ``reload``
calls the hook the orchestrator passes in (the same as SIGHUP).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Engine

from api.service.auth import Authenticator
from api.service.bounds import check_id
from core.errors import NotFoundError, StorageUnavailableError, ValidationError
from storage.api_keys import ApiKeyInfo, ApiKeyRepository, Role
from storage.audit import AuditEntry, list_audit, record_audit
from storage.database import session_scope
from storage.stats import stored_counts

__all__ = ["AdminService", "CreatedKey", "ReloadHook", "Stats"]

ReloadHook = Callable[[], Awaitable[None] | None]


class CreatedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A new API key: ``key`` is shown this once and never again."""

    key: str
    info: ApiKeyInfo


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of what the optimizer holds."""

    windows: int
    insights: int
    apps_with_config: int
    config_versions: int
    decisions: dict[str, int]
    deployments: dict[str, int]
    outbox: dict[str, int]
    integrations: int
    api_keys: int


class AdminService:
    """API keys, audit log, stats and reload."""

    def __init__(
        self,
        engine: Engine,
        keys: ApiKeyRepository,
        auth: Authenticator,
        *,
        on_reload: ReloadHook | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._auth = auth
        self._on_reload = on_reload
        self._clock = clock

    def _audit(self, actor: str, action: str, resource_id: str, detail: dict[str, Any]) -> None:
        with session_scope(self._engine) as session:
            record_audit(
                session,
                actor=actor,
                action=action,
                resource="api_key" if action.startswith("api_key") else "server",
                resource_id=resource_id,
                detail=detail,
                at=self._clock(),
            )

    def create_key(self, name: str, role: Role, *, actor: str) -> CreatedKey:
        """A new random key with ``role``."""
        if not name or len(name) > 200:
            raise ValidationError("name must be 1 to 200 characters")
        info, key = self._keys.issue(name, role)
        self._audit(actor, "api_key.create", str(info.id), {"name": name, "role": role})
        return CreatedKey(key=key, info=info)

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
        """Keys (never their secrets)."""
        return self._keys.list_keys(include_revoked=include_revoked)

    def revoke_key(self, key_id: int, *, actor: str) -> ApiKeyInfo:
        """Revoke a key (NotFoundError when unknown)."""
        check_id("key id", key_id)
        info = self._keys.revoke(key_id)
        if info is None:
            raise NotFoundError(f"no API key {key_id}")
        self._auth.forget_keys()
        self._audit(actor, "api_key.revoke", str(key_id), {"name": info.name})
        return info

    def audit(
        self,
        *,
        resource: str | None = None,
        resource_id: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Audit lines, newest first."""
        if not 1 <= limit <= 1000:
            raise ValidationError(f"limit must be between 1 and 1000, not {limit}")
        check_id("before_id", before_id)
        with session_scope(self._engine) as session:
            return list_audit(
                session,
                resource=resource,
                resource_id=resource_id,
                before_id=before_id,
                limit=limit,
            )

    def stats(self) -> Stats:
        """Counts over the stored records."""
        with session_scope(self._engine) as session:
            counts = stored_counts(session)
        return Stats(**dataclasses.asdict(counts), api_keys=len(self._keys.list_keys()))

    async def reload(self, *, actor: str) -> None:
        """Reload settings as SIGHUP does (StorageUnavailableError when no hook is wired)."""
        if self._on_reload is None:
            raise StorageUnavailableError("reload is not available: no reload hook on this server")
        outcome = self._on_reload()
        if inspect.isawaitable(outcome):
            await outcome
        await asyncio.to_thread(self._audit, actor, "server.reload", "settings", {})
