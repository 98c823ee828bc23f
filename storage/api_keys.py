"""API keys: created once in plain text, stored as SHA-256 digests, looked up by digest."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Literal, get_args

import msgspec
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.errors import ValidationError
from storage.models import ApiKeyRow

__all__ = ["ROLES", "ApiKeyInfo", "ApiKeyRepository", "Role", "hash_key"]

Role = Literal["admin", "operator", "viewer", "ingest"]
ROLES: tuple[Role, ...] = get_args(Role)


class ApiKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What is known about a key besides its secret: never the key itself."""

    id: int
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        role=row.role,  # type: ignore[arg-type]
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


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

    def issue(self, name: str, role: Role) -> tuple[ApiKeyInfo, str]:
        """Create a new random key; returns its record and the key (visible only now)."""
        if role not in ROLES:
            raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        key = "llmopt_" + secrets.token_urlsafe(32)
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            row = ApiKeyRow(
                name=name, key_hash=hash_key(key), role=role, created_at=datetime.now(UTC)
            )
            session.add(row)
            session.flush()
            return _info(row), key

    def lookup(self, key: str) -> ApiKeyInfo | None:
        """The record of an active key, or ``None`` for an unknown or revoked one."""
        with Session(self._engine) as session:
            row = session.scalar(
                select(ApiKeyRow).where(
                    ApiKeyRow.key_hash == hash_key(key), ApiKeyRow.revoked_at.is_(None)
                )
            )
            if row is None or row.role not in ROLES:
                return None
            return _info(row)

    def active(self, key_id: int) -> ApiKeyInfo | None:
        """The record of key ``key_id`` while it is active (``None``: unknown or revoked)."""
        with Session(self._engine) as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None or row.role not in ROLES:
                return None
            return _info(row)

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKeyInfo]:
        """Every key (active ones unless ``include_revoked``), oldest first."""
        stmt = select(ApiKeyRow).order_by(ApiKeyRow.id)
        if not include_revoked:
            stmt = stmt.where(ApiKeyRow.revoked_at.is_(None))
        with Session(self._engine) as session:
            return [_info(r) for r in session.scalars(stmt)]

    def revoke(self, key_id: int) -> ApiKeyInfo | None:
        """Revoke a key (idempotent); ``None`` when no key has this id."""
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return _info(row)
