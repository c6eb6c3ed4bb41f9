"""Assets: list them, activate one (registering it if new), deactivate one."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from eventstore.assets import Asset
from eventstore.server.auth import AdminWriter, Reader
from eventstore.server.body import parsed, request_body_schema
from eventstore.server.deps import AssetId, Limit, Offset, clamp, store_of
from eventstore.server.errors import UnprocessableError, documented
from eventstore.server.models import AssetBody, AssetCollection, AssetResponse
from eventstore.server.responses import JSONBody
from eventstore.wire import asset_info_json

router = APIRouter(prefix="/api/v2/assets", tags=["Asset"])


@router.get("", response_model=AssetCollection)
def list_assets(
    request: Request,
    caller: Reader,
    name: str | None = None,
    uri: str | None = None,
    active: bool | None = None,
    limit: Limit | None = None,
    offset: Offset = 0,
) -> JSONBody:
    """Registered assets by id, optionally only those with this exact name, uri or activity."""
    found = store_of(request).assets(active, name=name, uri=uri)
    page = found[offset : offset + clamp(limit)]
    return JSONBody({"assets": [asset_info_json(a) for a in page], "total_entries": len(found)})


async def _asset_body(request: Request) -> AssetBody:
    return await parsed(request, AssetBody, 64 * 1024)


@router.post(
    "",
    response_model=AssetResponse,
    responses=documented(409, 413),
    openapi_extra=request_body_schema(AssetBody),
)
async def activate_asset(request: Request, writer: AdminWriter) -> JSONBody:
    """Activate an asset, registering it if new (idempotent); 409 if another active asset has its name
    or uri. The body is read here; the database calls run in the threadpool."""
    body = await _asset_body(request)
    try:
        asset = Asset(body.name, body.uri or body.name)
    except ValueError as error:
        raise UnprocessableError(str(error)) from None
    store = store_of(request)

    def activate() -> JSONBody:
        store.activate(asset, writer)
        return JSONBody(asset_info_json(store.assets(name=asset.name, uri=asset.uri)[0]))

    return await run_in_threadpool(activate)


@router.post("/{asset_id}/deactivate", status_code=204, response_class=Response, responses=documented(404))
def deactivate_asset(request: Request, asset_id: AssetId, writer: AdminWriter) -> Response:
    """Hide the asset's state until it is activated again or compacted; a no-op if inactive."""
    store = store_of(request)
    store.deactivate(store.asset_info(asset_id).asset, writer)
    return Response(status_code=204)
