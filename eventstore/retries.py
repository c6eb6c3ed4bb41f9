"""Which failures run a unit of work again, and how the others reach the user.

- A deadlock or serialization failure (`Backend.is_retryable`) runs the unit of work again.
- A connection found broken before COMMIT was sent (a restarted server leaves every pooled connection
  broken), or lost while it was being opened (`Backend.is_lost_connection`), is discarded and the unit of
  work runs again on another.
- Anything else that means "the database cannot be used" becomes `StoreUnavailableError` (nothing was
  applied) or, when the connection broke while committing, `OutcomeUnknownError` (it may have been).
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
                raise unavailable(url_for_people, error, during_commit=state.committing) from error
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
        f"Cannot use the database at {url_for_people}: {cause}. Check that it is running and that "
        "EVENTSTORE_URL is right; nothing of this call was applied."
    )
