"""snapshots of each asset's state every N versions, for fast as-of reads

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from eventstore.dialects import JsonText

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "es_snapshots",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", JsonText, nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["es_assets.id"], name=op.f("fk_es_snapshots_asset_id_es_assets")
        ),
        sa.PrimaryKeyConstraint("asset_id", "version", name=op.f("pk_es_snapshots")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("es_snapshots")
