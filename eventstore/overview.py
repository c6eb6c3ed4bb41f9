"""Reads for the web page (CONTRACT §11) that the store's API does not make cheap.

- `asset_overview`: every asset with its number of keys and the time of its last change, in one query.
- `key_timeline`: one key's history down-sampled to at most `buckets` time buckets (count, min, max and
  the last change of each), read as bare columns so that 10,000 changes cost milliseconds, not the
  second that building 10,000 `Change`s costs.
- `key_changes`: one key's changes newest first, a page at a time by position (a cursor, so deep pages
  cost the same as the first).

Like `Store.history`, a key's history is its sets and deletes plus the asset's clears (which remove
it), and skips the events a compaction has removed or is removing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema
from eventstore.compaction import latest_compaction
from eventstore.errors import AssetNotFoundError
from eventstore.events import Change
from eventstore.store import Store
from eventstore.writers import Writer, writer_from_row
from projections.history import change_from_row

_assets = schema.assets
_events = schema.events
_state = schema.state

MAX_BUCKETS = 2000


@dataclass(frozen=True, slots=True)
class AssetSummary:
    id: int
    name: str
    uri: str
    active: bool
    version: int
    keys: int
    last_change_at: datetime | None


@dataclass(frozen=True, slots=True)
class Overview:
    assets: list[AssetSummary]
    total: int
    last_position: int  # the highest position in the log (0 if empty): where a feed reader may start


def asset_overview(
    store: Store,
    *,
    name_contains: str | None = None,
    active: bool | None = None,
    asset_id: int | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> Overview:
    """Assets by id with their key counts and last change; `name_contains` matches names and uris
    case-insensitively (compared in Python, so every database agrees)."""
    keys = (
        sa.select(_state.c.asset_id, sa.func.count().label("key_count"))
        .group_by(_state.c.asset_id)
        .subquery()
    )
    is_active = schema.is_active.label("active")
    query = (
        sa.select(
            _assets.c.id,
            _assets.c.name,
            _assets.c.uri,
            _assets.c.version,
            _assets.c.last_recorded_at,
            is_active,
            sa.func.coalesce(keys.c.key_count, 0).label("key_count"),
        )
        .select_from(_assets.outerjoin(keys, keys.c.asset_id == _assets.c.id))
        .order_by(_assets.c.id)
    )
    if active is not None:
        query = query.where(schema.is_active if active else ~schema.is_active)
    if asset_id is not None:
        query = query.where(_assets.c.id == asset_id)

    def read(conn: Connection) -> tuple[list[sa.Row[Any]], int]:
        rows = list(conn.execute(query).all())
        head = conn.execute(sa.select(sa.func.max(_events.c.position))).scalar()
        return rows, int(head or 0)

    rows, head = store._db.run(read)
    needle = (name_contains or "").casefold()
    found = [
        AssetSummary(r.id, r.name, r.uri, bool(r.active), r.version, int(r.key_count), r.last_recorded_at)
        for r in rows
        if not needle or needle in r.name.casefold() or needle in r.uri.casefold()
    ]
    end = None if limit is None else offset + limit
    return Overview(found[offset:end], len(found), head)


@dataclass(frozen=True, slots=True)
class Point:
    """The last change within a bucket: what the chart draws as a point."""

    position: int
    recorded_at: datetime
    op: str
    value: Any  # the decoded value (None for delete and clear)
    writer: Writer


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    end: datetime
    count: int  # changes in [start, end) (the last bucket includes its end)
    low: float | None  # min and max of the plotted values set in the bucket (None: none plotted)
    high: float | None
    last: Point


@dataclass(frozen=True, slots=True)
class Timeline:
    key: str
    total: int  # the key's changes (sets, deletes, clears that removed it)
    kind: str  # "number" (JSON numbers), "time" (ISO 8601 strings, plotted as epoch ms) or "other"
    first_at: datetime | None
    last_at: datetime | None
    buckets: list[Bucket]


_TIMELINE_COLUMNS = [_events.c.position, _events.c.recorded_at, _events.c.op, _events.c.value]


def _asset_id_and_floor(conn: Connection, asset_id: int) -> int:
    """The lowest surviving position of the asset minus one (0 if never compacted); 404 if unknown."""
    if conn.execute(sa.select(_assets.c.id).where(_assets.c.id == asset_id)).first() is None:
        raise AssetNotFoundError(f"Asset with id {asset_id} not found")
    mark = latest_compaction(conn, asset_id)
    return 0 if mark is None else mark.position


def _key_rows(
    conn: Connection,
    columns: list[Any],
    asset_id: int,
    key: str,
    floor: int,
    *,
    before: int | None = None,
    limit: int | None = None,
) -> list[sa.Row[Any]]:
    """The key's own events and the asset's clears (a clear removes every key), in position order
    (newest first with `limit`): two reads of the (asset_id, key, position) index, merged. One query
    with OR would make SQLite scan the whole stream."""
    base = [_events.c.asset_id == asset_id, _events.c.position > floor]
    if before is not None:
        base.append(_events.c.position < before)
    own = sa.select(*columns).where(*base, _events.c.key == key)
    clears = sa.select(*columns).where(*base, _events.c.key.is_(None), _events.c.op == "clear")
    order = _events.c.position.desc() if limit is not None else _events.c.position
    rows = [*conn.execute(own.order_by(order).limit(limit)).all()]
    rows += conn.execute(clears.order_by(order).limit(limit)).all()
    rows.sort(key=lambda r: r.position, reverse=limit is not None)
    return rows if limit is None else rows[:limit]


def _plotted(text: str | None) -> tuple[str, float | None]:
    """("number" | "time" | "other", the value on the chart's y axis) of a JSON text."""
    if text is None:
        return "none", None
    first = text[0]
    if first == "-" or first.isdigit():
        number = float(text)
        return ("number", number) if math.isfinite(number) else ("other", None)
    if first == '"' and 10 <= len(text) <= 40:
        try:
            moment = datetime.fromisoformat(orjson.loads(text))
        except ValueError:
            return "other", None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return "time", moment.timestamp() * 1000
    return "other", None


def key_timeline(store: Store, asset_id: int, key: str, buckets: int = 600) -> Timeline:
    """The key's whole history in at most `buckets` equal time buckets (empty ones left out)."""
    buckets = max(1, min(buckets, MAX_BUCKETS))

    def read(conn: Connection) -> list[tuple[Any, ...]]:
        floor = _asset_id_and_floor(conn, asset_id)
        return [tuple(r) for r in _key_rows(conn, _TIMELINE_COLUMNS, asset_id, key, floor)]

    rows = store._db.run(read)
    # (position, epoch seconds, op, JSON text, plotted y); a clear counts only where it removed the key.
    changes: list[tuple[int, float, str, str | None, float | None]] = []
    kinds: set[str] = set()
    present = False
    for position, recorded_at, op, text in rows:
        if op == "clear":
            if present:
                present = False
                changes.append((position, recorded_at.timestamp(), op, None, None))
            continue
        kind, y = _plotted(text)
        present = op == "set"
        if present:
            kinds.add(kind)
        changes.append((position, recorded_at.timestamp(), op, text, y))
    kind = kinds.pop() if len(kinds) == 1 else ("other" if kinds else "number")
    if not changes:
        return Timeline(key, 0, kind, None, None, [])
    plotted = kind != "other"
    first, last = changes[0][1], changes[-1][1]
    width = (last - first) / buckets or 1.0
    groups: list[tuple[int, int, int, float | None, float | None]] = []  # index, count, last i, low, high
    index = -1
    count = 0
    low = high = None
    for i, (_, moment, _, _, y) in enumerate(changes):
        at = min(buckets - 1, int((moment - first) / width))
        if at != index:
            if count:
                groups.append((index, count, i - 1, low, high))
            index, count, low, high = at, 0, None, None
        count += 1
        if plotted and y is not None:
            low = y if low is None or y < low else low
            high = y if high is None or y > high else high
    groups.append((index, count, len(changes) - 1, low, high))
    writers = _writers(store, [changes[g[2]][0] for g in groups])
    result = []
    for index, count, i, low, high in groups:
        position, moment, op, text, _ = changes[i]
        start = first + index * width
        result.append(
            Bucket(
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(min(start + width, last), UTC),
                count,
                low,
                high,
                Point(
                    position,
                    datetime.fromtimestamp(moment, UTC),
                    op,
                    None if text is None else orjson.loads(text),
                    writers[position],
                ),
            )
        )
    return Timeline(
        key, len(changes), kind, datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC), result
    )


