"""The REST API's JSON shapes (CONTRACT §8) turned back into eventstore's records, and the other way."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from eventstore.assets import Asset, AssetInfo
from eventstore.events import Change, Event, Op
from eventstore.writers import Writer, WriterKind


def key_path(key: str) -> str:
    """A key as one path segment: everything escaped, dots too, so that `.`, `..` and `/` in a key are
    never read as path structure by anything between here and the route (`{key:path}` decodes them)."""
    return quote(key, safe="").replace(".", "%2E")


def writer_headers(writer: Writer) -> dict[str, str]:
    """The `Eventstore-Writer` header for a task or watcher writer; none for the others, which the
    server records as `Writer.api(user=<token name>)`. The server always sets `user` itself."""
    if writer.kind is WriterKind.TASK:
        fields: dict[str, Any] = {
            "kind": "task",
            "dag_id": writer.dag_id,
            "run_id": writer.run_id,
            "task_id": writer.task_id,
            "map_index": writer.map_index,
            "try_number": writer.try_number,
        }
    elif writer.kind is WriterKind.WATCHER:
        fields = {"kind": "watcher"}
    else:
        return {}
    return {"Eventstore-Writer": json.dumps(fields, ensure_ascii=True, separators=(",", ":"))}


def text_of(value: Any) -> str:
    """A decoded JSON value back to JSON text, as the `StateStore` interface carries values."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def moment(text: str) -> datetime:
    """An ISO 8601 time from the server as an aware UTC datetime (microseconds kept)."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def asset_info(body: dict[str, Any]) -> AssetInfo:
    return AssetInfo(int(body["id"]), body["name"], body["uri"], bool(body["active"]), int(body["version"]))


def writer(body: dict[str, Any]) -> Writer:
    return Writer(
        WriterKind(body["kind"]),
        body.get("dag_id"),
        body.get("run_id"),
        body.get("task_id"),
        body.get("map_index"),
        body.get("try_number"),
        body.get("user"),
    )


def change(body: dict[str, Any]) -> Change:
    return Change(
        position=int(body["position"]),
        version=int(body["version"]),
        recorded_at=moment(body["recorded_at"]),
        op=Op(body["op"]),
        key=body["key"],
        value=body["value"],
        previous=body["previous"],
        writer=writer(body["writer"]),
    )


def event(body: dict[str, Any]) -> Event:
    return Event(
        position=int(body["position"]),
        version=int(body["version"]),
        recorded_at=moment(body["recorded_at"]),
        op=Op(body["op"]),
        key=body["key"],
        value=body["value"],
        writer=writer(body["writer"]),
        asset=Asset(body["asset"]["name"], body["asset"]["uri"]),
    )
