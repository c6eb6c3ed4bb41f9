"""Which failures run a unit of work again, and how the others reach the user.

- A deadlock or serialization failure (`Backend.is_retryable`) runs the unit of work again.
- A connection found broken before COMMIT was sent (a restarted server leaves every pooled connection
  broken), or lost while it was being opened (`Backend.is_lost_connection`), is discarded and the unit of
  work runs again on another.
- A read whose connection breaks while committing (`Database.run` without `write=True`) runs again:
  it changed nothing.
- A write that commits by itself in one round trip (`Database.run_direct_write`: the single-statement
  `set`) counts as committing from the moment it is sent, so it is never run again once sent. A
  restart does not turn into errors for such writes all the same: the connection is first checked for a
  close the server has already signalled (no round trip) and replaced if closed.
- Anything else that means "the database cannot be used" becomes `StoreUnavailableError` (nothing was
  applied) or, when the connection broke while committing, `OutcomeUnknownError` (it may have been;
  not where a failed COMMIT certainly applied nothing: `Backend.commit_error_means_not_applied`,
  SQLite). The message names the cause and what to do (a full or read-only disk too).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from eventstore.dialects import Backend
from eventstore.errors import OutcomeUnknownError, StoreUnavailableError

T = TypeVar("T")

MAX_ATTEMPTS = 20


class Attempt:
    """What one try of a unit of work got to: whether COMMIT had been sent when it failed."""

    committing = False


def with_retries(backend: Backend, url_for_people: str, attempt: Callable[[Attempt], T]) -> T:
    """Run `attempt` until it returns, retrying what is safe to retry (see the module doc)."""
    for number in range(1, MAX_ATTEMPTS + 1):
        state = Attempt()
        try:
            return attempt(state)
        except DBAPIError as error:
            if number < MAX_ATTEMPTS and backend.is_retryable(error):
                time.sleep(random.uniform(0, 0.002 * number))  # let the other transaction finish
                continue
            lost = error.connection_invalidated or backend.is_lost_connection(error)
            if lost and number < MAX_ATTEMPTS and not state.committing:
                # A dropped pooled connection, now discarded, or one lost while it was being opened:
                # try another (or a new one).
                time.sleep(random.uniform(0, 0.002 * number))
                continue
            if isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError):
                # Only a connection lost once COMMIT (or a write that commits by itself) was sent leaves
                # the outcome unknown: an error the server answered means the transaction was rolled back.
                unknown = state.committing and lost and not backend.commit_error_means_not_applied
                raise unavailable(url_for_people, error, during_commit=unknown) from error
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def unavailable(url_for_people: str, error: DBAPIError, *, during_commit: bool) -> StoreUnavailableError:
    """The error a caller sees for a database it cannot use, saying whether the write may have landed."""
    cause = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
    if during_commit:
        return OutcomeUnknownError(
            f"The connection to {url_for_people} broke while committing ({cause}). The write may or "
            "may not have been applied: check with history() before repeating it."
        )
    return StoreUnavailableError(
        f"Cannot use the database at {url_for_people}: {cause}. {_what_to_do(error)}; nothing of this "
        "call was applied."
    )


def _what_to_do(error: DBAPIError) -> str:
    """Advice for the cause: a full or read-only disk needs something else than a stopped server."""
    text = str(error.orig).lower() if error.orig is not None else str(error).lower()
    if "disk is full" in text or "no space left" in text or getattr(error.orig, "sqlstate", None) == "53100":
        return "The disk holding the database is full: free space on it (or raise its quota), then retry"
    if "readonly" in text or "read-only" in text or "disk i/o error" in text:
        return (
            "The database's files cannot be written (a read-only or failing disk, or file permissions): "
            "make them writable, then retry; reads may still work"
        )
    return "Check that it is running and that EVENTSTORE_URL is right"
