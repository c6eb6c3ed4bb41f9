"""The event model: what the log records for every change, and how readers see it.

An event belongs to one asset's stream. `version` numbers the events of one asset 1, 2, 3, ... with no
holes; `position` numbers all events of the store in commit order and is never reused. Values are kept
as the JSON text the codec produced, and decoded only when a reader asks for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import orjson

from eventstore.assets import Asset
from eventstore.codec import JSON
from eventstore.writers import Writer

MAX_POSITION = 2**63 - 1
"""The largest position, version or count the databases store (BIGINT); the feed refuses larger bounds."""


class Op(StrEnum):
    """What an event did."""

    SET = "set"
    DELETE = "delete"
    CLEAR = "clear"
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A change decided by a command, before the log stamps it with a version and a time.

    `value` is the new JSON text (set only); `previous` is the JSON text the change replaced: the key's
    old value for set/delete, an object of every removed key for clear.
    """

    op: Op
    key: str | None = None
    value: str | None = None
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event as the log appends it and inline projections apply it: everything but its position,
    which is assigned as the very last step before commit."""

    asset_id: int
    version: int
    recorded_at: datetime
    op: Op
    key: str | None
    value: str | None
    previous: str | None
    writer: Writer


@dataclass(frozen=True, slots=True)
class Change:
    """One change of an asset's state, as `history` reports it."""

    position: int
    version: int
    recorded_at: datetime
    op: Op
    key: str | None
    value: JSON
    previous: JSON
    writer: Writer


@dataclass(frozen=True, slots=True)
class Event:
    """One event of the global feed, as `events` reports it."""

    position: int
    version: int
    recorded_at: datetime
    op: Op
    key: str | None
    value: JSON
    writer: Writer
    asset: Asset


# --- Deciding events from a command and the current state (JSON texts by key) -----------------------


def set_events(values: Mapping[str, str], current: Mapping[str, str]) -> list[PendingEvent]:
    """One `set` per key, in the given order, each remembering the value it replaced."""
    return [PendingEvent(Op.SET, key, text, current.get(key)) for key, text in values.items()]


def delete_events(key: str, current: Mapping[str, str]) -> list[PendingEvent]:
    """A `delete` of an absent key changes nothing and so records nothing."""
    if key not in current:
        return []
    return [PendingEvent(Op.DELETE, key, None, current[key])]


def clear_events(current: Mapping[str, str]) -> list[PendingEvent]:
    """A `clear` of an empty state records nothing; otherwise one event listing what it removed."""
    if not current:
        return []
    # Join the stored texts as they are, so no value is re-encoded on the way into the audit record.
    removed = ",".join(f"{orjson.dumps(key).decode()}:{text}" for key, text in sorted(current.items()))
    return [PendingEvent(Op.CLEAR, None, None, f"{{{removed}}}")]


def fold(state: dict[str, str], op: Op, key: str | None, value: str | None) -> None:
    """Apply one event to a state of JSON texts by key: the definition every projection must agree with."""
    if op is Op.SET:
        assert key is not None and value is not None
        state[key] = value
    elif op is Op.DELETE:
        state.pop(key, None)  # type: ignore[arg-type]
    elif op is Op.CLEAR:
        state.clear()
