"""JWT replay cache table (used when no Redis is configured).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jwt_replay",
        sa.Column("jti_key", sa.String(512), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_jwt_replay_expires_at", "jwt_replay", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_jwt_replay_expires_at", "jwt_replay")
    op.drop_table("jwt_replay")
