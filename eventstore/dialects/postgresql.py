"""PostgreSQL: positions from a sequence settled by the feed reader, and `set` in one statement.

Positions (`SequenceOrdering`): writers take `nextval('es_event_positions')` with no lock held to COMMIT,
so PostgreSQL flushes the commits of concurrent writers together (docs/performance.md measures what
that gives 8 writers on distinct assets). Events
may then become visible out of position order, and the feed reader settles that:

1. It reads the events after `after`. If their positions run on from `after` without a hole
   (after+1, after+2, ...), they are all committed, so final: it returns them.
2. A hole may belong to a transaction still in progress. The reader then takes a transaction id of its
   own (X, newer than every id handed out before), and reads again, bounded by the highest position it
   saw first (M), until that read's own snapshot shows no transaction older than X in progress
   (`pg_snapshot_xmin >= X`). That read is final up to M.

Why 2 is exact: a writer locks its asset's row, and so has a transaction id, before it calls `nextval`,
and the sequence hands out increasing numbers (CACHE 1). A transaction holding a position q < M called
`nextval` before the one that committed M did, so before the first read and before X was handed out: its
id is older than X. Once no transaction older than X is in progress, every position up to M is settled:
committed, or a hole forever (rolled back, or compacted).

Step 2 waits only when the read has a hole while writers are active, for the commits in flight: a few
milliseconds (its transaction id costs no flush: the reader writes nothing). A write transaction held
open elsewhere on the same server (any database) delays it as long; after `SETTLE_TIMEOUT` the reader
gets nothing new this time and asks again later, as when it is caught up.

The single-statement set (`eventstore.single_set`), as one statement in autocommit:

    WITH stream AS (SELECT id, version FROM es_assets WHERE identity_hash = :asset AND <active>
                    AND <every projection's condition>),
         claim AS (UPDATE es_assets SET version = version + 1, last_recorded_at = <no earlier>
                   FROM stream WHERE id = stream.id AND version = stream.version RETURNING ...),
         <each projection's writes, e.g. the view's upsert FROM claim>,
         next_position AS (SELECT nextval('es_event_positions') FROM claim)
    INSERT INTO es_events SELECT next_position.position, claim.*, (SELECT old value) ...
    FROM claim, next_position RETURNING position

Why it is exact, also under concurrency: all parts of the statement read one snapshot, taken before it
waited for any lock. `claim` only updates the asset's row if its version is still the one that snapshot
saw (PostgreSQL re-checks the condition on the newest row version after waiting for a concurrent
writer). Every change to an asset's state bumps that version in the same transaction, so when the check
passes, the old value read from the snapshot is the current one and `previous` is right. The position is
taken after the asset's row is locked, as in the log's transaction: `next_position` runs only on the row
`claim` returns.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, Dialect, Row
from sqlalchemy.exc import DBAPIError

from eventstore import schema
from eventstore.connections import socket_closed
from eventstore.dialects.base import Backend
from eventstore.events import Op
from eventstore.log import claim_versions
from eventstore.ordering import Ordering
from eventstore.prepared import Connectable, Prepared
from eventstore.single_set import KEY, VALUE, WRITER, SetParts, SingleSet
from eventstore.writers import WRITER_FIELDS

SETTLE_TIMEOUT = 5.0
"""Seconds a feed read waits for the transactions in progress when it met a hole (SequenceOrdering)."""
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0002, 0.005
_MIGRATION_LOCK_KEY = 0x6576656E7473  # "events"

logger = logging.getLogger("eventstore")

_assets = schema.assets
_events = schema.events


class PostgresBackend(Backend):
    names = ("postgresql",)
    ordering = "sequence"

    def engine_options(self, url: URL) -> dict[str, Any]:
        # `?prepare_threshold=none` behind a pooler in transaction mode (PgBouncer before 1.21, or
        # without max_prepared_statements): psycopg then never prepares statements on the server, where
        # another client's transaction would find them (docs/operations.md, scaling out).
        if "prepare_threshold" not in url.query:
            return {}
        text = url.query["prepare_threshold"]
        text = text if isinstance(text, str) else text[-1]
        if text.lower() == "none":
            return {"connect_args": {"prepare_threshold": None}}
        if not text.isdigit():
            raise ValueError(
                f"prepare_threshold={text!r} in the URL: use a whole number of executions before psycopg "
                "prepares a statement (default 5), or none to never prepare (behind PgBouncer in "
                "transaction mode)"
            )
        return {"connect_args": {"prepare_threshold": int(text)}}

    def make_ordering(self, dialect: Dialect) -> Ordering:
        return SequenceOrdering(dialect)

    def single_set(self, dialect: Dialect, ordering: Ordering, parts: SetParts) -> SingleSet:
        return SingleSet(Prepared(_single_set_statement(self, ordering, parts), dialect), parts)

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        stmt = postgresql.insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)

    def insert_if_absent(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def is_retryable(self, error: DBAPIError) -> bool:
        return getattr(error.orig, "sqlstate", None) in ("40001", "40P01")

    def is_closed(self, dbapi_connection: Any) -> bool:
        return bool(dbapi_connection.closed) or socket_closed(dbapi_connection.fileno())

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # Transaction-scoped: released by the commit that ends the migration.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        yield


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


def _single_set_statement(backend: Backend, ordering: Ordering, parts: SetParts) -> sa.Insert:
    conditions = [part.only_if for part in parts.projections if part.only_if is not None]
    stream = (
        sa.select(_assets.c.id, _assets.c.version)
        .where(_assets.c.identity_hash == sa.bindparam("asset_identity"), schema.is_active, *conditions)
        .cte("stream")
    )
    claim = (
        claim_versions.where(_assets.c.id == stream.c.id, _assets.c.version == stream.c.version)
        .returning(_assets.c.id, _assets.c.version, _assets.c.last_recorded_at)
        .cte("claim")
    )
    writes = [part.writes(claim) for part in parts.projections if part.writes is not None]
    next_position = ordering.next_position(claim)
    previous = parts.current_value(claim.c.id)
    event_row = sa.select(
        next_position.c.position,
        claim.c.id,
        claim.c.version,
        sa.literal(Op.SET.value),
        KEY,
        VALUE,
        previous,
        claim.c.last_recorded_at,
        *WRITER,
    ).select_from(claim, next_position)
    columns = ["position", "asset_id", "version", "op", "key", "value", "previous", "recorded_at"]
    return (
        _events.insert()
        .from_select([*columns, *(f"writer_{field}" for field in WRITER_FIELDS)], event_row)
        .add_cte(*writes)
        .returning(_events.c.position)
    )


BACKEND = PostgresBackend()
