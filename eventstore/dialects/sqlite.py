"""SQLite, the embedded default: WAL, synchronous=FULL, `BEGIN IMMEDIATE` for writes, datetimes as text.

Global positions come from the `es_log_head` row (eventstore.ordering.HeadRowOrdering, with RETURNING);
there is a single writer at a time anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import URL, Connection, Engine

from eventstore.dialects.base import AUTOCOMMIT_OPTION, WRITE_OPTION, Backend, Processors
from eventstore.dialects.types import naive_utc
from eventstore.prepared import driver_error


class SQLiteBackend(Backend):
    names = ("sqlite",)
    claim_reads_current = True  # one writer at a time: BEGIN IMMEDIATE holds the database
    # A writer takes the write lock up front: a deferred transaction that upgrades from read to write
    # can fail with SQLITE_BUSY at once, without waiting for the busy timeout.
    begin_write = "BEGIN IMMEDIATE"
    # A failed COMMIT (the disk full, read-only or failing) leaves the database as it was before the
    # transaction: SQLite's commit is atomic and runs in this process.
    commit_error_means_not_applied = True

    def engine_options(self, url: URL) -> dict[str, Any]:
        # 30 s busy timeout: writers queue behind the single write lock instead of failing at once.
        return {"connect_args": {"timeout": 30, "check_same_thread": False}}

    def configure(self, engine: Engine) -> None:
        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours (see _on_begin).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # WAL: readers never block the writer. synchronous=FULL: a commit is on disk when it returns,
            # also across power loss (NORMAL would only survive a crash of the process).
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if options.get(AUTOCOMMIT_OPTION, False):
                return
            begin = self.begin_write if options.get(WRITE_OPTION, False) else "BEGIN"
            dbapi_connection = conn.connection.dbapi_connection
            assert dbapi_connection is not None
            try:  # on the DBAPI connection: exec_driver_sql costs more than the BEGIN
                dbapi_connection.cursor().execute(begin)
            except conn.dialect.loaded_dbapi.Error as error:
                raise driver_error(conn.dialect, error, statement=begin) from error

    def datetime_processors(self) -> Processors:
        # SQLite stores datetimes as text. SQLAlchemy formats and parses that text in Python (a regex per
        # value); `isoformat`/`fromisoformat` write and read the very same text in C, several times
        # faster, which shows on the write path (four datetimes per `set`) and on every read of the log.
        return (_sqlite_text, _from_sqlite_text)

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        stmt = sqlite.insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)

    def insert_if_absent(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def rest_after_batch(self, batch_seconds: float) -> float:
        # Writers waiting for the single write lock do not queue: they poll it (the busy timeout sleeps
        # up to 100 ms between tries), so a job that begins its next batch right after a commit can
        # starve them for seconds. Resting as long as the batch took leaves the lock free half the time.
        return batch_seconds


def _sqlite_text(value: datetime | None) -> str | None:
    """A UTC time as SQLAlchemy's SQLite DATETIME stores it: `YYYY-MM-DD HH:MM:SS.ffffff`, always with
    microseconds, so that the text sorts and compares as the time does."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # every time eventstore makes or reads: the text without its "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    return naive_utc(value).isoformat(" ", "microseconds")


def _from_sqlite_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


BACKEND = SQLiteBackend()
