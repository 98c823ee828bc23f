"""Window token sums as BIGINT: a busy segment's per-minute sum can pass 2^31 (issue 16).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Sums of per-call token counts; each call is at most core.event_limits.MAX_TOKENS (1e9), so
# a window's sums need 64 bits.
_TOKEN_SUMS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "prompt_tokens_fixed",
    "prompt_tokens_fixed_of",
)


def upgrade() -> None:
    with op.batch_alter_table("window_stats") as batch:
        for name in _TOKEN_SUMS:
            batch.alter_column(name, existing_type=sa.Integer(), type_=sa.BigInteger())


def downgrade() -> None:
    with op.batch_alter_table("window_stats") as batch:
        for name in _TOKEN_SUMS:
            batch.alter_column(name, existing_type=sa.BigInteger(), type_=sa.Integer())
