"""Versioned app configs: every change is a new version; the highest version is active.

Changes made for a decision carry its id as ``decision_key`` (with a suffix per step, e.g.
``<id>:canary:2``), so replaying the decision after a crash finds the version it already wrote
instead of writing another. Every change adds an audit line in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.app_config import CONFIG_CHANGED, ConfigVersion, TaskConfig, config_diff, decode_tasks
from core.errors import NotFoundError
from storage.audit import record_audit
from storage.models import AppConfigRow
from storage.outbox import enqueue

__all__ = [
    "active_config",
    "config_apps",
    "config_version",
    "config_versions",
    "save_config",
]


def _version(row: AppConfigRow) -> ConfigVersion:
    return ConfigVersion(
        app=row.app,
        version=row.version,
        tasks=decode_tasks(row.tasks),
        author=row.author,
        reason=row.reason,
        diff=dict(row.diff),
        created_at=row.created_at,
        decision_key=row.decision_key,
    )


def active_config(session: Session, app: str) -> ConfigVersion | None:
    """The active (highest) version of ``app``'s config, or ``None`` when it has none."""
    row = session.scalars(
        select(AppConfigRow)
        .where(AppConfigRow.app == app)
        .order_by(AppConfigRow.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _version(row)


def config_version(session: Session, app: str, version: int) -> ConfigVersion:
    """One version of ``app``'s config.

    Raises:
        NotFoundError: When the app has no such version.
    """
    row = session.scalars(
        select(AppConfigRow).where(AppConfigRow.app == app, AppConfigRow.version == version)
    ).first()
    if row is None:
        raise NotFoundError(f"app {app!r} has no config version {version}")
    return _version(row)


def config_versions(
    session: Session, app: str, *, before: int | None = None, limit: int = 100
) -> list[ConfigVersion]:
    """Versions of ``app``'s config, newest first; ``before`` continues a previous page."""
    stmt = select(AppConfigRow).where(AppConfigRow.app == app)
    if before is not None:
        stmt = stmt.where(AppConfigRow.version < before)
    stmt = stmt.order_by(AppConfigRow.version.desc()).limit(limit)
    return [_version(r) for r in session.scalars(stmt)]


def config_apps(session: Session) -> list[str]:
    """Every app that has a config."""
    return list(session.scalars(select(AppConfigRow.app).distinct().order_by(AppConfigRow.app)))


def save_config(
    session: Session,
    app: str,
    tasks: dict[str, TaskConfig],
    *,
    author: str,
    reason: str,
    now: datetime,
    decision_key: str | None = None,
) -> ConfigVersion:
    """Store ``tasks`` as the next version of ``app``'s config (in the session's transaction).

    The version is audited and queued as a ``config_changed`` outbox row (key
    ``config:<app>:v<version>``) in the same transaction.

    With a ``decision_key`` already stored for ``app`` this returns that version and writes
    nothing: a replayed decision changes nothing twice.
    """
    if decision_key is not None:
        existing = session.scalars(
            select(AppConfigRow).where(
                AppConfigRow.app == app, AppConfigRow.decision_key == decision_key
            )
        ).first()
        if existing is not None:
            return _version(existing)
    current = active_config(session, app)
    before = current.tasks if current is not None else {}
    latest = session.scalar(select(func.max(AppConfigRow.version)).where(AppConfigRow.app == app))
    plain: dict[str, Any] = msgspec.to_builtins(tasks)
    diff = config_diff(before, tasks)
    row = AppConfigRow(
        app=app,
        version=(latest or 0) + 1,
        tasks=plain,
        author=author[:200],
        reason=reason[:2048],
        decision_key=decision_key,
        diff=diff,
        created_at=now,
    )
    session.add(row)
    session.flush()
    record_audit(
        session,
        actor=author,
        action="config.update",
        resource="config",
        resource_id=f"{app}@{row.version}",
        detail={"reason": reason, "diff": diff, "decision_key": decision_key},
        at=now,
    )
    saved = _version(row)
    enqueue(  # the integrations commit it to the GitOps repository (integrations.config_files)
        session,
        key=f"config:{app}:v{saved.version}",
        event_type=CONFIG_CHANGED,
        payload={
            "config": msgspec.to_builtins(saved.as_config()),
            "author": saved.author,
            "reason": saved.reason,
            "decision_key": decision_key,
        },
        now=now,
        app=app,
    )
    return saved
