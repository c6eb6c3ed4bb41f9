"""An asset's state as an administrator sees it (Airflow's /api/v2/assets/{id}/state-store routes).

These routes work on an inactive asset that is not compacted yet: reads, delete and clear succeed;
PUT (and a PATCH that sets keys) answers 409. GET of a key carries `ETag: "<asset version>"`; PUT,
PATCH and DELETE honour `If-Match` (412 without writing when the version moved on).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from eventstore import codec
from eventstore.errors import AssetNotActiveError, AssetNotFoundError
from eventstore.server.auth import Credentials, Reader, TaskWriter, authorize
from eventstore.server.body import body_cap, checked_key, encoded, parsed, request_body_schema
from eventstore.server.deps import AssetId, Limit, Offset, clamp, entry_json, store_of
from eventstore.server.errors import InactiveAssetError, UnprocessableError, documented
from eventstore.server.models import PatchBody, StateCollection, StateEntryResponse, ValueBody
from eventstore.server.responses import JSONBody
from eventstore.store import Store
from eventstore.tokens import Scope
from eventstore.writers import Writer

router = APIRouter(prefix="/api/v2/assets/{asset_id}/state-store", tags=["Asset State Store"])

IfMatch = Annotated[str | None, Header(alias="If-Match", description='"<version>" from the ETag')]


def expected_version(if_match: str | None) -> int | None:
    """The version an If-Match header asks for (None: no condition, also for `*`); 422 if malformed."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isascii() or not tag.isdigit() or len(tag) > 18:
        raise UnprocessableError('If-Match must be an ETag of this API: "<version>", e.g. "12"')
    return int(tag)


def _not_writable(name: str) -> InactiveAssetError:
    return InactiveAssetError(
        f"Asset {name!r} is not active, so its state cannot be written; activate it first"
    )


@router.get("", response_model=StateCollection, responses=documented(404))
def list_state(
    request: Request, asset_id: AssetId, caller: Reader, limit: Limit | None = None, offset: Offset = 0
) -> JSONBody:
    """The asset's keys, sorted; `total_entries` counts them before paging."""
    page = store_of(request).entries(asset_id, limit=clamp(limit), offset=offset)
    items = [entry_json(e, codec.decode(e.value)) for e in page.entries]
    return JSONBody({"asset_state_store": items, "total_entries": page.total})


@router.get("/{key:path}", response_model=StateEntryResponse, responses=documented(404))
async def get_state(request: Request, asset_id: AssetId, key: str, credentials: Credentials) -> JSONBody:
    """One key, with `ETag: "<asset version>"` for a conditional write. Needs the read scope."""
    # The hot read: the token check and the read share one trip to a worker thread (docs/performance.md).
    return await asyncio.get_running_loop().run_in_executor(
        None, _get_state, request, credentials, asset_id, key
    )


def _get_state(
    request: Request, credentials: HTTPAuthorizationCredentials | None, asset_id: int, key: str
) -> JSONBody:
    authorize(request, credentials, Scope.READ)
    checked_key(key)
    entry, version = store_of(request).entry(asset_id, key)
    if entry is None:
        raise AssetNotFoundError(f"Asset state store key {key!r} not found")
    return JSONBody(entry_json(entry, codec.decode(entry.value)), headers={"ETag": f'"{version}"'})


def _write(
    store: Store,
    asset_id: int,
    writer: Writer,
    *,
    sets: dict[str, str],
    deletes: list[str],
    clear: bool,
    version: int | None,
) -> Response:
    info = store.asset_info(asset_id)
    if sets and not info.active:
        raise _not_writable(info.name)
    try:
        if sets and len(sets) == 1 and not deletes and version is None:
            [(key, text)] = sets.items()
            store.set_value(info.asset, writer, key, text)  # the one-statement path where it exists
        else:
            new = store.write(
                info.asset,
                writer,
                sets=sets,
                deletes=deletes,
                clear=clear,
                expected_version=version,
                inactive_ok=not sets,
            )
            return Response(status_code=204, headers={"ETag": f'"{new}"'})
    except AssetNotActiveError:
        raise _not_writable(info.name) from None  # deactivated meanwhile; the id itself exists
    return Response(status_code=204)


@router.put(
    "/{key:path}",
    status_code=204,
    response_class=Response,
    responses=documented(404, 409, 412, 413),
    openapi_extra=request_body_schema(ValueBody),
)
async def set_state(
    request: Request, asset_id: AssetId, key: str, writer: TaskWriter, if_match: IfMatch = None
) -> Response:
    """Set one key: 204; 409 for an inactive asset; 412 if `If-Match` names another version."""
    store = store_of(request)
    checked_key(key)
    version = expected_version(if_match)
    body = await parsed(request, ValueBody, body_cap(store.max_value_bytes))
    text = encoded(key, body.value, store.max_value_bytes)
    return await run_in_threadpool(
        _write, store, asset_id, writer, sets={key: text}, deletes=[], clear=False, version=version
    )


@router.delete("/{key:path}", status_code=204, response_class=Response, responses=documented(404, 412))
def delete_state(
    request: Request, asset_id: AssetId, key: str, writer: TaskWriter, if_match: IfMatch = None
) -> Response:
    """Delete one key (204 also when it is absent); works on an inactive asset too."""
    checked_key(key)
    version = expected_version(if_match)
    return _write(store_of(request), asset_id, writer, sets={}, deletes=[key], clear=False, version=version)


@router.delete("", status_code=204, response_class=Response, responses=documented(404, 412))
def clear_state(
    request: Request, asset_id: AssetId, writer: TaskWriter, if_match: IfMatch = None
) -> Response:
    """Remove every key of the asset (204 also when it has none); works on an inactive asset too."""
    version = expected_version(if_match)
    return _write(store_of(request), asset_id, writer, sets={}, deletes=[], clear=True, version=version)


@router.patch(
    "",
    status_code=204,
    response_class=Response,
    responses=documented(404, 409, 412, 413),
    openapi_extra=request_body_schema(PatchBody),
)
async def patch_state(
    request: Request, asset_id: AssetId, writer: TaskWriter, if_match: IfMatch = None
) -> Response:
    """Set and delete keys in one transaction: all or none (422 for any bad key or value, nothing
    written); honours `If-Match`."""
    store = store_of(request)
    version = expected_version(if_match)
    body = await parsed(request, PatchBody, body_cap(store.max_value_bytes))
    sets = {checked_key(k): encoded(k, v, store.max_value_bytes) for k, v in body.set.items()}
    deletes = [checked_key(k) for k in body.delete]
    if set(sets) & set(deletes):
        raise UnprocessableError("A key cannot be both set and deleted in one PATCH")
    return await run_in_threadpool(
        _write, store, asset_id, writer, sets=sets, deletes=deletes, clear=False, version=version
    )
