"""Stray events (late, unmatched feedback) and the revision of a window.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

from storage.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("window_stats") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "stray_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(512), nullable=False),
        sa.Column("app", sa.String(512), nullable=False),
        sa.Column("task", sa.String(512), nullable=False),
        sa.Column("event_time", UtcDateTime(), nullable=False),
        sa.Column("watermark", UtcDateTime(), nullable=False),
        sa.Column("in_window", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(1024), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stray_events"),
        sa.UniqueConstraint("kind", "event_id", name="uq_stray_event"),
    )
    op.create_index("ix_stray_events_app", "stray_events", ["app"])


def downgrade() -> None:
    op.drop_index("ix_stray_events_app", table_name="stray_events")
    op.drop_table("stray_events")
    with op.batch_alter_table("window_stats") as batch:
        batch.drop_column("revision")
