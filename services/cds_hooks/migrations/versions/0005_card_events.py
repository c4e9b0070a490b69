"""Cards shown (counts per day, service, key and mode) and shadow-mode events (a hashed patient
id, never the id): what the analytics and the go-live report read.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_counts",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("service_id", sa.String(64), primary_key=True),
        sa.Column("recommendation_key", sa.String(64), primary_key=True),
        sa.Column("mode", sa.String(16), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "shadow_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("recommendation_key", sa.String(64), nullable=False),
        sa.Column("indicator", sa.String(16), nullable=True),
        sa.Column("patient_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_shadow_events_day", "shadow_events", ["day"])


def downgrade() -> None:
    op.drop_index("ix_shadow_events_day", "shadow_events")
    op.drop_table("shadow_events")
    op.drop_table("card_counts")
