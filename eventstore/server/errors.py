"""How eventstore's exceptions become HTTP answers. Messages never carry a token (none ever reaches an
exception: tokens are only hashed, in eventstore.tokens)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventstore.errors import (
    AssetConflictError,
    AssetNotFoundError,
    CompactedError,
    OutcomeUnknownError,
    StateStoreError,
    StoreUnavailableError,
    VersionConflictError,
)
from eventstore.server.models import ErrorResponse
from eventstore.server.responses import JSONBody

logger = logging.getLogger("eventstore.server")


class InactiveAssetError(StateStoreError):
    """A write to an asset that exists but is not active (409)."""


class BodyTooLargeError(StateStoreError):
    """A request body over the server's size cap (413)."""


class UnprocessableError(StateStoreError):
    """A request that is well-formed HTTP but whose content cannot be used (422)."""


MEANINGS = {
    404: "Unknown asset (or key)",
    409: "The asset is inactive (no writes), or its name or uri is used by another active asset",
    410: "Compaction removed the events this point needs",
    412: "If-Match names a version the asset has moved on from; nothing was written",
    413: "The request body is over the size cap",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route that may answer these error statuses, for /openapi.json."""
    return {status: {"model": ErrorResponse, "description": MEANINGS[status]} for status in statuses}


def _detail(status: int, detail: Any, **extra: Any) -> JSONBody:
    return JSONBody({"detail": detail, **extra}, status_code=status)


def install(app: FastAPI) -> None:
    """Register the handlers that map eventstore's errors to statuses (CONTRACT §8)."""

    @app.exception_handler(StoreUnavailableError)
    def unavailable(request: Request, error: StoreUnavailableError) -> JSONBody:
        outcome = "unknown" if isinstance(error, OutcomeUnknownError) else "not_applied"
        logger.warning("%s %s: database unavailable (%s)", request.method, request.url.path, outcome)
        return _detail(503, str(error), outcome=outcome)

    @app.exception_handler(InactiveAssetError)
    def inactive(request: Request, error: InactiveAssetError) -> JSONBody:
        return _detail(409, str(error))

    @app.exception_handler(AssetNotFoundError)
    def not_found(request: Request, error: AssetNotFoundError) -> JSONBody:
        return _detail(404, str(error))

    @app.exception_handler(AssetConflictError)
    def conflict(request: Request, error: AssetConflictError) -> JSONBody:
        return _detail(409, str(error))

    @app.exception_handler(CompactedError)
    def compacted(request: Request, error: CompactedError) -> JSONBody:
        return _detail(410, str(error))

    @app.exception_handler(VersionConflictError)
    def version_conflict(request: Request, error: VersionConflictError) -> JSONBody:
        return _detail(412, str(error))

    @app.exception_handler(BodyTooLargeError)
    def too_large(request: Request, error: BodyTooLargeError) -> JSONBody:
        return _detail(413, str(error))

    @app.exception_handler(UnprocessableError)
    def unprocessable(request: Request, error: UnprocessableError) -> JSONBody:
        return _detail(422, str(error))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, error: RequestValidationError) -> JSONBody:
        # Only the location and message: echoing the input could echo a huge or unrenderable value.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return _detail(422, errors)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, error: StarletteHTTPException) -> JSONBody:
        response = _detail(error.status_code, error.detail)
        if error.headers:
            response.headers.update(error.headers)
        return response
