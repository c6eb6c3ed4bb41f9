"""What several routes share: the store, paging parameters, asset ids and the JSON shapes of records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request

from eventstore.events import MAX_POSITION
from eventstore.server.errors import UnprocessableError
from eventstore.store import StateEntry, Store
from eventstore.wire import time_text, writer_json

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_INT = MAX_POSITION
"""The largest number a query parameter may carry into SQL (BIGINT); larger ones are a clean 422."""

AssetId = Annotated[int, Path(ge=0, le=2**31 - 1, description="`id` from GET /api/v2/assets")]
Limit = Annotated[int, Query(ge=0, description=f"default {DEFAULT_LIMIT}; larger values become {MAX_LIMIT}")]
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def clamp(limit: int | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    return default if limit is None else min(limit, maximum)


def utc(moment: datetime | None) -> datetime | None:
    """An aware datetime in UTC; 422 for a naive one or one that UTC cannot represent."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UnprocessableError(f"{moment.isoformat()} has no time zone; add one, e.g. Z or +00:00")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise UnprocessableError(f"{moment.isoformat()} is out of range") from None


def iso(moment: datetime) -> str:
    return time_text(moment)


def entry_json(entry: StateEntry, value: Any) -> dict[str, Any]:
    writer = entry.updated_by
    return {
        "key": entry.key,
        "value": value,
        "updated_at": iso(entry.updated_at),
        # Airflow's shape: the writer without try_number and user.
        "last_updated_by": {
            name: value for name, value in writer_json(writer).items() if name not in ("try_number", "user")
        },
    }
