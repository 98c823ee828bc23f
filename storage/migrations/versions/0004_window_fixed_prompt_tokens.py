"""Fixed-prompt tokens of a window and their share of input tokens.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("window_stats") as batch:
        batch.add_column(
            sa.Column("prompt_tokens_fixed", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("prompt_tokens_fixed_of", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("fixed_prompt_share", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("window_stats") as batch:
        batch.drop_column("fixed_prompt_share")
        batch.drop_column("prompt_tokens_fixed_of")
        batch.drop_column("prompt_tokens_fixed")
