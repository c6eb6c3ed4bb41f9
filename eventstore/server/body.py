"""Reading request bodies strictly: a size cap (413), a JSON parser that refuses NaN and Infinity (422,
where a lenient parser would let them through and fail later with a 500), then the strict model."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from eventstore import codec
from eventstore.server.errors import BodyTooLargeError, UnprocessableError

M = TypeVar("M", bound=BaseModel)

BASE_BODY_CAP = 1024 * 1024
"""Bytes a body may take beyond the largest value: room for keys, PATCH lists and JSON escaping."""


def body_cap(max_value_bytes: int) -> int:
    """The largest body accepted (413 above): 1 MiB plus the value limit, or 16 MiB without a limit."""
    return BASE_BODY_CAP + (max_value_bytes if max_value_bytes else 15 * BASE_BODY_CAP)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON: NaN and Infinity cannot be stored")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range for a JSON number (it would become Infinity)")
    return number


def parse_json(raw: bytes) -> Any:
    """Parse `raw` as strict JSON (UTF-8, no NaN/Infinity, finite numbers); UnprocessableError if not."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise UnprocessableError("The request body is not UTF-8") from None
    except RecursionError:
        raise UnprocessableError("The request body is nested too deeply") from None
    except ValueError as error:
        raise UnprocessableError(f"The request body is not valid JSON: {error}") from None


async def read_body(request: Request, cap: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `cap` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise BodyTooLargeError(f"The request body is over {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BodyTooLargeError(f"The request body is over {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def parsed(request: Request, model: type[M], cap: int) -> M:
    """Read, parse and validate the body as `model`."""
    data = parse_json(await read_body(request, cap))
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_input=False)]
        ) from None


def encoded(key: str, value: Any, max_value_bytes: int) -> str:
    """The JSON text of `value` for `key`, or UnprocessableError: null, not JSON, or over the limit."""
    if value is None:
        raise UnprocessableError(f"The value of {key!r} cannot be null; delete the key instead")
    try:
        text = codec.encode(value)
    except (TypeError, ValueError) as error:
        raise UnprocessableError(f"The value of {key!r} cannot be stored: {error}") from None
    if max_value_bytes and len(text) * 4 > max_value_bytes and len(text.encode()) > max_value_bytes:
        raise UnprocessableError(
            f"The value of {key!r} is {len(text.encode())} bytes, over EVENTSTORE_MAX_VALUE_BYTES="
            f"{max_value_bytes}; store a reference to large payloads instead"
        )
    return text


def checked_key(key: str) -> str:
    """`key` if it is a valid state key (eventstore.codec.check_key), else UnprocessableError."""
    try:
        return codec.check_key(key)
    except (TypeError, ValueError) as error:
        raise UnprocessableError(str(error)) from None


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a route that reads its body itself (see `parsed`)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
