"""Who is calling, and may they: bearer tokens (eventstore.tokens) and scopes, per route.

Every request looks its token up in the database (one indexed read), so all replicas on one database
agree, and a revoke takes effect on the next request. While no token has ever been created, every
request is accepted (and `serve` listens only on loopback). The token check (`requires`, `authorize`) is
a plain `def`, run in FastAPI's threadpool, so the lookup never blocks the event loop; the writer
dependency only parses a header, so it is `async` and costs no trip to the threadpool.
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError

from eventstore.server.errors import UnprocessableError
from eventstore.server.models import WriterHeader
from eventstore.store import Store
from eventstore.tokens import Scope, any_token_ever, authenticate
from eventstore.writers import Writer

_bearer = HTTPBearer(auto_error=False, description="A token from `eventstore token create`")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request: the token's name (None while the server has no tokens)."""

    user: str | None


class TokenGate:
    """Remembers that a token exists once it does: tokens are never deleted, so that never changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._closed = False

    def closed(self) -> bool:
        """True once any token has been created: from then on every request needs one."""
        if not self._closed:
            self._closed = any_token_ever(self.store)
        return self._closed


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
"""The bearer token a request carries, unchecked (no database call): for a route that calls `authorize`
itself, in the same trip to the threadpool as its own database work (GET of a key, the hot read)."""


def authorize(request: Request, credentials: HTTPAuthorizationCredentials | None, scope: Scope) -> Caller:
    """The caller, if their token has at least `scope`; 401/403 otherwise. Calls the database: run it in
    the threadpool."""
    gate: TokenGate = request.app.state.token_gate
    if credentials is not None and credentials.credentials:
        info = authenticate(gate.store, credentials.credentials)
        if info is not None:
            if info.scope < scope:
                raise HTTPException(403, f"Token {info.name!r} has scope {info.scope}; this needs {scope}")
            return Caller(info.name)
    if gate.closed():
        if credentials is None:
            raise _unauthorized("This server needs a token: send Authorization: Bearer <token>")
        raise _unauthorized("The token is unknown or revoked")
    return Caller(None)


def requires(scope: Scope) -> Any:
    """A dependency that admits a caller whose token has at least `scope` (401/403 otherwise)."""

    def check(request: Request, credentials: Credentials) -> Caller:
        return authorize(request, credentials, scope)

    return check


def writer_for(caller: Caller, header: str | None) -> Writer:
    """The writer a request records: the task or watcher its `Eventstore-Writer` header names, else
    `Writer.api`; either way with the caller's token name as `user`. UnprocessableError if malformed."""
    if header is None:
        return Writer.api(user=caller.user)
    try:
        fields = WriterHeader.model_validate(json.loads(header, parse_constant=_no_constant))
    except (ValueError, ValidationError, RecursionError):
        raise UnprocessableError(
            "The Eventstore-Writer header must be a JSON object: "
            '{"kind": "task" | "watcher", "dag_id", "run_id", "task_id", "map_index", "try_number"}'
        ) from None
    try:
        if fields.kind == "watcher":
            task_fields = (fields.dag_id, fields.run_id, fields.task_id, fields.map_index, fields.try_number)
            if any(v is not None for v in task_fields):
                raise ValueError("A watcher writer carries no task fields")
            return Writer.watcher(user=caller.user)
        return Writer.task(
            fields.dag_id or "",
            fields.run_id or "",
            fields.task_id or "",
            -1 if fields.map_index is None else fields.map_index,
            1 if fields.try_number is None else fields.try_number,
            user=caller.user,
        )
    except ValueError as error:
        raise UnprocessableError(f"Eventstore-Writer: {error}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def writer_dependency(scope: Scope) -> Any:
    """A dependency giving the writer of a write route that needs `scope`. `async`: it only parses a
    header (the token lookup is in `requires`), so it needs no trip to the threadpool."""

    async def writer(
        caller: Annotated[Caller, Depends(requires(scope))],
        eventstore_writer: Annotated[str | None, Header(alias="Eventstore-Writer")] = None,
    ) -> Writer:
        return writer_for(caller, eventstore_writer)

    return writer


Reader = Annotated[Caller, Depends(requires(Scope.READ))]
TaskWriter = Annotated[Writer, Depends(writer_dependency(Scope.WRITE))]
AdminWriter = Annotated[Writer, Depends(writer_dependency(Scope.ADMIN))]
