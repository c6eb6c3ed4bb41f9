"""The shapes of request and response bodies (CONTRACT §8), as pydantic models.

Request models are strict (`extra="forbid"`: an unknown field is a 422). Response models document the
routes in /openapi.json; routes render their answers themselves (eventstore.server.responses), so a
value comes back exactly as it was stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------------------------


class ValueBody(Strict):
    """PUT body: the new value, any JSON but null (NaN and Infinity are not JSON)."""

    value: Any


class PatchBody(Strict):
    """PATCH body: keys to set and keys to delete, applied together or not at all."""

    set: dict[str, Any] = Field(default_factory=dict)
    delete: list[str] = Field(default_factory=list)


class AssetBody(Strict):
    """POST /api/v2/assets: the asset to activate (registered if new); `uri` defaults to `name`."""

    name: str
    uri: str | None = None


class WriterHeader(Strict):
    """The `Eventstore-Writer` header: which task (or watcher) a worker's request writes for."""

    kind: Literal["task", "watcher"]
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None


# --- responses --------------------------------------------------------------------------------------


class AssetResponse(BaseModel):
    id: int
    name: str
    uri: str
    active: bool
    version: int


class AssetCollection(BaseModel):
    assets: list[AssetResponse]
    total_entries: int


class LastUpdatedBy(BaseModel):
    kind: str
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None


class StateEntryResponse(BaseModel):
    key: str
    value: Any
    updated_at: datetime
    last_updated_by: LastUpdatedBy | None


class StateCollection(BaseModel):
    asset_state_store: list[StateEntryResponse]
    total_entries: int


class WriterResponse(BaseModel):
    kind: str
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None
    user: str | None


class ChangeResponse(BaseModel):
    position: int
    version: int
    recorded_at: datetime
    op: str
    key: str | None
    value: Any
    previous: Any
    writer: WriterResponse


class ChangeCollection(BaseModel):
    changes: list[ChangeResponse]
    total_entries: int


class RestoreResponse(BaseModel):
    changes: list[ChangeResponse]


class AssetIdentity(BaseModel):
    name: str
    uri: str


class EventResponse(BaseModel):
    position: int
    version: int
    recorded_at: datetime
    op: str
    key: str | None
    value: Any
    writer: WriterResponse
    asset: AssetIdentity


class EventCollection(BaseModel):
    events: list[EventResponse]
    last_position: int


class StateAsOfResponse(BaseModel):
    state: dict[str, Any]
    position: int


class CompactedAssetResponse(BaseModel):
    name: str
    uri: str
    events: int
    keys: int


class CompactionResponse(BaseModel):
    assets: list[CompactedAssetResponse]
    events_deleted: int
    rows_deleted: int
    dry_run: bool


class ValueResponse(BaseModel):
    value: Any


class HealthResponse(BaseModel):
    status: str


class ErrorResponse(BaseModel):
    detail: Any


class ValidationProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class UnprocessableResponse(BaseModel):
    """A 422: the problems the framework's validation found, or eventstore's message."""

    detail: list[ValidationProblem] | str


class UnavailableResponse(BaseModel):
    detail: str
    outcome: Literal["not_applied", "unknown"]
