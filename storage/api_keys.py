"""API keys: created once in plain text, stored as SHA-256 digests, looked up by digest."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.errors import ValidationError
from storage.models import ApiKeyRow

__all__ = ["ROLES", "ApiKeyRepository", "Role", "hash_key"]

Role = Literal["admin", "operator", "viewer", "ingest"]
ROLES: tuple[Role, ...] = get_args(Role)


def hash_key(key: str) -> str:
    """The stored form of a key (API keys are long random strings, so one SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyRepository:
    """Creates, verifies and revokes API keys."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, name: str, role: Role, key: str | None = None) -> str:
        """Store a new key and return it in plain text (the only time it is visible)."""
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        key = key or "llmopt_" + secrets.token_urlsafe(32)
        with Session(self._engine) as session, session.begin():
            session.add(
                ApiKeyRow(
                    name=name, key_hash=hash_key(key), role=role, created_at=datetime.now(UTC)
                )
            )
        return key

    def ensure(self, name: str, role: Role, key: str) -> None:
        """Make sure ``key`` exists with ``role`` (the bootstrap admin key); idempotent."""
        digest = hash_key(key)
        with Session(self._engine) as session, session.begin():
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == digest))
            if row is None:
                session.add(
                    ApiKeyRow(name=name, key_hash=digest, role=role, created_at=datetime.now(UTC))
                )
            else:
                row.role, row.revoked_at = role, None

    def role_of(self, key: str) -> Role | None:
        """The role of an active key, or ``None`` for an unknown or revoked one."""
        with Session(self._engine) as session:
            row = session.scalar(
                select(ApiKeyRow).where(
                    ApiKeyRow.key_hash == hash_key(key), ApiKeyRow.revoked_at.is_(None)
                )
            )
            if row is None or row.role not in ROLES:
                return None
            role: Role = row.role
            return role
