"""History, as-of, the global feed, rewind and compaction over HTTP (CONTRACT §5 and §6).

A range or point that compaction removed answers 410; an unknown asset 404.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from eventstore.errors import AssetNotActiveError
from eventstore.server.auth import AdminWriter, Reader, TaskWriter
from eventstore.server.deps import MAX_INT, AssetId, Limit, Offset, clamp, store_of, utc
from eventstore.server.errors import InactiveAssetError, UnprocessableError, documented
from eventstore.server.models import (
    ChangeCollection,
    CompactionResponse,
    EventCollection,
    RestoreResponse,
    StateAsOfResponse,
)
from eventstore.server.responses import JSONBody
from eventstore.wire import change_json, event_json

router = APIRouter(prefix="/api/v2", tags=["Audit and replay"])

Position = Annotated[int | None, Query(ge=0, le=MAX_INT)]
DEFAULT_EVENTS = 100
MAX_EVENTS = 1000


def _one_point(at: datetime | None, position: int | None) -> tuple[datetime | None, int | None]:
    if (at is None) == (position is None):
        raise UnprocessableError("Give exactly one of `at` (an ISO 8601 time with a zone) or `position`")
    return utc(at), position


@router.get("/assets/{asset_id}/state-history", response_model=ChangeCollection, responses=documented(404))
def state_history(
    request: Request,
    asset_id: AssetId,
    caller: Reader,
    key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit | None = None,
    offset: Offset = 0,
    newest_first: bool = False,
) -> JSONBody:
    """The asset's changes (with `key`: that key's sets and deletes and the clears that removed it);
    `since` inclusive, `until` exclusive; `total_entries` counts them before paging."""
    store = store_of(request)
    asset = store.asset_info(asset_id).asset
    start, end = utc(since), utc(until)
    page = store.history(
        asset, key, since=start, until=end, limit=clamp(limit), offset=offset, newest_first=newest_first
    )
    total = store.count_history(asset, key, since=start, until=end)
    return JSONBody({"changes": [change_json(c) for c in page], "total_entries": total})


@router.get(
    "/assets/{asset_id}/state-as-of", response_model=StateAsOfResponse, responses=documented(404, 410)
)
def state_as_of(
    request: Request,
    asset_id: AssetId,
    caller: Reader,
    at: datetime | None = None,
    position: Position = None,
) -> JSONBody:
    """The state right after the asset's last event at or before `at` (inclusive) or `position`.
    `position` in the answer: the given one, or for `at` the position of that last event (0 if none),
    so the state holds exactly the asset's events up to it."""
    store = store_of(request)
    asset = store.asset_info(asset_id).asset
    moment, point = _one_point(at, position)
    state = store.state_as_of(asset, at=moment, position=point)
    if point is None:
        assert moment is not None
        last = store.history(asset, until=moment + timedelta(microseconds=1), newest_first=True, limit=1)
        point = last[0].position if last else 0
    return JSONBody({"state": state, "position": point})


@router.get("/state-events", response_model=EventCollection)
def state_events(
    request: Request,
    caller: Reader,
    after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[
        int | None, Query(ge=0, description=f"default {DEFAULT_EVENTS}, at most {MAX_EVENTS}")
    ] = None,
) -> JSONBody:
    """The global feed after position `after`; `last_position` is where to continue (`after` if none)."""
    events = store_of(request).events(after, clamp(limit, DEFAULT_EVENTS, MAX_EVENTS))
    last = events[-1].position if events else after
    return JSONBody({"events": [event_json(e) for e in events], "last_position": last})


@router.post(
    "/assets/{asset_id}/state-restore",
    response_model=RestoreResponse,
    responses=documented(404, 409, 410),
)
def state_restore(
    request: Request,
    asset_id: AssetId,
    writer: TaskWriter,
    at: datetime | None = None,
    position: Position = None,
    dry_run: bool = False,
) -> JSONBody:
    """Rewind the asset's state to `at` or `position`, appending the changes that do it (none with
    `dry_run`); 409 for an inactive asset, 410 for a compacted point."""
    store = store_of(request)
    info = store.asset_info(asset_id)
    moment, point = _one_point(at, position)
    try:
        changes = store.restore(info.asset, at=moment, position=point, writer=writer, dry_run=dry_run)
    except AssetNotActiveError:
        raise InactiveAssetError(f"Asset {info.name!r} is not active; activate it before restoring") from None
    return JSONBody({"changes": [change_json(c) for c in changes]})


@router.post("/state-store/compact", response_model=CompactionResponse)
def compact(request: Request, writer: AdminWriter, dry_run: bool = False) -> JSONBody:
    """Delete the events and view rows of every inactive asset past the grace period."""
    report = store_of(request).compact(dry_run=dry_run)
    return JSONBody(
        {
            "assets": [
                {"name": a.name, "uri": a.uri, "events": a.events, "keys": a.keys} for a in report.assets
            ],
            "events_deleted": report.events_deleted,
            "rows_deleted": report.rows_deleted,
            "dry_run": dry_run,
        }
    )
