"""One database: its two engines, and the units of work that run on them.

Every unit of work runs through `Database.run(work, write=...)`: `work(conn)` runs in one transaction
that commits when it returns and rolls back when it raises, so nothing is ever half-applied. A read
whose statements each stand alone can use `Database.read_in_autocommit(work)` instead, on a second pool
of autocommit connections: no BEGIN and COMMIT around it (one round trip instead of three on
PostgreSQL for a single statement).

The hot paths run on pooled autocommit DBAPI connections, one prepared statement at a time
(eventstore.prepared), without a SQLAlchemy `Connection` around them: `get` through
`Database.run_direct(work)` (reads), `set` in one statement where the database can through
`Database.run_direct_write(work)` (a write that commits by itself, never repeated once sent), the write
transactions of the state through `Database.run_direct_transaction(work)`. The connections of these
paths stay checked out between calls (eventstore.connections).

What is retried and how failures reach the user: eventstore.retries. What a forked child does with the
connections it inherited: eventstore.connections.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.pool import PoolProxiedConnection

from eventstore.connections import HeldConnections, forget_at_fork, reusable_after
from eventstore.dialects import AUTOCOMMIT_OPTION, WRITE_OPTION, Backend, backend_for
from eventstore.ordering import Ordering, ordering_for
from eventstore.prepared import Prepared, driver_error
from eventstore.retries import Attempt, unavailable, with_retries

T = TypeVar("T")

DIRECT_CONNECTIONS_KEPT = 4
"""How many connections of the direct paths stay checked out between calls (`HeldConnections`)."""

STALE_CONNECTIONS_CHECKED = 64
"""How many connections `run_direct_write` discards at most, found closed by the server, before it uses
one anyway: more than the held ones and the pool's (a restart closes them all), so that it ends on a
connection it has just opened."""


class Database:
    """An engine set up for eventstore (see `dialects`), and the transactions that run on it."""

    def __init__(self, url: str | URL) -> None:
        url = sa.make_url(url)
        self.backend: Backend = backend_for(url.get_backend_name())
        # Every unit of work ends its transaction itself (see `run`), so the pool need not send a
        # ROLLBACK when a connection comes back (a round trip per call on MariaDB).
        options = {"pool_reset_on_return": None, **self.backend.engine_options(url)}
        self.engine: Engine = sa.create_engine(url, **options)
        self.backend.configure(self.engine)
        options.update(isolation_level="AUTOCOMMIT", execution_options={AUTOCOMMIT_OPTION: True})
        self.autocommit_engine: Engine = sa.create_engine(url, **options)
        self.backend.configure(self.autocommit_engine)
        self.url_for_people = self.engine.url.render_as_string(hide_password=True)
        dialect = self.engine.dialect
        self.ordering: Ordering = ordering_for(dialect)
        self._begin_write = Prepared(sa.text(self.backend.begin_write), dialect)
        self._commit = Prepared(sa.text("COMMIT"), dialect)
        self._rollback = Prepared(sa.text("ROLLBACK"), dialect)
        self._driver_error: type[Exception] = dialect.loaded_dbapi.Error
        self._direct = HeldConnections(self.autocommit_engine, keep=DIRECT_CONNECTIONS_KEPT)
        forget_at_fork(self)

    @property
    def dialect(self) -> Dialect:
        """The SQLAlchemy dialect of both engines."""
        return self.engine.dialect

    def run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run `work(conn)` in one transaction and commit; retry what is safe to retry.

        `write=True` for every unit of work that writes: a read (`write=False`) whose connection breaks
        while committing changed nothing, so it runs again instead of raising OutcomeUnknownError.
        """

        def attempt(state: Attempt) -> T:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                transaction = conn.begin()
                try:
                    result = work(conn)
                except BaseException as error:
                    if reusable_after(error):
                        transaction.rollback()
                    else:
                        conn.invalidate()  # never back to the pool; closing it rolls back
                    raise
                state.committing = write
                try:
                    transaction.commit()
                except BaseException:
                    # Maybe still in the transaction (SQLite after SQLITE_FULL), holding its locks:
                    # never back to the pool.
                    conn.invalidate()
                    raise
                return result

        return self._with_retries(attempt)

    def read_in_autocommit(self, work: Callable[[Connection], T]) -> T:
        """Run `work(conn)`, which only reads, on an autocommit connection: each statement it issues is a
        transaction of its own (one, for a consistent read)."""

        def attempt(state: Attempt) -> T:
            with self.autocommit_engine.connect() as conn:
                try:
                    return work(conn)
                except BaseException as error:
                    if not reusable_after(error):
                        conn.invalidate()
                    raise

        return self._with_retries(attempt)

    def run_direct(self, work: Callable[[PoolProxiedConnection], T]) -> T:
        """Run `work(connection)`, one prepared statement that only reads, on a pooled autocommit DBAPI
        connection. If the connection breaks, `work` runs again on another one."""
        return self._with_retries(lambda state: self._on_direct_connection(work))

    def run_direct_write(self, work: Callable[[PoolProxiedConnection], T]) -> T:
        """Run `work(connection)`: one round trip that writes and commits by itself (an autocommit
        statement, or a packet from BEGIN to COMMIT), on a pooled autocommit DBAPI connection.

        Once sent, it is never sent again: if the connection breaks before the answer arrived, the write
        may have committed, and the caller gets OutcomeUnknownError (eventstore.retries). So that a
        database restart does not turn into such errors for the next writes, the connection is first
        checked for a close the server has already signalled (one `poll`, no round trip), and every
        one found closed is discarded for another.
        """

        def attempt(state: Attempt) -> T:
            connection = self._live_direct_connection()
            state.committing = True
            return self._on_direct_connection(work, connection)

        return self._with_retries(attempt)

    def run_direct_transaction(self, work: Callable[[PoolProxiedConnection], T]) -> T:
        """Run `work(connection)`, prepared statements only, in one write transaction on a pooled DBAPI
        connection, and commit; retry what is safe to retry, as `run` does.

        The write path of the state (set, delete, clear, update): it saves the cost of a SQLAlchemy
        `Connection` and its transaction, which is more than the statements themselves on SQLite.
        """
        begin, commit, rollback = self._begin_write, self._commit, self._rollback

        def transaction(state: Attempt, connection: PoolProxiedConnection) -> T:
            begin.run(connection, {})
            try:
                result = work(connection)
            except BaseException as error:
                if reusable_after(error):
                    try:
                        rollback.run(connection, {})
                    except BaseException:
                        connection.invalidate()  # still in the transaction: never kept
                        raise
                raise
            state.committing = True
            try:
                commit.run(connection, {})
            except BaseException:
                # The transaction may still be open (SQLite keeps it after SQLITE_FULL): never kept.
                if connection.is_valid:
                    connection.invalidate()
                raise
            return result

        return self._with_retries(
            lambda state: self._on_direct_connection(functools.partial(transaction, state))
        )

    def _on_direct_connection(
        self, work: Callable[[PoolProxiedConnection], T], connection: PoolProxiedConnection | None = None
    ) -> T:
        """`work(connection)` on a DBAPI connection of the autocommit engine (a held one if not given),
        discarded if `work` may have left it broken, with a reply unread or a transaction open."""
        if connection is None:
            connection = self._take_direct()
        try:
            result = work(connection)
        except BaseException as error:
            if connection.is_valid and not reusable_after(error):
                connection.invalidate()  # closes it, which rolls back; the pool opens a new one
            self._direct.put_back(connection)
            raise
        self._direct.put_back(connection)
        return result

    def _take_direct(self) -> PoolProxiedConnection:
        try:
            return self._direct.take()
        except self._driver_error as error:
            raise driver_error(self.dialect, error) from error

    def _live_direct_connection(self) -> PoolProxiedConnection:
        """A direct connection whose server has not closed it, as far as its socket tells."""
        for _ in range(STALE_CONNECTIONS_CHECKED):
            connection = self._take_direct()
            dbapi_connection = connection.dbapi_connection
            if dbapi_connection is not None and not self.backend.is_closed(dbapi_connection):
                return connection
            connection.invalidate()  # the pool opens a new one in its place
            self._direct.put_back(connection)
        return self._take_direct()

    def _with_retries(self, attempt: Callable[[Attempt], T]) -> T:
        return with_retries(self.backend, self.url_for_people, attempt)

    def run_admin(self, work: Callable[[Engine], T]) -> T:
        """Run `work(engine)` (a migration), turning "cannot use the database" into StoreUnavailableError."""
        try:
            return work(self.engine)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
            raise unavailable(self.url_for_people, error, during_commit=False) from error

    def dispose(self) -> None:
        self._direct.close()
        self.engine.dispose()
        self.autocommit_engine.dispose()

    def forget_inherited_connections(self) -> None:
        """In a forked child: let go of the parent's connections without a word to the server."""
        self._direct.forget()
        self.engine.dispose(close=False)
        self.autocommit_engine.dispose(close=False)
