"""Reading the log back: one asset's changes (the audit) and the global feed."""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import islice
from operator import attrgetter
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from eventstore import codec, schema
from eventstore.assets import Asset
from eventstore.compaction import CompactionMark, compacted_error, latest_compaction
from eventstore.events import Change, Event, NewEvent, Op
from eventstore.ordering import Ordering
from eventstore.writers import writer_from_row
from projections import versions

_events = schema.events
_assets = schema.assets

_PAGE = 500


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
        writer=writer_from_row(row._mapping, "writer_"),
    )


_appended = sa.select(_events).where(
    _events.c.asset_id == sa.bindparam("asset_id"),
    _events.c.version >= sa.bindparam("first"),
    _events.c.version <= sa.bindparam("last"),
)


def appended(conn: Connection, events: Sequence[NewEvent]) -> list[Change]:
    """The `Change`s of events one asset's transaction has just appended (read in that transaction)."""
    if not events:
        return []
    return appended_range(conn, events[0].asset_id, events[0].version, events[-1].version)


def appended_range(conn: Connection, asset_id: int, first: int, last: int) -> list[Change]:
    """The `Change`s of one asset's versions `first` to `last` (those a transaction has just appended)."""
    params = {"asset_id": asset_id, "first": first, "last": last}
    return [change_from_row(row) for row in conn.execute(_appended.order_by(_events.c.version), params)]


def history(
    conn: Connection,
    asset: Asset,
    asset_id: int,
    key: str | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
) -> list[Change]:
    """The asset's changes in position order (or newest first); with `key`, that key's sets and deletes
    plus every clear that removed it. `since` is inclusive, `until` exclusive; `offset` skips the first
    N (streamed past, never held in memory), `limit` keeps the next N.

    Reads only through indexes, in their order, and only as far as `limit` needs: within a stream
    recorded_at never decreases with version (nor version with position), so the time bounds become
    version and position bounds (`_Timeline`, through projections.versions). Without a key the stream is
    read through the (asset_id, version) key; with one, the key's own events and the asset's clears are
    two ordered reads of the (asset_id, key, position) index (clears have key NULL), merged by position.
    """
    if limit is not None and limit <= 0:
        return []
    compaction, bounds = _range(conn, asset, asset_id, since, until)
    if bounds is None:
        return []
    low, high = bounds
    # islice takes no index beyond sys.maxsize; no page reaches that far anyway.
    stop = None if limit is None else min(offset + limit, sys.maxsize)
    page = _PAGE if stop is None else min(_PAGE, stop)
    stream = _events.c.asset_id == asset_id
    if key is None:
        if compaction is not None:
            stream = sa.and_(stream, _events.c.version > compaction.last_version)
        rows = _paged(
            conn, _within(stream, _events.c.version, low, high), _events.c.version, newest_first, page
        )
        return [change_from_row(row) for row in islice(rows, offset, stop)]
    if compaction is not None:
        stream = sa.and_(stream, _events.c.position > compaction.position)
    own = _within(sa.and_(stream, _events.c.key == key), _events.c.position, low, high)
    clears = _within(
        sa.and_(stream, _events.c.key.is_(None), _events.c.op == Op.CLEAR.value),
        _events.c.position,
        low,
        high,
    )
    merged = heapq.merge(
        _paged(conn, own, _events.c.position, newest_first, page),
        _paged(conn, clears, _events.c.position, newest_first, page),
        key=attrgetter("position"),
        reverse=newest_first,
    )
    changes = (change_from_row(row) for row in merged)
    # A clear counts only if it removed this key.
    relevant = (c for c in changes if c.op is not Op.CLEAR or key in c.previous)  # type: ignore[operator]
    return list(islice(relevant, offset, stop))


