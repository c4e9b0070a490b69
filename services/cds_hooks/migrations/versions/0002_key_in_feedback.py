"""Recommendation key stored with each feedback row; no issued-card table.

Card uuids now carry their key (services/cds_hooks/card_ids.py), so hooks write nothing.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("recommendation_key", sa.String(64), nullable=True))
    op.drop_table("issued_card")


def downgrade() -> None:
    op.create_table(
        "issued_card",
        sa.Column("card_uuid", sa.String(64), primary_key=True),
        sa.Column("service_id", sa.String(64), nullable=False),
        sa.Column("recommendation_key", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("recommendation_key")
