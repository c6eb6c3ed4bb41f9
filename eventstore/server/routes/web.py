"""The web page for people (CONTRACT §11): its files, and the three reads it needs that §8 lacks.

The page itself (`/`, `/static/...`) needs no token: it holds no data, and every data call it makes
goes through the API with the token the user gives it. The reads, like every GET, need `read`:

- `GET /api/v2/session` (no token needed): whether the server needs a token, and the name and scope of
  the one sent (null if none or unknown): the page asks for a token, or says that restoring needs `write`,
  before a request is refused (a refused request is an error in the browser's console).
- `GET /api/v2/asset-overview?name=&active=&id=&limit=&offset=`: assets with `key_count` and
  `last_change_at`; `name` matches names and uris case-insensitively anywhere; `last_position` is the
  log's highest position (where the live feed starts).
- `GET /api/v2/assets/{asset_id}/state-timeline?key=&buckets=`: one key's whole history down-sampled
  to at most `buckets` time buckets, each with its count, min and max plotted value and its last change
  (with writer): what the chart draws, whatever the number of changes.
- `GET /api/v2/assets/{asset_id}/key-changes?key=&before=&limit=`: one key's changes newest first,
  paged by position (`next_before`, null on the last page).
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from eventstore import overview
from eventstore.server.auth import Reader, TokenGate
from eventstore.server.body import checked_key
from eventstore.server.deps import MAX_INT, AssetId, Limit, Offset, clamp, iso, store_of
from eventstore.server.errors import documented
from eventstore.server.models import ChangeResponse, WriterResponse
from eventstore.server.responses import JSONBody
from eventstore.tokens import authenticate
from eventstore.wire import change_json, writer_json

STATIC = files("eventstore.server") / "static"

router = APIRouter(tags=["Web page"])
AUDIT = ["Audit and replay"]

# The page's files are only ever fetched by the page; a strict policy keeps it from loading anything
# from elsewhere even if a value it shows were ever mistaken for markup.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _file(name: str) -> Response:
    path = STATIC / name
    suffix = "." + name.rsplit(".", 1)[-1]
    if "/" in name or name.startswith(".") or suffix not in _TYPES or not path.is_file():
        return JSONBody({"detail": "Not Found"}, status_code=404)
    return FileResponse(str(path), media_type=_TYPES[suffix] + "; charset=utf-8", headers=_HEADERS)


@router.get("/", include_in_schema=False)
def page() -> Response:
    """The page (one HTML document; its views are chosen by the URL's #fragment)."""
    return _file("index.html")


@router.get("/static/{name}", include_in_schema=False)
def static(name: str) -> Response:
    return _file(name)


# --- the page's reads ---------------------------------------------------------------------------------


class SessionResponse(BaseModel):
    tokens_required: bool
    name: str | None
    scope: str | None


@router.get("/api/v2/session", response_model=SessionResponse, tags=["Server"])
def session(request: Request) -> JSONBody:
    """Whether requests need a token, and the name and scope of the bearer token sent (null when none
    was sent, or it is unknown or revoked). Needs no token; tells a caller nothing about other tokens."""
    gate: TokenGate = request.app.state.token_gate
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    info = None
    if scheme.lower() == "bearer" and credentials.strip():
        info = authenticate(gate.store, credentials.strip())
    return JSONBody(
        {
            "tokens_required": gate.closed(),
            "name": None if info is None else info.name,
            "scope": None if info is None else str(info.scope),
        }
    )


class AssetSummaryResponse(BaseModel):
    id: int
    name: str
    uri: str
    active: bool
    version: int
    key_count: int
    last_change_at: datetime | None


class OverviewResponse(BaseModel):
    assets: list[AssetSummaryResponse]
    total_entries: int
    last_position: int


class PointResponse(BaseModel):
    position: int
    recorded_at: datetime
    op: str
    value: Any
    writer: WriterResponse


class BucketResponse(BaseModel):
    start: datetime
    end: datetime
    count: int
    min: float | None
    max: float | None
    last: PointResponse


class TimelineResponse(BaseModel):
    key: str
    total_entries: int
    kind: str
    first_at: datetime | None
    last_at: datetime | None
    buckets: list[BucketResponse]


class KeyChangesResponse(BaseModel):
    changes: list[ChangeResponse]
    next_before: int | None


def _moment(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


@router.get("/api/v2/asset-overview", response_model=OverviewResponse, tags=["Asset"])
def asset_overview(
    request: Request,
    caller: Reader,
    name: str | None = None,
    active: bool | None = None,
    id: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    limit: Limit | None = None,
    offset: Offset = 0,
) -> JSONBody:
    """Assets by id, each with its number of keys and the time of its last change; `name` matches any
    part of a name or uri, ignoring case."""
    found = overview.asset_overview(
        store_of(request), name_contains=name, active=active, asset_id=id, limit=clamp(limit), offset=offset
    )
    assets = [
        {
            "id": a.id,
            "name": a.name,
            "uri": a.uri,
            "active": a.active,
            "version": a.version,
            "key_count": a.keys,
            "last_change_at": _moment(a.last_change_at),
        }
        for a in found.assets
    ]
    return JSONBody({"assets": assets, "total_entries": found.total, "last_position": found.last_position})


@router.get(
    "/api/v2/assets/{asset_id}/state-timeline",
    response_model=TimelineResponse,
    tags=["Audit and replay"],
    responses=documented(404),
)
def state_timeline(
    request: Request,
    asset_id: AssetId,
    caller: Reader,
    key: str,
    buckets: Annotated[int, Query(ge=1, le=overview.MAX_BUCKETS)] = 600,
) -> JSONBody:
    """The key's whole history in at most `buckets` equal time buckets (empty ones left out): each
    with its number of changes, the least and greatest plotted value set in it (numbers, or ISO 8601
    times as epoch milliseconds: `kind` says which; null for `other`) and its last change."""
    checked_key(key)
    timeline = overview.key_timeline(store_of(request), asset_id, key, buckets)
    return JSONBody(
        {
            "key": timeline.key,
            "total_entries": timeline.total,
            "kind": timeline.kind,
            "first_at": _moment(timeline.first_at),
            "last_at": _moment(timeline.last_at),
            "buckets": [
                {
                    "start": iso(b.start),
                    "end": iso(b.end),
                    "count": b.count,
                    "min": b.low,
                    "max": b.high,
                    "last": {
                        "position": b.last.position,
                        "recorded_at": iso(b.last.recorded_at),
                        "op": b.last.op,
                        "value": b.last.value,
                        "writer": writer_json(b.last.writer),
                    },
                }
                for b in timeline.buckets
            ],
        }
    )


@router.get(
    "/api/v2/assets/{asset_id}/key-changes",
    response_model=KeyChangesResponse,
    tags=["Audit and replay"],
    responses=documented(404),
)
def key_changes(
    request: Request,
    asset_id: AssetId,
    caller: Reader,
    key: str,
    before: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
    limit: Limit | None = None,
) -> JSONBody:
    """The key's changes with positions below `before` (all if absent), newest first; pass
    `next_before` as `before` for the next page (null: no more)."""
    checked_key(key)
    size = clamp(limit)
    changes = overview.key_changes(store_of(request), asset_id, key, before=before, limit=size + 1)
    more = len(changes) > size
    page = changes[:size]
    return JSONBody(
        {
            "changes": [change_json(c) for c in page],
            "next_before": page[-1].position if more and page else None,
        }
    )
