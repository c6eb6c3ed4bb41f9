"""every change of Airflow's asset_state_store and asset_active is an event: triggers, and the log's
starting point (the assets, activations and values already there)

Revision ID: 0001
Revises:
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

from eventstore.airflow import mirror
from eventstore.airflow.writer_context import dialect_module

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    # Triggers first: on PostgreSQL creating them locks both tables against writes until commit, so the
    # starting point read next is exactly what the triggers take over from.
    dialect_module(conn.dialect.name).install(conn)
    mirror.backfill(conn)


def downgrade() -> None:
    conn = op.get_bind()
    dialect_module(conn.dialect.name).uninstall(conn)
