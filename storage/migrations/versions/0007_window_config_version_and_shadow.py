"""Windows per config version, with paired shadow quality.

``window_stats`` gains ``config_version`` (nullable: calls that did not report one) and
``shadow`` (per shadow model, the paired quality sums as JSON). The uniqueness (and upsert) key
becomes (kind, window_start, app, task, model, variant, config_version), as a unique index on
``coalesce(config_version, -1)`` so that windows without a version still replace each other
(a plain unique constraint treats NULLs as distinct, in PostgreSQL and SQLite alike).

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_KEY = ["kind", "window_start", "app", "task", "model", "variant"]


def upgrade() -> None:
    with op.batch_alter_table("window_stats") as batch:
        batch.add_column(sa.Column("config_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("shadow", sa.JSON(), nullable=True))
        batch.drop_constraint("uq_window", type_="unique")
    op.create_index(
        "uq_window_version",
        "window_stats",
        [*_KEY, sa.text("coalesce(config_version, -1)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_window_version", table_name="window_stats")
    # Windows of several config versions of one segment cannot share the old key: keep the
    # latest-updated one of each.
    op.execute(
        "DELETE FROM window_stats WHERE id NOT IN (SELECT max(id) FROM window_stats "
        "GROUP BY kind, window_start, app, task, model, variant)"
    )
    with op.batch_alter_table("window_stats") as batch:
        batch.create_unique_constraint("uq_window", _KEY)
        batch.drop_column("shadow")
        batch.drop_column("config_version")
