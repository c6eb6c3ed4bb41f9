"""One database: its engine, its transactions, and how database failures reach the user.

Every unit of work runs through `Database.run(work, write=...)`: `work(conn)` runs in one transaction
that commits when it returns and rolls back when it raises, so nothing is ever half-applied. A read
whose statements each stand alone can use `Database.read_in_autocommit(work)` instead, on a second pool
of autocommit connections: no BEGIN and COMMIT around it (one round trip instead of three on
PostgreSQL for a single statement).

The hot paths (`get`; `set` in one statement where the database can) run through
`Database.run_direct(work)`: `work` gets a pooled autocommit DBAPI connection and runs one prepared
statement on it (eventstore.prepared), without a SQLAlchemy `Connection` around it. The connections of
these paths stay checked out between calls (a few of them: `_HeldConnections`).

A deadlock or serialization failure runs `work` again; a connection found broken before COMMIT was sent
is discarded and `work` runs again on another (a restarted server leaves every pooled connection
broken); anything else that means "the database cannot be used" becomes `StoreUnavailableError`.

A `Database` may be used on both sides of `os.fork` (Airflow's executors and task runners fork): in the
child, the connections it inherited are the parent's sessions, so the child drops them without using
or closing them and opens its own (`_forget_inherited_connections`, SQLAlchemy's advice for forking).
"""

from __future__ import annotations

import collections
import functools
import os
import random
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from eventstore.dialects import AUTOCOMMIT_OPTION, WRITE_OPTION, Backend, backend_for
from eventstore.errors import OutcomeUnknownError, StateStoreError, StoreUnavailableError
from eventstore.ordering import Ordering, ordering_for
from eventstore.prepared import Prepared, driver_error

T = TypeVar("T")

MAX_ATTEMPTS = 20
DIRECT_CONNECTIONS_KEPT = 4
"""How many connections of the direct paths stay checked out between calls (see `_HeldConnections`)."""


class Database:
    """An engine set up for eventstore (see `dialects`), and the transactions that run on it."""

    def __init__(self, url: str | URL) -> None:
        url = sa.make_url(url)
        self.backend: Backend = backend_for(url.get_backend_name())
        # Every unit of work ends its transaction itself (see `run`), so the pool need not send a
        # ROLLBACK when a connection comes back (a round trip per call on MariaDB).
        options = {"pool_reset_on_return": None, **self.backend.engine_options()}
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
        self._direct = _HeldConnections(self.autocommit_engine, keep=DIRECT_CONNECTIONS_KEPT)
        _databases.add(self)

    @property
    def dialect(self) -> Dialect:
        """The SQLAlchemy dialect of both engines."""
        return self.engine.dialect

    def run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run `work(conn)` in one transaction and commit; retry what is safe to retry."""

        def attempt(state: _Attempt) -> T:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                transaction = conn.begin()
                try:
                    result = work(conn)
                except BaseException as error:
                    if _leaves_connection_in_step(error):
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

        def attempt(state: _Attempt) -> T:
            with self.autocommit_engine.connect() as conn:
                try:
                    return work(conn)
                except BaseException as error:
                    if not _leaves_connection_in_step(error):
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

        def transaction(state: _Attempt, connection: PoolProxiedConnection) -> T:
            begin.run(connection, {})
            try:
                result = work(connection)
            except BaseException as error:
                if _leaves_connection_in_step(error):
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
            if connection.is_valid and not _leaves_connection_in_step(error):
                connection.invalidate()  # closes it, which rolls back; the pool opens a new one
            self._direct.put_back(connection)
            raise
        self._direct.put_back(connection)
        return result

    def _with_retries(self, attempt: Callable[[_Attempt], T]) -> T:
        for number in range(1, MAX_ATTEMPTS + 1):
            state = _Attempt()
            try:
                return attempt(state)
            except DBAPIError as error:
                if number < MAX_ATTEMPTS and self.backend.is_retryable(error):
                    time.sleep(random.uniform(0, 0.002 * number))  # let the other transaction finish
                    continue
                lost = error.connection_invalidated or self.backend.is_lost_connection(error)
                if lost and number < MAX_ATTEMPTS and not state.committing:
                    # A dropped pooled connection, now discarded, or one lost while it was being opened:
                    # try another (or a new one).
                    time.sleep(random.uniform(0, 0.002 * number))
                    continue
                if isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError):
                    raise self._unavailable(error, during_commit=state.committing) from error
                raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def run_admin(self, work: Callable[[Engine], T]) -> T:
        """Run `work(engine)` (a migration), turning "cannot use the database" into StoreUnavailableError."""
        try:
            return work(self.engine)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
            raise self._unavailable(error, during_commit=False) from error

    def _unavailable(self, error: DBAPIError, *, during_commit: bool) -> StoreUnavailableError:
        cause = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        if during_commit:
            return OutcomeUnknownError(
                f"The connection to {self.url_for_people} broke while committing ({cause}). The write may or "
                "may not have been applied: check with history() before repeating it."
            )
        return StoreUnavailableError(
            f"Cannot use the database at {self.url_for_people}: {cause}. Check that it is running and that "
            "EVENTSTORE_URL is right; nothing of this call was applied."
        )

    def dispose(self) -> None:
        self._direct.close()
        self.engine.dispose()
        self.autocommit_engine.dispose()

    def _forget_inherited_connections(self) -> None:
        """In a forked child: let go of the parent's connections without a word to the server."""
        self._direct.forget()
        self.engine.dispose(close=False)
        self.autocommit_engine.dispose(close=False)