def _writers(store: Store, positions: list[int]) -> dict[int, Writer]:
    """The writers of the events at these positions."""
    columns = [_events.c.position, *(c for c in _events.c if c.name.startswith("writer_"))]

    def read(conn: Connection) -> dict[int, Writer]:
        found: dict[int, Writer] = {}
        for start in range(0, len(positions), 500):
            query = sa.select(*columns).where(_events.c.position.in_(positions[start : start + 500]))
            found.update((r.position, writer_from_row(r._mapping, "writer_")) for r in conn.execute(query))
        return found

    return store._db.run(read)


def key_changes(
    store: Store, asset_id: int, key: str, *, before: int | None = None, limit: int = 50
) -> list[Change]:
    """The key's changes (sets, deletes and the clears that removed it) with positions below `before`,
    newest first, at most `limit`."""

    def read(conn: Connection) -> list[Change]:
        floor = _asset_id_and_floor(conn, asset_id)
        found: list[Change] = []
        cursor = before
        # Clears that removed nothing (the key was absent) are skipped, so read a little more than asked.
        while len(found) < limit:
            rows = _key_rows(conn, [_events], asset_id, key, floor, before=cursor, limit=limit + 1)
            if not rows:
                break
            for row in rows:
                change = change_from_row(row)
                removed = isinstance(change.previous, dict) and key in change.previous
                if change.op.value == "clear" and not removed:
                    continue
                found.append(change)
            cursor = rows[-1].position
            if len(rows) <= limit:
                break
        return found[:limit]

    return store._db.run(read)
