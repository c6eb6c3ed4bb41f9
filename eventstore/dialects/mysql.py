"""MariaDB/MySQL: READ COMMITTED, utf8mb4, exact (binary) keys, and positions through LAST_INSERT_ID.

Global positions come from the `es_log_head` row (eventstore.ordering.HeadRowOrdering). MariaDB has no
UPDATE ... RETURNING, so the new head comes back through LAST_INSERT_ID(x), which stores x and returns it
in the statement's OK packet: no second round trip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError

from eventstore import schema
from eventstore.dialects.base import Backend, Processors
from eventstore.ordering import HeadRowOrdering, Ordering
from eventstore.prepared import Connectable, Prepared

_head = schema.log_head


class LastInsertIdOrdering(HeadRowOrdering):
    """The head row, advanced with LAST_INSERT_ID(x) so its new value comes back in the OK packet."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        advanced = sa.func.last_insert_id(_head.c.position + sa.bindparam("n"))
        self._advance_to_last_insert_id = Prepared(
            _head.update().where(_head.c.id == 1).values(position=advanced), dialect
        )

    def reserve(self, conn: Connectable, n: int) -> list[int]:
        last = self._advance_to_last_insert_id.run_for_insert_id(conn, {"n": n})  # locked until commit
        return list(range(last - n + 1, last + 1))


class MySQLBackend(Backend):
    names = ("mysql", "mariadb")
    claim_reads_current = True  # the claim is read back by a later statement (READ COMMITTED)

    def state_key_type(self) -> sa.types.TypeEngine[Any]:
        # MariaDB/MySQL collations ignore case or trailing spaces: keys are stored as VARBINARY of their
        # UTF-8 bytes (512 characters of up to 4 bytes each), which compares them exactly.
        return mysql.VARBINARY(2048)

    def state_key_processors(self) -> Processors:
        return (_encode_utf8, _decode_utf8)

    def json_text_type(self) -> sa.types.TypeEngine[Any]:
        return mysql.LONGTEXT()  # TEXT holds only 64 KiB here

    def datetime_type(self) -> sa.types.TypeEngine[Any]:
        return mysql.DATETIME(fsp=6)  # microseconds

    def make_ordering(self, dialect: Dialect) -> Ordering:
        return LastInsertIdOrdering(dialect)

    def engine_options(self) -> dict[str, Any]:
        # READ COMMITTED: each statement sees what committed before it, as on PostgreSQL, and InnoDB
        # takes no gap locks, so concurrent appends to different assets do not block each other.
        return {"isolation_level": "READ COMMITTED", "connect_args": {"charset": "utf8mb4"}}

    def configure(self, engine: Engine) -> None:
        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Also for the transactions that `BEGIN` starts on an autocommit connection
            # (Database.run_direct_transaction), which the engine's isolation_level does not cover.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        stmt = mysql.insert(table)
        updates = {c.name: stmt.inserted[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_duplicate_key_update(updates)

    def insert_if_absent(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        first_key = table.c[keys[0]]
        return mysql.insert(table).on_duplicate_key_update({first_key.name: first_key})

    def is_retryable(self, error: DBAPIError) -> bool:
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        return code in (1213, 1205)  # deadlock found; lock wait timeout exceeded

    def is_lost_connection(self, error: DBAPIError) -> bool:
        # A server session killed during the handshake: "Lost connection to MySQL server" (2013) or "MySQL
        # server has gone away" (2006) while connecting, which SQLAlchemy does not mark as a disconnect.
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        return code in (2006, 2013, 2055)

    def rest_after_batch(self, batch_seconds: float) -> float:
        # Deleting flat out, batch after batch, InnoDB (default 128 MiB buffer pool, 96 MiB redo log) falls
        # behind flushing, and every writer's commit waits for it. Resting as long as the batch took keeps
        # writes' latency during compaction low (docs/garbage-collection.md has the measurements).
        return batch_seconds

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # MariaDB/MySQL have no transaction-scoped advisory lock, and DDL commits implicitly anyway.
        got = conn.execute(sa.text("SELECT GET_LOCK('eventstore_migrations', 120)")).scalar()
        if got != 1:
            raise TimeoutError("waited 120 s for another process to finish migrating this database")
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK('eventstore_migrations')"))


def _encode_utf8(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def _decode_utf8(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode()


BACKEND = MySQLBackend()
