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
  assets went from 0.7x to 1.3-1.6x one writer's throughput, as much as 8 plain upserts reach on the
  same machine: docs/performance.md). Events may now become visible out of position order, and the
  reader settles that:

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
import logging
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
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0002, 0.005

logger = logging.getLogger("eventstore")

_head = schema.log_head
_events = schema.events


class Ordering(abc.ABC):
    """How positions are handed out to writers and how the feed reads them back gap-safely."""

    @abc.abstractmethod
    def reserve(self, conn: Connectable, n: int) -> list[int]:
        """Hand out `n` new positions, increasing, inside the caller's write transaction. The last thing
        the transaction does before inserting its events and committing."""

    @abc.abstractmethod
    def next_position(self, source: sa.CTE) -> sa.CTE:
        """A CTE with one `position` column and one row per row of `source` (one new position each), run
        only once `source` has produced its rows: the ordering step of the one-statement set."""

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
        committed later can come before. `query` selects `es_events.position`. `conn` is in autocommit:
        each statement is its own transaction, with a snapshot of its own."""


class HeadRowOrdering(Ordering):
    """The `es_log_head` row, advanced last and locked until COMMIT (see the module doc)."""

    def __init__(self, dialect: Dialect) -> None:
        advanced = _head.c.position + sa.bindparam("n")
        advance = _head.update().where(_head.c.id == 1)
        self._returning = dialect.update_returning
        if self._returning:
            self._advance = Prepared(advance.values(position=advanced).returning(_head.c.position), dialect)
        else:
            # MariaDB/MySQL have no UPDATE ... RETURNING; LAST_INSERT_ID(x) stores x and returns it in
            # the statement's OK packet, so the new head comes back without a second round trip.
            self._advance = Prepared(advance.values(position=sa.func.last_insert_id(advanced)), dialect)

    def reserve(self, conn: Connectable, n: int) -> list[int]:
        if self._returning:
            row = self._advance.first(conn, {"n": n})
            assert row is not None, "es_log_head has its one row from the first migration"
            last = int(row[0])
        else:
            last = self._advance.run_for_insert_id(conn, {"n": n})  # the row stays locked until commit
        return list(range(last - n + 1, last + 1))

    def next_position(self, source: sa.CTE) -> sa.CTE:
        # Locked only once `source` has a row (EXISTS), so in the log's order: the asset's row first.
        return (
            _head.update()
            .where(_head.c.id == 1, sa.exists(sa.select(source)))
            .values(position=_head.c.position + 1)
            .returning(_head.c.position)
            .cte("next_position")
        )

    def last_assigned(self, conn: Connection) -> int:
        return int(conn.execute(sa.select(_head.c.position).where(_head.c.id == 1)).scalar_one())

    def restart_after(self, conn: Connection, position: int) -> None:
        conn.execute(_head.update().where(_head.c.id == 1).values(position=position))

    def read_settled(self, conn: Connection, query: sa.Select[Any], after: int) -> Sequence[Row[Any]]:
        return conn.execute(query).all()  # positions become visible in order: nothing to settle


class SequenceOrdering(Ordering):
    """The `es_event_positions` sequence, no lock; the feed settles holes (see the module doc)."""

    def __init__(self, dialect: Dialect) -> None:
        positions = schema.event_positions
        # The transaction id first (MATERIALIZED: evaluated before any nextval), so the module doc's
        # argument holds for every caller, also one that has not written a row yet.
        own_id = sa.select(sa.func.pg_current_xact_id()).cte("own_transaction").prefix_with("MATERIALIZED")
        numbers = sa.func.generate_series(1, sa.bindparam("n")).table_valued("n")
        self._reserve = Prepared(
            sa.select(positions.next_value()).select_from(own_id).join(numbers, sa.true()), dialect
        )
        self._last = sa.select(sa.text("CASE WHEN is_called THEN last_value ELSE 0 END")).select_from(
            sa.table(positions.name)
        )
        self._new_transaction_id = sa.select(sa.cast(sa.func.pg_current_xact_id(), sa.Text))
        oldest_in_progress = sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot())
        self._none_older_in_progress = sa.select(oldest_in_progress >= sa.cast(sa.bindparam("marker"), _Xid8))
        # Every position up to here is committed or a hole forever (raised by each wait that settled).
        self._settled_through = 0

    def reserve(self, conn: Connectable, n: int) -> list[int]:
        return sorted(int(row[0]) for row in self._reserve.all(conn, {"n": n}))

    def next_position(self, source: sa.CTE) -> sa.CTE:
        return (
            sa.select(schema.event_positions.next_value().label("position"))
            .select_from(source)
            .cte("next_position")
        )

    def last_assigned(self, conn: Connection) -> int:
        return int(conn.execute(self._last).scalar_one())

    def restart_after(self, conn: Connection, position: int) -> None:
        # setval(seq, p) hands out p + 1 next; setval(seq, 1, false) hands out 1 next.
        called = position > 0
        conn.execute(sa.select(sa.func.setval(schema.event_positions.name, max(position, 1), called)))
        self._settled_through = 0

    def read_settled(self, conn: Connection, query: sa.Select[Any], after: int) -> Sequence[Row[Any]]:
        rows = conn.execute(query).all()
        final = _final_rows(after, rows, self._settled_through)
        if final == len(rows):
            return rows
        # A hole that a transaction in progress may still fill: wait those out (module doc, 2).
        marker = conn.execute(self._new_transaction_id).scalar_one()  # autocommit: committed at once
        if not self._wait_for_older_transactions(conn, marker):
            logger.warning(
                "The feed waited %.0f s for write transactions older than %s to finish; returning only "
                "the events before the first unsettled hole. A transaction left open on the server holds "
                "the feed back until it ends.",
                SETTLE_TIMEOUT,
                marker,
            )
            return rows[:final]
        bound = rows[-1].position
        self._settled_through = max(self._settled_through, bound)
        return conn.execute(query.where(_events.c.position <= bound)).all()

    def _wait_for_older_transactions(self, conn: Connection, marker: str) -> bool:
        """Poll until no transaction older than `marker` is in progress; False after SETTLE_TIMEOUT."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        pause = _FIRST_PAUSE
        while not conn.execute(self._none_older_in_progress, {"marker": marker}).scalar_one():
            if time.monotonic() > deadline:
                return False
            time.sleep(pause)
            pause = min(2 * pause, _LONGEST_PAUSE)
        return True


class _Xid8(sa.types.UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id, for the casts of SequenceOrdering."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


def _final_rows(after: int, rows: Sequence[Row[Any]], settled_through: int) -> int:
    """How many of the rows, from the first, are final: up to the first hole above `settled_through`
    (all of them when their positions run on from `after` without one)."""
    previous = after
    for index, row in enumerate(rows):
        if row.position - 1 > max(previous, settled_through):  # a hole, and not known to be settled
            return index
        previous = row.position
    return len(rows)


def ordering_for(dialect: Dialect) -> Ordering:
    """The ordering of the dialect's database (`Backend.ordering`)."""
    orderings: dict[str, Callable[[Dialect], Ordering]] = {
        "head_row": HeadRowOrdering,
        "sequence": SequenceOrdering,
    }
    return orderings[backend_for(dialect.name).ordering](dialect)
