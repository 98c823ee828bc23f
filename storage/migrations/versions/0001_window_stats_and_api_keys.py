"""Window stats and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "window_stats",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("window_start", UtcDateTime(), nullable=False),
        sa.Column("window_end", UtcDateTime(), nullable=False),
        sa.Column("app", sa.String(512), nullable=False),
        sa.Column("task", sa.String(512), nullable=False),
        sa.Column("model", sa.String(512), nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("ok_count", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("errors_by_type", sa.JSON(), nullable=False),
        sa.Column("latency_p50", sa.Float(), nullable=False),
        sa.Column("latency_p90", sa.Float(), nullable=False),
        sa.Column("latency_p95", sa.Float(), nullable=False),
        sa.Column("latency_p99", sa.Float(), nullable=False),
        sa.Column("latency_max", sa.Float(), nullable=False),
        sa.Column("ttft_p50", sa.Float(), nullable=True),
        sa.Column("ttft_p95", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("cost_per_success_usd", sa.Float(), nullable=True),
        sa.Column("quality_count", sa.Integer(), nullable=False),
        sa.Column("quality_mean", sa.Float(), nullable=True),
        sa.Column("quality_stddev", sa.Float(), nullable=True),
        sa.Column("quality_ci95_low", sa.Float(), nullable=True),
        sa.Column("quality_ci95_high", sa.Float(), nullable=True),
        sa.Column("distinct_prompts", sa.Integer(), nullable=False),
        sa.Column("repeat_ratio", sa.Float(), nullable=False),
        sa.Column("rate_per_s", sa.Float(), nullable=False),
        sa.Column("peak_rate_per_s", sa.Float(), nullable=False),
        sa.Column("first_event_at", UtcDateTime(), nullable=False),
        sa.Column("last_event_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_window_stats"),
        sa.UniqueConstraint(
            "kind", "window_start", "app", "task", "model", "variant", name="uq_window"
        ),
    )
    op.create_index("ix_window_stats_app", "window_stats", ["app"])
    op.create_index("ix_window_stats_window_start", "window_stats", ["window_start"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_window_stats_window_start", table_name="window_stats")
    op.drop_index("ix_window_stats_app", table_name="window_stats")
    op.drop_table("window_stats")
