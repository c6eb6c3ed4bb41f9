"""The exceptions (eventstore/errors.py): their hierarchy, which callers rely on."""

from __future__ import annotations

from eventstore import OutcomeUnknownError, StoreUnavailableError


def test_an_unknown_outcome_is_a_kind_of_unavailable_store() -> None:
    assert issubclass(OutcomeUnknownError, StoreUnavailableError)
    assert issubclass(OutcomeUnknownError, ConnectionError)
