"""eventstore's records as JSON, one definition for every interface: the shell's `--json`, the REST
server's bodies (CONTRACT §8) and the HTTP client, which turns them back into records.

Field names are the records' own. Times are ISO 8601 in UTC with microseconds and a `Z`
(`2024-06-01T08:15:00.123456Z`): fixed width, so they sort as text, and what Airflow's API writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventstore.assets import Asset, AssetInfo
from eventstore.events import Change, Event, Op
from eventstore.writers import Writer, WriterKind


def time_text(moment: datetime) -> str:
    """`2024-06-01T08:15:00.123456Z`; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_from(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (microseconds kept); one without a zone is UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def asset_info_json(info: AssetInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "uri": info.uri, "active": info.active, "version": info.version}


def asset_info_from(body: dict[str, Any]) -> AssetInfo:
    return AssetInfo(int(body["id"]), body["name"], body["uri"], bool(body["active"]), int(body["version"]))


def writer_json(writer: Writer) -> dict[str, Any]:
    return {
        "kind": writer.kind.value,
        "dag_id": writer.dag_id,
        "run_id": writer.run_id,
        "task_id": writer.task_id,
        "map_index": writer.map_index,
        "try_number": writer.try_number,
        "user": writer.user,
    }


def writer_from(body: dict[str, Any]) -> Writer:
    return Writer(
        WriterKind(body["kind"]),
        body.get("dag_id"),
        body.get("run_id"),
        body.get("task_id"),
        body.get("map_index"),
        body.get("try_number"),
        body.get("user"),
    )


def change_json(change: Change) -> dict[str, Any]:
    return {
        "position": change.position,
        "version": change.version,
        "recorded_at": time_text(change.recorded_at),
        "op": change.op.value,
        "key": change.key,
        "value": change.value,
        "previous": change.previous,
        "writer": writer_json(change.writer),
    }


def change_from(body: dict[str, Any]) -> Change:
    return Change(
        position=int(body["position"]),
        version=int(body["version"]),
        recorded_at=time_from(body["recorded_at"]),
        op=Op(body["op"]),
        key=body["key"],
        value=body["value"],
        previous=body["previous"],
        writer=writer_from(body["writer"]),
    )


def event_json(event: Event) -> dict[str, Any]:
    """An Event, its asset as `{name, uri}`."""
    return {
        "position": event.position,
        "version": event.version,
        "recorded_at": time_text(event.recorded_at),
        "asset": {"name": event.asset.name, "uri": event.asset.uri},
        "op": event.op.value,
        "key": event.key,
        "value": event.value,
        "writer": writer_json(event.writer),
    }


def event_from(body: dict[str, Any]) -> Event:
    return Event(
        position=int(body["position"]),
        version=int(body["version"]),
        recorded_at=time_from(body["recorded_at"]),
        op=Op(body["op"]),
        key=body["key"],
        value=body["value"],
        writer=writer_from(body["writer"]),
        asset=Asset(body["asset"]["name"], body["asset"]["uri"]),
    )
