"""Reading the log back: one asset's changes (the audit) and the global feed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from eventstore import codec, schema
from eventstore.assets import Asset
from eventstore.events import Change, Event, Op
from eventstore.writers import Writer, WriterKind

_events = schema.events
_assets = schema.assets

_PAGE = 500


def writer_from_row(row: Row[Any], prefix: str = "writer_") -> Writer:
    mapping = row._mapping
    return Writer(
        WriterKind(mapping[f"{prefix}kind"]),
        mapping[f"{prefix}dag_id"],
        mapping[f"{prefix}run_id"],
        mapping[f"{prefix}task_id"],
        mapping[f"{prefix}map_index"],
        mapping[f"{prefix}try_number"],
    )


def _decoded(text: str | None) -> codec.JSON:
    return None if text is None else codec.decode(text)


def change_from_row(row: Row[Any]) -> Change:
    return Change(
        position=row.position,
        version=row.version,
        recorded_at=row.recorded_at,
        op=Op(row.op),
        key=row.key,
        value=_decoded(row.value),
        previous=_decoded(row.previous),
        writer=writer_from_row(row),
    )


def history(
    conn: Connection,
    asset_id: int,
    key: str | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[Change]:
    """The asset's changes in position order (or newest first); with `key`, that key's sets and deletes
    plus every clear that removed it. `since` is inclusive, `until` exclusive, `limit` keeps the first N."""
    query = sa.select(_events).where(_events.c.asset_id == asset_id)
    if since is not None:
        query = query.where(_events.c.recorded_at >= since)
    if until is not None:
        query = query.where(_events.c.recorded_at < until)
    if key is None:
        query = query.order_by(_events.c.position.desc() if newest_first else _events.c.position)
        if limit is not None:
            query = query.limit(limit)
        return [change_from_row(row) for row in conn.execute(query)]
    # The key's own events and the asset's clears, both read through the (asset_id, key, position) index;
    # a clear counts only if it removed this key.
    query = query.where(sa.or_(_events.c.key == key, _events.c.op == Op.CLEAR.value))
    changes: list[Change] = []
    for row in _paged(conn, query, newest_first):
        change = change_from_row(row)
        if change.op is Op.CLEAR and key not in change.previous:  # type: ignore[operator]
            continue
        changes.append(change)
        if limit is not None and len(changes) >= limit:
            break
    return changes


def _paged(conn: Connection, query: sa.Select[Any], newest_first: bool) -> Iterator[Row[Any]]:
    """Rows of `query` in position order, fetched a page at a time (keyset paging on position)."""
    order = _events.c.position.desc() if newest_first else _events.c.position
    last: int | None = None
    while True:
        page = query
        if last is not None:
            page = page.where(_events.c.position < last if newest_first else _events.c.position > last)
        rows = conn.execute(page.order_by(order).limit(_PAGE)).all()
        yield from rows
        if len(rows) < _PAGE:
            return
        last = rows[-1].position


def feed(conn: Connection, after: int, limit: int) -> list[Event]:
    """Events with position > `after`, in position order, at most `limit`."""
    query = (
        sa.select(_events, _assets.c.name.label("asset_name"), _assets.c.uri.label("asset_uri"))
        .join(_assets, _assets.c.id == _events.c.asset_id)
        .where(_events.c.position > after)
        .order_by(_events.c.position)
        .limit(limit)
    )
    return [
        Event(
            position=row.position,
            version=row.version,
            recorded_at=row.recorded_at,
            op=Op(row.op),
            key=row.key,
            value=_decoded(row.value),
            writer=writer_from_row(row),
            asset=Asset(row.asset_name, row.asset_uri),
        )
        for row in conn.execute(query)
    ]