_databases: weakref.WeakSet[Database] = weakref.WeakSet()
"""Every `Database` of this process that has not been garbage collected."""

_inherited_connections: list[PoolProxiedConnection] = []
"""In a forked child: the kept connections it inherited, never to be used (`_HeldConnections.forget`)."""


def _forget_inherited_connections() -> None:
    for database in list(_databases):
        database._forget_inherited_connections()


os.register_at_fork(after_in_child=_forget_inherited_connections)


def _leaves_connection_in_step(error: BaseException) -> bool:
    """Whether a connection on which a unit of work raised `error` may serve the next one.

    Yes for an error the database sent back (the driver read the whole reply) on a connection that is
    not broken, and for eventstore's own errors, raised by its code between statements. Anything else
    may have struck while the driver waited for a reply: KeyboardInterrupt, or an exception raised by a
    signal handler (Airflow's task timeout). The reply would then be read by the next call, or the
    transaction left open, so such a connection is discarded; so is one whose `update` function raised.
    """
    if isinstance(error, DBAPIError):
        return not error.connection_invalidated
    return isinstance(error, StateStoreError)


class _HeldConnections:
    """Connections checked out of an engine's pool and kept between calls, most recently used first.

    Checking a connection out of SQLAlchemy's pool and back in costs about 4 µs of Python (a
    `_ConnectionFairy` with its weak reference, the queue's lock): a third of a `get` on SQLite, and 18
    µs of a `set` once the process wakes from the commit's fsync with cold caches (docs/performance.md).
    Here taking one is a `deque.pop`. The pool still opens, counts and replaces every connection; this
    keeps at most `keep` of them out of it, so concurrent callers beyond that use the pool as before.
    """

    def __init__(self, engine: Engine, *, keep: int) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: collections.deque[PoolProxiedConnection] = collections.deque()

    def take(self) -> PoolProxiedConnection:
        try:
            return self._idle.pop()  # atomic: no two threads get the same connection
        except IndexError:
            return self._engine.raw_connection()

    def put_back(self, connection: PoolProxiedConnection) -> None:
        """Keep a valid connection for the next call; return it to the pool if it was invalidated (the
        pool then replaces it) or if enough are kept."""
        if connection.is_valid and len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        """Return every kept connection to the pool."""
        while self._idle:
            self._idle.pop().close()

    def forget(self) -> None:
        """In a forked child: stop using the kept connections, copies of the parent's sessions.

        They are neither closed nor returned to their pool, whose lock another thread of the parent
        may have held at the fork, and which would then never be released in the child. They stay
        referenced, so that no finalizer does either.
        """
        _inherited_connections.extend(self._idle)
        self._idle.clear()


class _Attempt:
    """What one try of a unit of work got to: whether COMMIT had been sent when it failed."""

    committing = False
