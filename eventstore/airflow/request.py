"""What eventstore's code inside Airflow's API server knows about the request being served, set by the
plugin's middleware (eventstore.airflow.plugin) and read by the backend and the session listener.

Plain contextvars: a sync endpoint runs in a worker thread with a copy of the request's context.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

REQUEST_SCOPE: ContextVar[dict[str, Any] | None] = ContextVar("eventstore_airflow_scope", default=None)
"""The ASGI scope of the write request being served (the Execution API's JWT check caches the task's
token on it as `ti_token`)."""


class _NotAnApiRequest:
    def __repr__(self) -> str:
        return "NOT_AN_API_REQUEST"


NOT_AN_API_REQUEST = _NotAnApiRequest()

API_USER: ContextVar[str | _NotAnApiRequest | None] = ContextVar(
    "eventstore_airflow_user", default=NOT_AN_API_REQUEST
)
"""While Airflow's REST API or UI serves a write: the Airflow user's name (None if none was authenticated)."""
