"""SQLAlchemy tables; the schema itself comes from Alembic migrations, never ``create_all``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = ["ApiKeyRow", "Base", "InsightRow", "StrayEventRow", "UtcDateTime", "WindowRow"]


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
    """One closed window of one (app, task, model, variant); flat columns for querying."""

    __tablename__ = "window_stats"
    __table_args__ = (
        UniqueConstraint(
            "kind", "window_start", "app", "task", "model", "variant", name="uq_window"
        ),
    )

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
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cache_read_tokens: Mapped[int] = mapped_column(Integer)
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
    prompt_tokens_fixed: Mapped[int] = mapped_column(Integer, server_default="0")
    prompt_tokens_fixed_of: Mapped[int] = mapped_column(Integer, server_default="0")
    fixed_prompt_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


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
