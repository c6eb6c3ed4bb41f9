"""Connections kept checked out between calls, which ones may serve again after an error, and what a
forked child does with the connections it inherited.

Airflow's executors and task runners fork. In the child, the connections a `Database` inherited are the
parent's sessions: the child drops them without using or closing them and opens its own (SQLAlchemy's
advice for forking). `forget_at_fork` registers what must do so.
"""

from __future__ import annotations

import collections
import os
import select
import weakref
from typing import Protocol

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from eventstore.errors import StateStoreError


class HeldConnections:
    """Connections checked out of an engine's pool and kept between calls, most recently used first.

    Checking a connection out of SQLAlchemy's pool and back in costs a few µs of Python (a
    `_ConnectionFairy` with its weak reference, the queue's lock), a large share of a `get` on SQLite
    (docs/performance.md). Here taking one is a `deque.pop`. The pool still opens, counts and replaces
    every connection; this keeps at most `keep` of them out of it, so concurrent callers beyond that use
    the pool as before.
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


def reusable_after(error: BaseException) -> bool:
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


def socket_closed(socket: int) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it (a restart, an
    idle timeout, pg_terminate_backend or KILL), usually with a last error message before the close.
    An idle connection is sent nothing else, so either way it must not carry a write. One `poll`
    system call, no round trip (about a microsecond): cheap enough before every write that cannot be
    retried (`Database.run_direct_write`, through `Backend.is_closed`)."""
    poller = select.poll()
    poller.register(socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


# --- os.fork -------------------------------------------------------------------------------------------


class ForgetsAtFork(Protocol):
    def forget_inherited_connections(self) -> None:
        """In a forked child: let go of the parent's connections without a word to the server."""


_registered: weakref.WeakSet[ForgetsAtFork] = weakref.WeakSet()
"""Everything of this process that holds connections and has not been garbage collected."""

_inherited_connections: list[PoolProxiedConnection] = []
"""In a forked child: the kept connections it inherited, never to be used (`HeldConnections.forget`)."""


def forget_at_fork(holder: ForgetsAtFork) -> None:
    """Make `holder` let go of its connections in every child this process forks from now on."""
    _registered.add(holder)


def _forget_inherited_connections() -> None:
    for holder in list(_registered):
        holder.forget_inherited_connections()


os.register_at_fork(after_in_child=_forget_inherited_connections)
