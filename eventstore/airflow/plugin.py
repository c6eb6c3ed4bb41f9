"""The Airflow plugin the `airflow` extra registers (entry point `airflow.plugins`): who made a change
through Airflow's REST API and UI, which bypass every state backend.

- `RequestMiddleware`, a root ASGI middleware of Airflow's API server (plugins load where the server runs
  the `core` app, which is the default `--apps all`): for every write request it keeps the ASGI scope
  (eventstore.airflow.request.REQUEST_SCOPE, read by EventStoreBackend for the Execution API's task
  token) and, outside `/execution`, the name of the Airflow user who made it (API_USER), resolved as
  Airflow's own `get_user` does: the user the cookie middleware put on the request, else the Bearer token.
- A SQLAlchemy `do_orm_execute` listener, installed in `on_load`: while a REST/UI write is served, each
  statement that changes `asset_state_store` runs with the writer context `api` + that user, so the
  triggers record it (a PUT's row says `api` too, but a DELETE's row says nothing, and no row says who).
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from eventstore.airflow.installation import NotInstalledError
from eventstore.airflow.request import API_USER, REQUEST_SCOPE
from eventstore.airflow.writer_context import writer_context
from eventstore.writers import Writer

logger = logging.getLogger("eventstore")

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _user_name(scope: dict[str, Any]) -> str | None:
    user = (scope.get("state") or {}).get("user")
    if user is None:
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization[:7].lower() == "bearer ":
            from airflow.api_fastapi.app import get_auth_manager

            try:
                user = await get_auth_manager().get_user_from_token(authorization[7:])
            except Exception:  # Airflow itself answers 401/403 for a bad token
                user = None
    return None if user is None else str(user.get_name())


class RequestMiddleware:
    """Pure ASGI: remembers the write request being served (module doc)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") not in _WRITES:
            await self.app(scope, receive, send)
            return
        scope_token = REQUEST_SCOPE.set(scope)
        # Execution API tokens are not users' (resolving one logs an audience error): tasks are the backend's.
        is_api = not str(scope.get("path", "")).startswith("/execution")
        user_token = API_USER.set(await _user_name(scope)) if is_api else None
        try:
            await self.app(scope, receive, send)
        finally:
            if user_token is not None:
                API_USER.reset(user_token)
            REQUEST_SCOPE.reset(scope_token)


def _changes_state(state: ORMExecuteState) -> bool:
    if not (state.is_insert or state.is_update or state.is_delete):
        return False
    table = getattr(state.statement, "table", None)
    return getattr(table, "name", None) == "asset_state_store"


def _on_execute(state: ORMExecuteState) -> Any:
    user = API_USER.get()
    if not (user is None or isinstance(user, str)) or not _changes_state(state):
        return None
    from eventstore.airflow.backend import ensure_installed

    try:
        ensure_installed(state.session)
    except NotInstalledError as error:  # Airflow's UI keeps working; the triggers are missing anyway
        logger.warning("%s", error)
        return None
    with writer_context(state.session, Writer.api(user)):
        return state.invoke_statement()


_listening = False


def install_listener() -> None:
    """Install the session listener (once per process)."""
    global _listening
    if not _listening:
        event.listen(Session, "do_orm_execute", _on_execute)
        _listening = True


class EventStorePlugin(AirflowPlugin):  # type: ignore[misc]  # Airflow is untyped for mypy here
    name = "eventstore"
    fastapi_root_middlewares = [  # noqa: RUF012  # Airflow's plugin attribute
        {
            "middleware": RequestMiddleware,
            "args": [],
            "kwargs": {},
            "name": "eventstore: who changed asset state",
        }
    ]

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        install_listener()
