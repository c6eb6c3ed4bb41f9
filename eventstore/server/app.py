"""`create_app(store_or_url)`: the ASGI application of CONTRACT §8.

How database calls stay off the event loop: routes without a body are plain `def`s, which FastAPI runs
in its threadpool; routes with a body are `async def` only to read and parse it (never touching the
database), then hand the database work to the threadpool with `run_in_threadpool`. The token check is a
plain `def` too (GET of a key, the hot read, runs it with the read in one trip to the loop's default
executor, cheaper per call than anyio's threadpool). No route calls the store from the event loop thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from eventstore.errors import StoreUnavailableError
from eventstore.server import errors
from eventstore.server.auth import Reader, TokenGate
from eventstore.server.models import HealthResponse, UnavailableResponse, UnprocessableResponse
from eventstore.server.responses import JSONBody
from eventstore.server.routes import assets, audit, execution, state, web
from eventstore.store import Store, open_store

logger = logging.getLogger("eventstore.server")


def create_app(store_or_url: Store | str) -> FastAPI:
    """The REST server for a store, or for the store at a URL (opened now, closed at shutdown)."""
    owned = not isinstance(store_or_url, Store)
    store = open_store(store_or_url) if owned else store_or_url  # type: ignore[arg-type]
    assert isinstance(store, Store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            await run_in_threadpool(store.close)
            logger.info("eventstore server: store %s closed", store.url)

    app = FastAPI(
        title="eventstore",
        summary="Event-sourced asset state store: Airflow's routes, with history, as-of and rewind",
        lifespan=lifespan,
        openapi_url=None,  # served below, behind the read scope
        docs_url=None,
        redoc_url=None,
        default_response_class=JSONBody,
        responses={
            401: {"description": "Missing, unknown or revoked token"},
            403: {"description": "The token's scope is too low"},
            422: {"model": UnprocessableResponse, "description": "The request's content cannot be used"},
            503: {"model": UnavailableResponse, "description": "The database cannot be used"},
        },
    )
    app.state.store = store
    app.state.token_gate = TokenGate(store)
    errors.install(app)
    for module in (assets, state, audit, execution, web):
        app.include_router(module.router)

    @app.get("/health", response_model=HealthResponse, tags=["Server"])
    def health() -> JSONBody:
        """200 when the database answers a trivial query, 503 otherwise. Needs no token."""
        try:
            store.ping()
        except StoreUnavailableError as error:
            return JSONBody({"status": "unavailable", "detail": str(error)}, status_code=503)
        return JSONBody({"status": "ok"})

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(request: Request, caller: Reader) -> dict[str, Any]:
        return app.openapi()

    return app
