"""SQLAlchemy tables; the schema itself comes from Alembic migrations, never ``create_all``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "WINDOW_VERSION_KEY",
    "ApiKeyRow",
    "AppConfigRow",
    "AuditRow",
    "Base",
    "CanarySampleRow",
    "DecisionRow",
    "DeploymentRow",
    "InsightRow",
    "IntegrationRow",
    "OutboxRow",
    "StrayEventRow",
    "UtcDateTime",
    "VerdictRow",
    "WindowRow",
]


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive; this restores the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Reject naive datetimes and store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: storage keeps aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints stably."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class WindowRow(Base):
    """One closed window of one (app, task, model, variant, config_version); flat columns.

    Unique per (kind, window_start, app, task, model, variant, config_version), NULL versions
    included: the index is on ``coalesce(config_version, -1)`` (:data:`WINDOW_VERSION_KEY`).
    """

    __tablename__ = "window_stats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    app: Mapped[str] = mapped_column(String(512), index=True)
    task: Mapped[str] = mapped_column(String(512))
    model: Mapped[str] = mapped_column(String(512))
    variant: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    ok_count: Mapped[int] = mapped_column(Integer)
    error_count: Mapped[int] = mapped_column(Integer)
    errors_by_type: Mapped[dict[str, int]] = mapped_column(JSON)
    latency_p50: Mapped[float] = mapped_column(Float)
    latency_p90: Mapped[float] = mapped_column(Float)
    latency_p95: Mapped[float] = mapped_column(Float)
    latency_p99: Mapped[float] = mapped_column(Float)
    latency_max: Mapped[float] = mapped_column(Float)
    ttft_p50: Mapped[float | None] = mapped_column(Float, nullable=True)
    ttft_p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[float] = mapped_column(Float)
    cost_per_success_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_count: Mapped[int] = mapped_column(Integer)
    quality_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_stddev: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_ci95_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_ci95_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    distinct_prompts: Mapped[int] = mapped_column(Integer)
    repeat_ratio: Mapped[float] = mapped_column(Float)
    rate_per_s: Mapped[float] = mapped_column(Float)
    peak_rate_per_s: Mapped[float] = mapped_column(Float)
    first_event_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revision: Mapped[int] = mapped_column(Integer, server_default="0")
    prompt_tokens_fixed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    prompt_tokens_fixed_of: Mapped[int] = mapped_column(BigInteger, server_default="0")
    fixed_prompt_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


WINDOW_VERSION_KEY = func.coalesce(WindowRow.config_version, literal_column("-1"))
"""The config version as the window key sees it (NULL as -1, so NULLs match each other)."""
Index(
    "uq_window_version",
    WindowRow.kind,
    WindowRow.window_start,
    WindowRow.app,
    WindowRow.task,
    WindowRow.model,
    WindowRow.variant,
    WINDOW_VERSION_KEY,
    unique=True,
)


class ApiKeyRow(Base):
    """An API key, stored as its SHA-256 digest only; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class StrayEventRow(Base):
    """A late event or an unmatched feedback (``core.stats.StrayEvent``); never silently lost."""

    __tablename__ = "stray_events"
    __table_args__ = (UniqueConstraint("kind", "event_id", name="uq_stray_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(512))
    app: Mapped[str] = mapped_column(String(512), index=True)
    task: Mapped[str] = mapped_column(String(512))
    event_time: Mapped[datetime] = mapped_column(UtcDateTime)
    watermark: Mapped[datetime] = mapped_column(UtcDateTime)
    in_window: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(String(1024))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class InsightRow(Base):
    """An analyzer's finding (``core.insights.Insight``); the id is stable across replays."""

    __tablename__ = "insights"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app: Mapped[str] = mapped_column(String(512), index=True)
    task: Mapped[str] = mapped_column(String(512))
    analyzer: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    metric: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float | None] = mapped_column(Float, nullable=True)
    score: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(String(2048))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AppConfigRow(Base):
    """One version of an app's config (``core.app_config``); the highest version is active.

    Every change is a new version, a rollback too; ``decision_id`` makes a decision's change
    idempotent (a replayed decision finds its version instead of writing another).
    """

    __tablename__ = "app_configs"
    __table_args__ = (
        UniqueConstraint("app", "version", name="uq_app_config_version"),
        UniqueConstraint("app", "decision_key", name="uq_app_config_decision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app: Mapped[str] = mapped_column(String(512), index=True)
    version: Mapped[int] = mapped_column(Integer)
    tasks: Mapped[dict[str, Any]] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(2048))
    decision_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DecisionRow(Base):
    """A strategy's decision (``core.decisions.Decision``); the id is stable across replays."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_app_task", "app", "task"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    app: Mapped[str] = mapped_column(String(512))
    task: Mapped[str] = mapped_column(String(512))
    strategy: Mapped[str] = mapped_column(String(32))
    action: Mapped[dict[str, Any]] = mapped_column(JSON)
    rationale: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    expected_impact: Mapped[dict[str, Any]] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), index=True)
    deployment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    rollback_plan: Mapped[list[Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DeploymentRow(Base):
    """A canary rollout of a decision (``core.decisions.Deployment``)."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_app_task", "app", "task"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"), unique=True)
    app: Mapped[str] = mapped_column(String(512))
    task: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    baseline_version: Mapped[int] = mapped_column(Integer)
    canary_version: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stage_started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reason: Mapped[str] = mapped_column(String(2048))


class VerdictRow(Base):
    """The judge's verdict on one stage, with every metric check (``core.decisions.Verdict``)."""

    __tablename__ = "verdicts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    stage: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    checks: Mapped[list[Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """Who did what to which resource, and the details (config changes, approvals, keys)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutboxRow(Base):
    """An event to deliver to the integrations, at least once, idempotent by ``key``.

    Written in the same transaction as the decision or verdict it reports; the integrations
    service delivers it and records the outcome.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    app: Mapped[str | None] = mapped_column(String(512), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)


class IntegrationRow(Base):
    """A Slack/Jira/GitHub/Anthropic connection made through the API; ``secret`` is write-only."""

    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(4096))
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CanarySampleRow(Base):
    """What each side of a deployment served in one period (the judge pools a stage's rows).

    Unique per (deployment, stage, period, side): a replayed period changes nothing.
    """

    __tablename__ = "canary_samples"
    __table_args__ = (
        UniqueConstraint("deployment_id", "stage", "window_start", "side", name="uq_canary_sample"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    stage: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    side: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