def count(
    conn: Connection,
    asset: Asset,
    asset_id: int,
    key: str | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """How many changes `history` would return without `limit` and `offset`, counted in SQL (with a key,
    the clears are read one by one, their `previous` only, to see whether they removed it)."""
    compaction, bounds = _range(conn, asset, asset_id, since, until)
    if bounds is None:
        return 0
    low, high = bounds
    stream = _events.c.asset_id == asset_id
    if key is None:
        if compaction is not None:
            stream = sa.and_(stream, _events.c.version > compaction.last_version)
        query = _within(stream, _events.c.version, low, high)
        return int(
            conn.execute(query.with_only_columns(sa.func.count(), maintain_column_froms=True)).scalar_one()
        )
    if compaction is not None:
        stream = sa.and_(stream, _events.c.position > compaction.position)
    own = _within(sa.and_(stream, _events.c.key == key), _events.c.position, low, high)
    total = int(conn.execute(own.with_only_columns(sa.func.count(), maintain_column_froms=True)).scalar_one())
    clears = _within(
        sa.and_(stream, _events.c.key.is_(None), _events.c.op == Op.CLEAR.value),
        _events.c.position,
        low,
        high,
    ).with_only_columns(_events.c.previous)
    for (previous,) in conn.execute(clears):
        if previous is not None and key in codec.decode(previous):  # type: ignore[operator]
            total += 1
    return total


def _range(
    conn: Connection, asset: Asset, asset_id: int, since: datetime | None, until: datetime | None
) -> tuple[CompactionMark | None, tuple[_Bound | None, _Bound | None] | None]:
    """The asset's latest compaction, and the bounds (first event, first event past the end) of `since`
    and `until`: None when no event is at or after `since`. CompactedError if `since` is compacted."""
    # Events at or below the latest compaction's last version are dead even while compaction is still
    # deleting them in batches (or after it was interrupted): history shows only surviving events.
    # Every dead event was appended before the compaction, so `position <=` its position; filter on the
    # column the chosen index is ordered by (a version bound would steer SQLite off the key index).
    compaction = latest_compaction(conn, asset_id)
    if compaction is not None and since is not None and since <= compaction.compacted_at:
        # A silently shortened audit would mislead: the caller asked for a range the log no longer holds.
        raise compacted_error(asset, compaction, f"since {since.isoformat()}")
    low = high = None
    if since is not None or until is not None:
        timeline = _Timeline(conn, asset_id, base=0 if compaction is None else compaction.last_version)
        if since is not None:
            low = timeline.first_event_at_or_after(since)
            if low is None:
                return compaction, None
        if until is not None:
            high = timeline.first_event_at_or_after(until)
    return compaction, (low, high)


_head_version = sa.select(_assets.c.version).where(_assets.c.id == sa.bindparam("asset_id"))


class _Bound(NamedTuple):
    """One event of a stream, as a bound for reading it by version or by position."""

    version: int
    position: int


class _Timeline:
    """The surviving versions of one stream (after `base`, up to its head), for turning times into bounds."""

    def __init__(self, conn: Connection, asset_id: int, base: int) -> None:
        self._conn, self._asset_id, self._base = conn, asset_id, base
        self._head = int(conn.execute(_head_version, {"asset_id": asset_id}).scalar_one())

    def first_event_at_or_after(self, at: datetime) -> _Bound | None:
        """The stream's first surviving event recorded at or after `at`, or None."""
        before = versions.last_version_at_or_before(
            self._conn,
            self._asset_id,
            _events.c.recorded_at,
            at,
            base=self._base,
            head=self._head,
            inclusive=False,
        )
        if before >= self._head:
            return None
        position = versions.position_of(self._conn, self._asset_id, before + 1)
        return None if position is None else _Bound(before + 1, position)


def _within(
    condition: sa.ColumnElement[bool], column: sa.Column[Any], low: _Bound | None, high: _Bound | None
) -> sa.Select[Any]:
    """Events matching `condition` from event `low` (inclusive) to event `high` (exclusive), bounded on
    `column` (version or position: both grow together within a stream)."""
    query = sa.select(_events).where(condition)
    if low is not None:
        query = query.where(column >= getattr(low, column.name))
    if high is not None:
        query = query.where(column < getattr(high, column.name))
    return query


def _paged(
    conn: Connection, query: sa.Select[Any], column: sa.Column[Any], newest_first: bool, page: int
) -> Iterator[Row[Any]]:
    """Rows of `query` in `column` order, fetched a page at a time (keyset paging on `column`)."""
    order = column.desc() if newest_first else column
    last: Any = None
    while True:
        query_page = query
        if last is not None:
            query_page = query_page.where(column < last if newest_first else column > last)
        rows = conn.execute(query_page.order_by(order).limit(page)).all()
        yield from rows
        if len(rows) < page:
            return
        last = rows[-1]._mapping[column.name]


def feed(conn: Connection, ordering: Ordering, after: int, limit: int) -> list[Event]:
    """Events with position > `after`, in position order, at most `limit`: only those no event committed
    later can come before (`Ordering.read_settled`)."""
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
            writer=writer_from_row(row._mapping, "writer_"),
            asset=Asset(row.asset_name, row.asset_uri),
        )
        for row in ordering.read_settled(conn, query, after)
    ]
