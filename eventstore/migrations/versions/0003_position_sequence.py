"""global positions from a sequence where the database orders the feed that way (PostgreSQL)

Where `Backend.ordering` is "sequence", positions come from es_event_positions instead of the locked
es_log_head row (eventstore.ordering). The sequence continues after the last position the head handed
out, so positions are never reused; downgrading writes the sequence's last value back into the head.
Elsewhere this revision changes nothing. Upgrade with the writers of the previous version stopped.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 20:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from eventstore.dialects import backend_for

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

event_positions = sa.Sequence("es_event_positions", start=1, cache=1)
log_head = sa.table("es_log_head", sa.column("id"), sa.column("position"))


def _uses_sequence() -> bool:
    return backend_for(op.get_bind().dialect.name).ordering == "sequence"


def upgrade() -> None:
    if not _uses_sequence():
        return
    op.execute(sa.schema.CreateSequence(event_positions))
    # Locked to the end of the migration: a writer of the previous version still running waits, and
    # then fails on a duplicate position instead of reusing one silently. Stop writers to upgrade.
    head = (
        op.get_bind()
        .execute(sa.select(log_head.c.position).where(log_head.c.id == 1).with_for_update())
        .scalar_one()
    )
    if head > 0:  # the next position is head + 1
        op.execute(sa.select(sa.func.setval(event_positions.name, head)))


def downgrade() -> None:
    if not _uses_sequence():
        return
    last = sa.text("(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM es_event_positions)")
    op.execute(log_head.update().where(log_head.c.id == 1).values(position=last))
    op.execute(sa.schema.DropSequence(event_positions))
