"""drop the (asset_id, recorded_at) index of es_events: times are found through the version key

Within a stream recorded_at never decreases with version, so history's time bounds and as-of by time
search the unique (asset_id, version) key instead (projections.versions). Every write no longer
maintains a fourth index on the log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 21:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_es_events_asset_id_recorded_at"), table_name="es_events")


def downgrade() -> None:
    op.create_index(
        op.f("ix_es_events_asset_id_recorded_at"), "es_events", ["asset_id", "recorded_at"], unique=False
    )
