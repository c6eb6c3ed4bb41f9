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

- `SequenceOrdering` (PostgreSQL, in eventstore.dialects.postgresql): positions come from a sequence,
  with no lock held to COMMIT, and the feed reader settles the holes that commits out of order leave
  (the proof is in that module).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Row

from eventstore import schema
from eventstore.dialects.base import backend_for
from eventstore.prepared import Connectable, Prepared

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
    def read_settled(self, conn: Connection, query: sa.Select[Any], after: int) -> Sequence[Row[Any]]:
        """The rows of `query` (events with position > `after`, in position order, limited) that no event
        committed later can come before. `query` selects `es_events.position`. `conn` is in autocommit:
        each statement is its own transaction, with a snapshot of its own."""


class HeadRowOrdering(Ordering):
    """The `es_log_head` row, advanced last and locked until COMMIT (see the module doc)."""

    def __init__(self, dialect: Dialect) -> None:
        advance = _head.update().where(_head.c.id == 1).values(position=_head.c.position + sa.bindparam("n"))
        self._advance = (
            Prepared(advance.returning(_head.c.position), dialect) if dialect.update_returning else None
        )

    def reserve(self, conn: Connectable, n: int) -> list[int]:
        """The row stays locked until commit. (Where UPDATE ... RETURNING is missing, the backend's own
        subclass reads the new head back: eventstore.dialects.mysql.)"""
        assert self._advance is not None, "a database without UPDATE ... RETURNING has its own reserve"
        row = self._advance.first(conn, {"n": n})
        assert row is not None, "es_log_head has its one row from the first migration"
        last = int(row[0])
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

    def read_settled(self, conn: Connection, query: sa.Select[Any], after: int) -> Sequence[Row[Any]]:
        return conn.execute(query).all()  # positions become visible in order: nothing to settle


def ordering_for(dialect: Dialect) -> Ordering:
    """The ordering of the dialect's database (`Backend.make_ordering`)."""
    return backend_for(dialect.name).make_ordering(dialect)
