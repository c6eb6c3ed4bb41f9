"""The append-only log: the only code that writes events, stream versions and global positions.

An append runs inside the caller's transaction, in this order:

1. `lock_stream` locks the asset's row (SELECT ... FOR UPDATE). Writers of one asset queue here, and
   only here; writers of other assets go on. Holding it, the caller reads the current state and
   decides the events, so no update is ever lost and versions are consecutive.
2. `append` stamps the events (next versions, a time no earlier than the stream's last), lets every
   inline projection apply them, and moves the stream's head.
3. Last, it takes the global ordering lock by advancing `es_log_head` and inserts the events with the
   positions it got. The lock is held only from there to COMMIT, so positions become visible in the
   order they were handed out: a reader that has seen position p never later finds a new event <= p.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema
from eventstore.events import NewEvent, PendingEvent
from eventstore.writers import Writer


class InlineProjection(Protocol):
    """A view kept in step with the log: `apply` runs in the appending transaction, before commit."""

    def apply(self, conn: Connection, events: Sequence[NewEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class Stream:
    """The head of one asset's stream, read under its row lock."""

    asset_id: int
    version: int
    last_recorded_at: datetime | None


_assets = schema.assets
_active = schema.asset_active
_events = schema.events
_head = schema.log_head

_is_active = sa.exists().where(_active.c.asset_id == _assets.c.id)

_lock_stream = (
    sa.select(_assets.c.id, _assets.c.version, _assets.c.last_recorded_at)
    .where(_assets.c.identity_hash == sa.bindparam("identity_hash"))
    .with_for_update()
)
_lock_active_stream = _lock_stream.where(_is_active)

_advance_stream = (
    _assets.update()
    .where(_assets.c.id == sa.bindparam("asset_id"))
    .values(version=sa.bindparam("new_version"), last_recorded_at=sa.bindparam("recorded_at"))
)
_insert_events = _events.insert()
_advance_head = _head.update().where(_head.c.id == 1).values(position=_head.c.position + sa.bindparam("n"))
_read_head = sa.select(_head.c.position).where(_head.c.id == 1)


def writer_columns(writer: Writer, prefix: str) -> dict[str, object]:
    return {
        f"{prefix}kind": writer.kind.value,
        f"{prefix}dag_id": writer.dag_id,
        f"{prefix}run_id": writer.run_id,
        f"{prefix}task_id": writer.task_id,
        f"{prefix}map_index": writer.map_index,
        f"{prefix}try_number": writer.try_number,
    }


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventLog:
    """Appends events to asset streams and keeps the inline projections in the same transaction."""

    def __init__(self, projections: Sequence[InlineProjection]) -> None:
        self.projections = tuple(projections)

    def lock_stream(self, conn: Connection, identity_hash: str, *, active_only: bool) -> Stream | None:
        """Lock the asset's stream head; None if the asset is unknown (or, with active_only, inactive)."""
        query = _lock_active_stream if active_only else _lock_stream
        row = conn.execute(query, {"identity_hash": identity_hash}).first()
        return None if row is None else Stream(row.id, row.version, row.last_recorded_at)

    def append(
        self, conn: Connection, stream: Stream, pending: Sequence[PendingEvent], writer: Writer
    ) -> list[NewEvent]:
        """Append `pending` to the locked `stream`; the caller's transaction commits them."""
        if not pending:
            return []
        now = utcnow()
        if stream.last_recorded_at is not None and stream.last_recorded_at > now:
            now = stream.last_recorded_at
        events = [
            NewEvent(stream.asset_id, stream.version + i, now, p.op, p.key, p.value, p.previous, writer)
            for i, p in enumerate(pending, start=1)
        ]
        for projection in self.projections:
            projection.apply(conn, events)
        conn.execute(
            _advance_stream,
            {"asset_id": stream.asset_id, "new_version": events[-1].version, "recorded_at": now},
        )
        # The ordering lock: nothing may follow it in the transaction but the insert and COMMIT.
        last = self._reserve_positions(conn, len(events))
        first = last - len(events) + 1
        conn.execute(
            _insert_events,
            [
                {
                    "position": first + i,
                    "asset_id": e.asset_id,
                    "version": e.version,
                    "op": e.op.value,
                    "key": e.key,
                    "value": e.value,
                    "previous": e.previous,
                    "recorded_at": e.recorded_at,
                    **writer_columns(e.writer, "writer_"),
                }
                for i, e in enumerate(events)
            ],
        )
        return events

    @staticmethod
    def _reserve_positions(conn: Connection, n: int) -> int:
        """Advance the log head by n under its row lock and return the last position reserved."""
        if conn.dialect.update_returning:
            return int(conn.execute(_advance_head.returning(_head.c.position), {"n": n}).scalar_one())
        conn.execute(_advance_head, {"n": n})  # MariaDB: no UPDATE ... RETURNING; the row stays locked
        return int(conn.execute(_read_head).scalar_one())
