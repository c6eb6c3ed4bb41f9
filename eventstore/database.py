"""One database: its two engines, and the units of work that run on them.

Every unit of work runs through `Database.run(work, write=...)`: `work(conn)` runs in one transaction
that commits when it returns and rolls back when it raises, so nothing is ever half-applied. A read
whose statements each stand alone can use `Database.read_in_autocommit(work)` instead, on a second pool
of autocommit connections: no BEGIN and COMMIT around it (one round trip instead of three on
PostgreSQL for a single statement).

The hot paths (`get`; `set` in one statement where the database can) run through
`Database.run_direct(work)`: `work` gets a pooled autocommit DBAPI connection and runs one prepared
statement on it (eventstore.prepared), without a SQLAlchemy `Connection` around it; the write
transactions of the state run through `Database.run_direct_transaction(work)` the same way. The
connections of these paths stay checked out between calls (eventstore.connections).

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
        """Run `work(conn)` in one transaction and commit; retry what is safe to retry."""

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
                state.committing = True
                transaction.commit()
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
        """Run `work(connection)`, one prepared statement, on a pooled autocommit DBAPI connection.

        The statement is its own transaction. If the connection breaks, `work` runs again on another
        one, even if the statement may have committed: so it must be a read, or a write that may be
        repeated (a `set`: the state ends the same; the log may then hold the set twice).
        """
        return self._with_retries(lambda state: self._on_direct_connection(work))

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
            commit.run(connection, {})
            return result

        return self._with_retries(
            lambda state: self._on_direct_connection(functools.partial(transaction, state))
        )

    def _on_direct_connection(self, work: Callable[[PoolProxiedConnection], T]) -> T:
        """`work(connection)` on a DBAPI connection of the autocommit engine, discarded if `work` may
        have left it broken, with a reply unread or a transaction open."""
        try:
            connection = self._direct.take()
        except self._driver_error as error:
            raise driver_error(self.dialect, error) from error
        try:
            result = work(connection)
        except BaseException as error:
            if connection.is_valid and not reusable_after(error):
                connection.invalidate()  # closes it, which rolls back; the pool opens a new one
            self._direct.put_back(connection)
            raise
        self._direct.put_back(connection)
        return result

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
