"""Everything that differs between SQLite, PostgreSQL and MariaDB/MySQL, and nothing else.

The rest of eventstore is dialect-free SQLAlchemy Core. What lives here:
- column types that must behave exactly alike everywhere (`StateKey`, `JsonText`, `UtcDateTime`);
- engine set-up: SQLite's WAL, synchronous level and `BEGIN IMMEDIATE` for writes; READ COMMITTED on
  MariaDB/MySQL; utf8mb4;
- upsert syntax, which errors mean "run the transaction again", and the lock that serialises
  migrations between processes;
- how long a background job (compaction) rests between its write batches so application writes keep up.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError

from eventstore.prepared import driver_error

# --- Column types ---------------------------------------------------------------------------------


class StateKey(sa.types.TypeDecorator[str]):
    """A state key, compared exactly (case, trailing spaces) on every database.

    SQLite and PostgreSQL compare text byte-wise already. MariaDB/MySQL collations ignore case or
    trailing spaces, so there the key is stored as VARBINARY of its UTF-8 bytes (512 characters of up
    to 4 bytes each).
    """

    impl = sa.String(512)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARBINARY(2048))
        return dialect.type_descriptor(sa.String(512))

    def bind_processor(self, dialect: Dialect) -> Callable[[str | None], Any] | None:
        # Only MariaDB/MySQL need a conversion; elsewhere no per-value Python call at all.
        return _encode_utf8 if dialect.name in ("mysql", "mariadb") else None

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], str | None] | None:
        return _decode_utf8 if dialect.name in ("mysql", "mariadb") else None


def _encode_utf8(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def _decode_utf8(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode()


# JSON text of any size: TEXT is limited to 64 KiB on MariaDB/MySQL, so LONGTEXT there.
JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime with microseconds on every database (stored as naive UTC)."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    # SQLite stores datetimes as text. SQLAlchemy formats and parses that text in Python (a regex per
    # value); `isoformat`/`fromisoformat` write and read the very same text in C, several times faster,
    # which shows on the write path (four datetimes per `set`) and on every read of the log.
    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None] | None:
        if dialect.name == "sqlite":
            return _from_sqlite_text
        return super().result_processor(dialect, coltype)


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} is a naive datetime; eventstore stores aware UTC times only")
    return value.astimezone(UTC).replace(tzinfo=None)


def _sqlite_text(value: datetime | None) -> str | None:
    """A UTC time as SQLAlchemy's SQLite DATETIME stores it: `YYYY-MM-DD HH:MM:SS.ffffff`, always with
    microseconds, so that the text sorts and compares as the time does."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # every time eventstore makes or reads: the text without its "+00:00"
        return value.isoformat(" ", "microseconds")[:-6]
    return _naive_utc(value).isoformat(" ", "microseconds")


def _from_sqlite_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


# MariaDB/MySQL table options; other dialects ignore `mysql_*` keywords.
TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


# --- Behaviour per database ----------------------------------------------------------------------

WRITE_OPTION = "eventstore_write"
"""Execution option marking a connection that will write (SQLite then takes the write lock at BEGIN)."""
AUTOCOMMIT_OPTION = "eventstore_autocommit"
"""Execution option of the autocommit engine, whose single-statement reads need no BEGIN."""


class Backend(abc.ABC):
    """How one kind of database does the things that differ. Chosen once per engine by `backend_for`."""

    names: ClassVar[tuple[str, ...]] = ()

    begin_write: ClassVar[str] = "BEGIN"
    """The statement that begins a write transaction on a connection in autocommit mode."""

    ordering: ClassVar[str] = "head_row"
    """How global positions are handed out and read back gap-safely: "head_row" or "sequence" (see
    eventstore.ordering)."""

    claim_reads_current: ClassVar[bool] = False
    """True where the statement that claims a stream (or reads the claim back) may also read a key's
    current value: where that read sees every write committed before the asset's lock was granted.
    Not on PostgreSQL, whose UPDATE ... RETURNING reads other tables from the snapshot it took before
    waiting for the lock (READ COMMITTED), so it could return a value another writer replaced."""

    one_statement_set: ClassVar[bool] = False
    """True where one `set` can be written as one statement (data-modifying CTEs): see
    eventstore.one_statement_set."""

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments for `create_engine`."""
        return {}

    def configure(self, engine: Engine) -> None:  # noqa: B027 (most databases need nothing here)
        """Install connection-level settings on a new engine."""

    @abc.abstractmethod
    def upsert(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        """INSERT rows, or UPDATE every non-key column of a row whose `keys` already exist.

        Build it once and execute it with the rows as parameters (one dict, or a list for many).
        """

    @abc.abstractmethod
    def insert_if_absent(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        """INSERT a row unless a row with the same `keys` exists (no error either way); rows as parameters."""

    def is_retryable(self, error: DBAPIError) -> bool:
        """True for a deadlock or serialization failure: the transaction can simply run again."""
        return False

    def is_lost_connection(self, error: DBAPIError) -> bool:
        """True for a connection lost in a way SQLAlchemy does not mark as invalidated (e.g. while it was
        being opened): the unit of work may run again on a new connection if COMMIT was not sent."""
        return False

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        """Hold a lock that keeps other processes from migrating the same database at the same time."""
        yield

    def rest_after_batch(self, batch_seconds: float) -> float:
        """Seconds a background job of many write batches (compaction) waits after committing a batch that
        took `batch_seconds`, so that the application's writes keep their latency meanwhile. 0 where they
        do without (PostgreSQL: measured in benchmarks/compaction_scale.py)."""
        return 0.0


class SQLiteBackend(Backend):
    names = ("sqlite",)
    claim_reads_current = True  # one writer at a time: BEGIN IMMEDIATE holds the database
    # A writer takes the write lock up front: a deferred transaction that upgrades from read to write
    # can fail with SQLITE_BUSY at once, without waiting for the busy timeout.
    begin_write = "BEGIN IMMEDIATE"

    def engine_options(self) -> dict[str, Any]:
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


class PostgresBackend(Backend):
    names = ("postgresql",)
    ordering = "sequence"
    one_statement_set = True

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        stmt = postgresql.insert(table)
        updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)

    def insert_if_absent(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def is_retryable(self, error: DBAPIError) -> bool:
        return getattr(error.orig, "sqlstate", None) in ("40001", "40P01")

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # Transaction-scoped: released by the commit that ends the migration.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        yield


class MySQLBackend(Backend):
    names = ("mysql", "mariadb")
    claim_reads_current = True  # the claim is read back by a later statement (READ COMMITTED)

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
        # behind flushing, and every writer's commit waits for it: stalls of 0.5-1.7 s measured at a
        # million events (benchmarks/compaction_scale.py). Resting as long as the batch took brought the
        # p99 of writes during compaction down to about 0.1 s or less.
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


_MIGRATION_LOCK_KEY = 0x6576656E7473  # "events"
_BACKENDS: tuple[type[Backend], ...] = (SQLiteBackend, PostgresBackend, MySQLBackend)


def backend_for(dialect_name: str) -> Backend:
    """The backend for a SQLAlchemy dialect name (any driver of SQLite, PostgreSQL or MariaDB/MySQL)."""
    for backend in _BACKENDS:
        if dialect_name in backend.names:
            return backend()
    supported = ", ".join(name for backend in _BACKENDS for name in backend.names)
    raise ValueError(f"eventstore does not support the {dialect_name!r} database; use one of: {supported}")
