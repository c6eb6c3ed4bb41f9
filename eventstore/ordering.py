"""Global positions: how each database hands them out so that no event ever appears behind a reader.

The contract of the feed (`Store.events`): a reader that has seen position p never later finds a
committed event at or below p. Positions are handed out before COMMIT, so something must stop a
transaction that got position 5 from committing after one that got position 6 has been read. There are
two ways, and `Backend.ordering` says which one a database uses:

- `HeadRowOrdering` (SQLite, MariaDB/MySQL): the writer advances the single row of `es_log_head` as the
  last step of its transaction and holds that row's lock until COMMIT returns. Positions become visible
  in the order they were handed out, and the feed reads `position > after` as it is. The price: the
  commits of all writers, whatever their asset, happen one after the other (SQLite has a single writer
  anyway).

- `SequenceOrdering` (PostgreSQL): positions come from the sequence `es_event_positions`, and no lock is
  held for them, so PostgreSQL flushes the commits of concurrent writers together (8 writers on distinct
  assets went from 0.7x to over 1.5x one writer's throughput: docs/performance.md). Events may now become
  visible out of position order, and the reader settles that:

  1. It reads the events after `after`. If their positions run on from `after` without a hole
     (after+1, after+2, ...), they are all committed, so final: it returns them.
  2. A hole may belong to a transaction still in progress. The reader then takes a transaction id of
     its own (X, newer than every id handed out before), and reads again, bounded by the highest
     position it saw first (M), until that read's own snapshot shows no transaction older than X in
     progress (`pg_snapshot_xmin >= X`). That read is final up to M.

  Why 2 is exact: a writer locks its asset's row, and so has a transaction id, before it calls
  `nextval`, and the sequence hands out increasing numbers (CACHE 1). A transaction holding a position
  q < M called `nextval` before the one that committed M did, so before the first read and before X
  was handed out: its id is older than X. Once no transaction older than X is in progress, every
  position up to M is settled: committed, or a hole forever (rolled back, or compacted).

  Step 2 waits only when the read has a hole while writers are active, for the commits in flight: a few
  milliseconds (its transaction id costs no flush: the reader writes nothing). A write transaction held
  open elsewhere on the same server (any database) delays it as long; after `SETTLE_TIMEOUT` the reader
  gets nothing new this time and asks again later, as when it is caught up.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Row

from eventstore import schema
from eventstore.dialects import backend_for
from eventstore.prepared import Connectable, Prepared

SETTLE_TIMEOUT = 5.0
"""Seconds a feed read waits for the transactions in progress when it met a hole (SequenceOrdering)."""
_SETTLE_POLL = 0.0005

_head = schema.log_head
_events = schema.events


class Ordering(abc.ABC):
    """How positions are handed out to writers and how the feed reads them back gap-safely."""

    @abc.abstractmethod
    def reserve(self, conn: Connectable, n: int) -> list[int]:
        """Hand out `n` new positions, increasing, inside the caller's write transaction. The last thing
        the transaction does before inserting its events and committing."""

    @abc.abstractmethod
    def next_position(self, after: sa.CTE) -> sa.CTE:
        """A CTE with one `position` column and one row per row of `after` (one new position each), run
        only once `after` has produced its rows: the ordering step of the one-statement set."""

    @abc.abstractmethod
    def last_assigned(self, conn: Connection) -> int:
        """The highest position handed out so far (0 before the first event)."""

    @abc.abstractmethod
    def restart_after(self, conn: Connection, position: int) -> None:
        """Make `position` the last one handed out: for loading events in bulk, or emptying a store.
        Not for a store in use: positions must never be handed out twice."""

    @abc.abstractmethod
    def read_settled(self, conn: Connection, query: sa.Select[Any], after: int) -> Sequence[Row[Any]]:
        """The rows of `query` (events with position > `after`, in position order, limited) that no event
        committed later can come before. `query` selects `es_events.position`."""


class HeadRowOrdering(Ordering):
    """The `es_log_head` row, advanced last and locked until COMMIT (see the module doc)."""

    def __init__(self, dialect: Dialect) -> None:
        advance = _head.update().where(_head.c.id == 1).values(position=_head.c.position + sa.bindparam("n"))
        # MariaDB/MySQL have no UPDATE ... RETURNING: there the row (still locked) is read back.
        self._returning = dialect.update_returning
        self._advance = Prepared(advance.returning(_head.c.position) if self._returning else advance, dialect)
        self._read = Prepared(sa.select(_head.c.position).where(_head.c.id == 1), dialect)

    def reserve(self, conn: Connectable, n: int) -> list[int]:
        if self._returning:
            row = self._advance.first(conn, {"n": n})
        else:
            self._advance.run(conn, {"n": n})  # the row stays locked until commit
            row = self._read.first(conn, {})
        assert row is not None, "es_log_head has its one row from the first migration"
        last = int(row[0])
        return list(range(last - n + 1, last + 1))

    def next_position(self, after: sa.CTE) -> sa.CTE:
        # Locked only once `after` has a row (EXISTS), so in the log's order: the asset's row first.
        return (
            _head.update()
            .where(_head.c.id == 1, sa.exists(sa.select(after)))
            .values(position=_head.c.position + 1)
            .returning(_head.c.position)
            .cte("next_position")
        )

    def last_assigned(self, conn: Connection) -> int:
        return int(conn.execute(sa.select(_head.c.position).where(_head.c.id == 1)).scalar_one())

    def restart_after(self, conn: Connection, position: int) -> None:
        conn.execute(_head.update().where(_head.c.id == 1).values(position=position))

    def read_settled(self, conn: Connection, query: sa.Select[Any], after: int) -> Sequence[Row[Any]]:
        return conn.execute(query).all()


class SequenceOrdering(Ordering):
    """The `es_event_positions` sequence, no lock; the feed settles holes (see the module doc)."""

    def __init__(self, dialect: Dialect) -> None:
        positions = schema.event_positions
        numbers = sa.func.generate_series(1, sa.bindparam("n")).table_valued("n")
        self._reserve = Prepared(sa.select(positions.next_value()).select_from(numbers), dialect)
        self._last = sa.select(sa.text("CASE WHEN is_called THEN last_value ELSE 0 END")).select_from(
            sa.table(positions.name)
        )
        self._own_transaction_id = sa.select(sa.cast(sa.func.pg_current_xact_id(), sa.Text))
        # True when no transaction older than `marker` was in progress as this statement's snapshot was taken.
        oldest_in_progress = sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot())
        self._older_finished = (oldest_in_progress >= sa.cast(sa.bindparam("marker"), _Xid8)).label("settled")

    def reserve(self, conn: Connectable, n: int) -> list[int]:
        return sorted(int(row[0]) for row in self._reserve.all(conn, {"n": n}))

    def next_position(self, after: sa.CTE) -> sa.CTE:
        return (
            sa.select(schema.event_positions.next_value().label("position"))
            .select_from(after)
            .cte("next_position")
        )

    def last_assigned(self, conn: Connection) -> int:
        return int(conn.execute(self._last).scalar_one())

    def restart_after(self, conn: Connection, position: int) -> None:
        # setval(seq, p) hands out p + 1 next; setval(seq, 1, false) hands out 1 next.
        called = position > 0
        conn.execute(sa.select(sa.func.setval(schema.event_positions.name, max(position, 1), called)))

    def read_settled(self, conn: Connection, query: sa.Select[Any], after: int) -> Sequence[Row[Any]]:
        rows = conn.execute(query).all()
        if _without_holes(after, rows):
            return rows
        # Wait out the transactions that may still fill a hole (module doc, 2).
        marker = conn.execute(self._own_transaction_id).scalar_one()
        bounded = query.where(_events.c.position <= rows[-1].position).add_columns(self._older_finished)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            rows = conn.execute(bounded, {"marker": marker}).all()
            if not rows or rows[0].settled:
                return rows
            if time.monotonic() > deadline:
                return []
            time.sleep(_SETTLE_POLL)


class _Xid8(sa.types.UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id, for the casts of SequenceOrdering."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


def _without_holes(after: int, rows: Sequence[Row[Any]]) -> bool:
    """True if the rows' positions are after+1, after+2, ... (also when there are none)."""
    return all(row.position == after + number for number, row in enumerate(rows, start=1))


def ordering_for(dialect: Dialect) -> Ordering:
    """The ordering of the dialect's database (`Backend.ordering`)."""
    orderings: dict[str, Callable[[Dialect], Ordering]] = {
        "head_row": HeadRowOrdering,
        "sequence": SequenceOrdering,
    }
    return orderings[backend_for(dialect.name).ordering](dialect)
