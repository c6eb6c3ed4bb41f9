"""record who acted: a `user` column beside each writer's kind (REST token name, OS user of the shell)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 22:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("es_events", sa.Column("writer_user", sa.String(250), nullable=True))
    op.add_column("es_state", sa.Column("updated_by_user", sa.String(250), nullable=True))


def downgrade() -> None:
    op.drop_column("es_state", "updated_by_user")
    op.drop_column("es_events", "writer_user")
