"""The task-facing routes (Airflow's /execution/store/asset): by name or by uri, active assets only
(an inactive or unknown asset is a 404, in Airflow's `{"reason", "message"}` shape)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from eventstore import codec
from eventstore.assets import Asset
from eventstore.errors import AssetNotActiveError
from eventstore.server.auth import Reader, TaskWriter
from eventstore.server.body import body_cap, checked_key, encoded, parsed, request_body_schema
from eventstore.server.deps import store_of
from eventstore.server.errors import documented
from eventstore.server.models import ValueBody, ValueResponse
from eventstore.server.responses import JSONBody
from eventstore.store import Store
from eventstore.writers import Writer

router = APIRouter(prefix="/execution/store/asset", tags=["Asset State Store (execution)"])

Name = Annotated[str, Query(min_length=1)]
Key = Annotated[str, Query(min_length=1)]


def _not_found(field: str, value: str) -> HTTPException:
    return HTTPException(404, {"reason": "not_found", "message": f"Asset with {field}={value!r} not found"})


def _resolve(store: Store, field: str, value: str) -> Asset:
    found = store.active_asset(name=value) if field == "name" else store.active_asset(uri=value)
    if found is None:
        raise _not_found(field, value)
    return found


def _get(store: Store, field: str, value: str, key: str) -> JSONBody:
    checked_key(key)
    asset = _resolve(store, field, value)
    try:
        text = store.read_value(asset, key)
    except AssetNotActiveError:
        raise _not_found(field, value) from None
    if text is None:
        raise HTTPException(
            404, {"reason": "not_found", "message": f"Asset state store key {key!r} not found"}
        )
    return JSONBody({"value": codec.decode(text)})


def _write(store: Store, field: str, value: str, writer: Writer, **change: object) -> Response:
    asset = _resolve(store, field, value)
    try:
        sets = change.get("sets")
        if isinstance(sets, dict) and len(sets) == 1:
            [(key, text)] = sets.items()
            store.set_value(asset, writer, key, text)
        else:
            store.write(asset, writer, **change)  # type: ignore[arg-type]
    except AssetNotActiveError:
        raise _not_found(field, value) from None
    return Response(status_code=204)


async def _put(request: Request, field: str, value: str, key: str, writer: Writer) -> Response:
    store = store_of(request)
    checked_key(key)
    body = await parsed(request, ValueBody, body_cap(store.max_value_bytes))
    text = encoded(key, body.value, store.max_value_bytes)
    return await run_in_threadpool(_write, store, field, value, writer, sets={key: text})


Value: dict[str, Any] = {"response_model": ValueResponse, "responses": documented(404)}
Put: dict[str, Any] = {
    "status_code": 204,
    "response_class": Response,
    "responses": documented(404, 413),
    "openapi_extra": request_body_schema(ValueBody),
}
Delete: dict[str, Any] = {"status_code": 204, "response_class": Response, "responses": documented(404)}


@router.get("/by-name/value", **Value)
def get_by_name(request: Request, name: Name, key: Key, caller: Reader) -> JSONBody:
    return _get(store_of(request), "name", name, key)


@router.put("/by-name/value", **Put)
async def put_by_name(request: Request, name: Name, key: Key, writer: TaskWriter) -> Response:
    return await _put(request, "name", name, key, writer)


@router.delete("/by-name/value", **Delete)
def delete_by_name(request: Request, name: Name, key: Key, writer: TaskWriter) -> Response:
    return _write(store_of(request), "name", name, writer, deletes=[checked_key(key)])


@router.delete("/by-name/clear", **Delete)
def clear_by_name(request: Request, name: Name, writer: TaskWriter) -> Response:
    return _write(store_of(request), "name", name, writer, clear=True)


@router.get("/by-uri/value", **Value)
def get_by_uri(request: Request, uri: Name, key: Key, caller: Reader) -> JSONBody:
    return _get(store_of(request), "uri", uri, key)


@router.put("/by-uri/value", **Put)
async def put_by_uri(request: Request, uri: Name, key: Key, writer: TaskWriter) -> Response:
    return await _put(request, "uri", uri, key, writer)


@router.delete("/by-uri/value", **Delete)
def delete_by_uri(request: Request, uri: Name, key: Key, writer: TaskWriter) -> Response:
    return _write(store_of(request), "uri", uri, writer, deletes=[checked_key(key)])


@router.delete("/by-uri/clear", **Delete)
def clear_by_uri(request: Request, uri: Name, writer: TaskWriter) -> Response:
    return _write(store_of(request), "uri", uri, writer, clear=True)
