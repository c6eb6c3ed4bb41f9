"""the event log, the current-state view, assets and compaction records

Revision ID: 0001
Revises:
Create Date: 2026-11-24 09:30:53.256447
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from eventstore.dialects import JsonText, StateKey, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "es_assets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("last_recorded_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("deactivated_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_es_assets")),
        sa.UniqueConstraint("identity_hash", name=op.f("uq_es_assets_identity_hash")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "es_log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_es_log_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_es_log_head")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    # The log head starts at position 0; the first event gets position 1.
    op.bulk_insert(
        sa.table("es_log_head", sa.column("id"), sa.column("position")), [{"id": 1, "position": 0}]
    )
    op.create_table(
        "es_asset_active",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.Column("uri_hash", sa.String(length=64), nullable=False),
        sa.Column("activated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["es_assets.id"], name=op.f("fk_es_asset_active_asset_id_es_assets")
        ),
        sa.PrimaryKeyConstraint("asset_id", name=op.f("pk_es_asset_active")),
        sa.UniqueConstraint("name_hash", name=op.f("uq_es_asset_active_name_hash")),
        sa.UniqueConstraint("uri_hash", name=op.f("uq_es_asset_active_uri_hash")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_table(
        "es_compactions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("last_version", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("keys", sa.BigInteger(), nullable=False),
        sa.Column("deactivated_at", UtcDateTime(), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("compacted_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["es_assets.id"], name=op.f("fk_es_compactions_asset_id_es_assets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_es_compactions")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_es_compactions_asset_id"), "es_compactions", ["asset_id"], unique=False)
    op.create_table(
        "es_events",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("key", StateKey(), nullable=True),
        sa.Column("value", JsonText, nullable=True),
        sa.Column("previous", JsonText, nullable=True),
        sa.Column("writer_kind", sa.String(length=16), nullable=False),
        sa.Column("writer_dag_id", sa.String(length=250), nullable=True),
        sa.Column("writer_run_id", sa.String(length=250), nullable=True),
        sa.Column("writer_task_id", sa.String(length=250), nullable=True),
        sa.Column("writer_map_index", sa.Integer(), nullable=True),
        sa.Column("writer_try_number", sa.Integer(), nullable=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["es_assets.id"], name=op.f("fk_es_events_asset_id_es_assets")),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_es_events")),
        sa.UniqueConstraint("asset_id", "version", name=op.f("uq_es_events_asset_id_version")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )
    op.create_index(
        op.f("ix_es_events_asset_id_key_position"), "es_events", ["asset_id", "key", "position"], unique=False
    )
    op.create_index(
        op.f("ix_es_events_asset_id_recorded_at"), "es_events", ["asset_id", "recorded_at"], unique=False
    )
    op.create_table(
        "es_state",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("key", StateKey(), nullable=False),
        sa.Column("value", JsonText, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("updated_by_kind", sa.String(length=16), nullable=False),
        sa.Column("updated_by_dag_id", sa.String(length=250), nullable=True),
        sa.Column("updated_by_run_id", sa.String(length=250), nullable=True),
        sa.Column("updated_by_task_id", sa.String(length=250), nullable=True),
        sa.Column("updated_by_map_index", sa.Integer(), nullable=True),
        sa.Column("updated_by_try_number", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["asset_id"], ["es_assets.id"], name=op.f("fk_es_state_asset_id_es_assets")),
        sa.PrimaryKeyConstraint("asset_id", "key", name=op.f("pk_es_state")),
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("es_state")
    op.drop_index(op.f("ix_es_events_asset_id_recorded_at"), table_name="es_events")
    op.drop_index(op.f("ix_es_events_asset_id_key_position"), table_name="es_events")
    op.drop_table("es_events")
    op.drop_index(op.f("ix_es_compactions_asset_id"), table_name="es_compactions")
    op.drop_table("es_compactions")
    op.drop_table("es_asset_active")
    op.drop_table("es_log_head")
    op.drop_table("es_assets")
