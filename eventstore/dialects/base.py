"""`Backend`: the small interface behind which each database keeps what differs, and `backend_for`.

One module per database implements it (`sqlite`, `postgresql`, `mysql`); the rest of eventstore is
dialect-free SQLAlchemy Core and never tests a dialect's name.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from eventstore.ordering import Ordering
    from eventstore.single_set import SetParts

WRITE_OPTION = "eventstore_write"
"""Execution option marking a connection that will write (SQLite then takes the write lock at BEGIN)."""
AUTOCOMMIT_OPTION = "eventstore_autocommit"
"""Execution option of the autocommit engine, whose single-statement reads need no BEGIN."""

Processors = tuple[Callable[[Any], Any] | None, Callable[[Any], Any] | None]
"""A bind processor and a result processor (None: no conversion)."""


class Backend(abc.ABC):
    """How one kind of database does the things that differ. Chosen once per engine by `backend_for`."""

    names: ClassVar[tuple[str, ...]] = ()

    begin_write: ClassVar[str] = "BEGIN"
    """The statement that begins a write transaction on a connection in autocommit mode."""

    ordering: ClassVar[str] = "head_row"
    """How global positions are handed out and read back gap-safely: "head_row" or "sequence" (see
    eventstore.ordering and `make_ordering`)."""

    claim_reads_current: ClassVar[bool] = False
    """True where the statement that claims a stream (or reads the claim back) may also read a key's
    current value: where that read sees every write committed before the asset's lock was granted.
    Not on PostgreSQL, whose UPDATE ... RETURNING reads other tables from the snapshot it took before
    waiting for the lock (READ COMMITTED), so it could return a value another writer replaced."""

    commit_error_means_not_applied: ClassVar[bool] = False
    """True where a COMMIT that raised certainly applied nothing: an embedded database (SQLite), whose
    commit either returns or fails in this process. On a server, the connection may break after the
    server committed and before its answer arrived (eventstore.retries: OutcomeUnknownError)."""

    # --- column types (eventstore.dialects.types) --------------------------------------------------

    def state_key_type(self) -> sa.types.TypeEngine[Any]:
        """The column type of a state key: one that compares exactly (case, trailing spaces)."""
        return sa.String(512)

    def state_key_processors(self) -> Processors:
        """Conversions of a state key to and from that column type."""
        return (None, None)

    def json_text_type(self) -> sa.types.TypeEngine[Any]:
        """The column type of JSON text of any size."""
        return sa.Text()

    def datetime_type(self) -> sa.types.TypeEngine[Any]:
        """The column type of a naive UTC datetime with microseconds."""
        return sa.DateTime(timezone=False)

    def datetime_processors(self) -> Processors | None:
        """Faster conversions of aware UTC datetimes than SQLAlchemy's, where the backend has them."""
        return None

    # --- engines and transactions ------------------------------------------------------------------

    def engine_options(self, url: URL) -> dict[str, Any]:
        """Keyword arguments for `create_engine` on `url` (whose query may carry options of ours)."""
        return {}

    def configure(self, engine: Engine) -> None:  # noqa: B027 (most databases need nothing here)
        """Install connection-level settings on a new engine."""

    def is_retryable(self, error: DBAPIError) -> bool:
        """True for a deadlock or serialization failure: the transaction can simply run again."""
        return False

    def is_lost_connection(self, error: DBAPIError) -> bool:
        """True for a connection lost in a way SQLAlchemy does not mark as invalidated (e.g. while it was
        being opened): the unit of work may run again on a new connection if COMMIT was not sent."""
        return False

    def is_closed(self, dbapi_connection: Any) -> bool:
        """Whether an idle driver connection is closed, or closed by its server as far as its socket
        tells without a round trip (eventstore.connections.socket_closed). False where there is no
        server (SQLite)."""
        return False

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        """Hold a lock that keeps other processes from migrating the same database at the same time."""
        yield

    # --- statements --------------------------------------------------------------------------------

    @abc.abstractmethod
    def upsert(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        """INSERT rows, or UPDATE every non-key column of a row whose `keys` already exist.

        Build it once and execute it with the rows as parameters (one dict, or a list for many).
        """

    @abc.abstractmethod
    def insert_if_absent(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        """INSERT a row unless a row with the same `keys` exists (no error either way); rows as parameters."""

    def make_ordering(self, dialect: Dialect) -> Ordering:
        """How this database hands out global positions (eventstore.ordering)."""
        from eventstore.ordering import HeadRowOrdering

        return HeadRowOrdering(dialect)

    def single_set(self, dialect: Dialect, ordering: Ordering, parts: SetParts) -> Any | None:
        """A `set` of one key as one statement, where the database can (eventstore.single_set); None
        where it cannot, and every `set` runs in the log's transaction."""
        return None

    def rest_after_batch(self, batch_seconds: float) -> float:
        """Seconds a background job of many write batches (compaction) waits after committing a batch that
        took `batch_seconds`, so that the application's writes keep their latency meanwhile. 0 where they
        do without (PostgreSQL, as measured: docs/garbage-collection.md)."""
        return 0.0


_MODULES = {
    "sqlite": "eventstore.dialects.sqlite",
    "postgresql": "eventstore.dialects.postgresql",
    "mysql": "eventstore.dialects.mysql",
    "mariadb": "eventstore.dialects.mysql",
}


@functools.cache
def backend_for(dialect_name: str) -> Backend:
    """The backend for a SQLAlchemy dialect name (any driver of SQLite, PostgreSQL or MariaDB/MySQL)."""
    module = _MODULES.get(dialect_name)
    if module is None:
        supported = ", ".join(_MODULES)
        raise ValueError(
            f"eventstore does not support the {dialect_name!r} database; use one of: {supported}"
        )
    backend: Backend = importlib.import_module(module).BACKEND
    return backend
