"""Rebuild and verify: recompute the inline projections (the current view and the snapshots) from the log.

Both walk the log the same way, in bounded memory and without stopping writers for long:

- Assets are taken in id order, in groups of up to `BATCH_EVENTS` events (and `BATCH_ASSETS` assets).
  A group is finished in one transaction that holds the stream lock of each of its assets
  (`EventLog.lock_stream`, the lock every writer of that asset takes first), streams their events
  (`eventstore.events.fold`) and then rewrites (rebuild) or compares (verify) their projections. Writers
  of those assets wait for that one transaction, writers of other assets do not (on SQLite every writer
  waits for it, as for any write).
- An asset with more events than a group holds is first caught up without its lock, `PAGE_EVENTS` events
  per read transaction: committed events never change, so that fold stays right whatever writers do
  meanwhile, and only the events appended since are folded under the lock. (Compaction is the one thing
  that removes events; the locked step sees that the stream's compacted version moved and streams the
  surviving stream again.)

Rebuild replaces the group's view rows with the stream, and its snapshots with fresh ones at every multiple
of `SNAPSHOT_INTERVAL`; a large asset's snapshots are written page by page as the catch-up passes them.
Verify reports every (asset, key) where the view differs from the stream, and every snapshot that differs
from the fold at its version (see `Drift`). Memory: one page of events plus the state of the assets being
folded, never the whole log.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, Row

from eventstore import codec, schema
from eventstore.assets import Asset
from eventstore.codec import JSON
from eventstore.dialects import Backend
from eventstore.events import Op, fold
from eventstore.log import EventLog
from eventstore.writers import WRITER_FIELDS
from projections import snapshots as snapshot_store
from projections.current_state import CurrentStateView

T = TypeVar("T")

PAGE_EVENTS = 20_000
"""Events read per query while catching up a large asset without its lock."""

BATCH_EVENTS = 20_000
"""Events folded per locked transaction: assets are grouped up to this many (a larger one goes alone)."""

BATCH_ASSETS = 500
"""Assets per locked transaction at most, however few events they have."""

_ASSET_PAGE = 1000
_ROWS_PER_STATEMENT = 500

_events = schema.events
_assets = schema.assets
_view = schema.state
_snapshots = schema.snapshots
_compactions = schema.compactions

_OPS = {op.value: op for op in Op}
_event_columns = (_events.c.asset_id, _events.c.version, _events.c.op, _events.c.key, _events.c.value)
# A page of one stream: a seek on the (asset_id, version) key, then a range scan.
_stream_page = (
    sa.select(*_event_columns)
    .where(_events.c.asset_id == sa.bindparam("asset_id"), _events.c.version > sa.bindparam("after"))
    .order_by(_events.c.version)
    .limit(sa.bindparam("limit"))
)
# Every event of consecutive assets, one range scan of the same key (a fold skips what it already has).
_group_events = (
    sa.select(*_event_columns)
    .where(_events.c.asset_id >= sa.bindparam("first_id"), _events.c.asset_id <= sa.bindparam("last_id"))
    .order_by(_events.c.asset_id, _events.c.version)
)
# The events that wrote the values of a rebuilt view: their time and writer go into the view rows.
_setting_events = sa.select(
    _events.c.version, _events.c.recorded_at, *(_events.c[f"writer_{name}"] for name in WRITER_FIELDS)
).where(
    _events.c.asset_id == sa.bindparam("asset_id"),
    _events.c.version.in_(sa.bindparam("versions", expanding=True)),
)

ProgressCallback = Callable[[int], object]
"""Receives the running total of events folded."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What `rebuild_projections` did: `events` folded, `assets` that had events, `keys` in the rebuilt
    view, and how many `seconds` it took."""

    events: int
    assets: int
    keys: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Drift:
    """One place where a projection disagrees with the log, as `verify_projections` reports it.

    In the current view (`snapshot_version` None): `key` of `asset` should hold `expected` (the fold of the
    log, None if the key should be absent) but holds `actual` (None if absent).

    In a snapshot (`snapshot_version` = the stream version it claims to describe): `key` differs between
    the snapshot and the fold of the log at that version, as for the view. A snapshot that cannot be read,
    or that claims a version the stream does not have, is one Drift with `key` None, `expected` the whole
    folded state (None for a version the stream does not have) and `actual` the snapshot's state (its raw
    text if unreadable). `rebuild_projections` repairs every kind of drift.
    """

    asset: Asset
    key: str | None
    expected: JSON
    actual: JSON
    snapshot_version: int | None = None

    def __str__(self) -> str:
        where = "view" if self.snapshot_version is None else f"snapshot at version {self.snapshot_version}"
        what = "whole state" if self.key is None else f"key {self.key!r}"
        return f"{self.asset.name} ({where}), {what}: expected {self.expected!r}, found {self.actual!r}"


class Transactions(Protocol):
    """How rebuild runs its units of work: `eventstore.database.Database` fits."""

    @property
    def backend(self) -> Backend: ...

    @property
    def dialect(self) -> Dialect: ...

    def run(self, work: Callable[[Connection], T], *, write: bool = False) -> T: ...


def rebuild_projections(
    db: Transactions, log: EventLog, progress: ProgressCallback | None = None
) -> RebuildReport:
    """Recompute the current view and the snapshots of every asset from the log (see the module doc)."""
    started = time.perf_counter()
    rebuild = _Rebuild(db, log, progress)
    rebuild.run()
    rebuild.report_if_silent()
    return RebuildReport(rebuild.events, rebuild.assets, rebuild.keys, time.perf_counter() - started)


ReadView = Callable[[Connection, list[int]], Mapping[int, Mapping[str, str]]]
"""Reads the current view's rows of some assets: {asset id: {key: JSON text}}."""


def verify_projections(db: Transactions, log: EventLog, read_view: ReadView | None = None) -> list[Drift]:
    """Every drift of the current view and the snapshots from the log; empty when they agree. The view
    is es_state unless `read_view` reads another (a host's table: eventstore.hosts)."""
    verify = _Verify(db, log, read_view or _read_view)
    verify.run()
    return verify.drifts


# --- One asset's fold --------------------------------------------------------------------------------

EventRow = Row[int, int, str, str | None, str | None]  # asset_id, version, op, key, value
OnVersion = Callable[["_StreamFold", int], None]


@dataclass(slots=True)
class _StreamFold:
    """The fold of one asset's stream so far: JSON texts by key, and the version that set each key."""

    asset_id: int
    identity_hash: str
    asset: Asset
    base: int  # the last compacted version: the stream starts after it
    listed_head: int  # the stream's head when the asset was listed (to size the work)
    version: int = -1  # the last version folded
    state: dict[str, str] = field(default_factory=dict)
    set_at: dict[str, int] = field(default_factory=dict)
    events: int = 0
    caught_up: bool = False  # part of the stream was folded without the lock
    drifts: list[Drift] = field(default_factory=list)  # what verify found, kept with the fold it came from

    def __post_init__(self) -> None:
        if self.version < 0:
            self.version = self.base

    def copy(self) -> _StreamFold:
        """An independent copy: a transaction that may run twice (deadlock retry) folds a copy."""
        return dataclasses.replace(
            self, state=dict(self.state), set_at=dict(self.set_at), drifts=list(self.drifts)
        )

    def restart(self, base: int) -> None:
        """Compaction moved the stream's start: fold it again from the empty state."""
        self.base = self.version = base
        self.state.clear()
        self.set_at.clear()
        self.events = 0
        self.caught_up = False
        self.drifts.clear()

    def fold_rows(self, rows: Iterable[EventRow], stops: Container[int], on_stop: OnVersion) -> int:
        """Fold the rows of this asset after the last folded version, in version order; call
        `on_stop(self, version)` right after each version in `stops`. Returns the events folded."""
        state, set_at, last, folded = self.state, self.set_at, self.version, 0
        for _asset_id, version, op_name, key, value in rows:
            if version <= last:
                continue
            op = _OPS[op_name]
            fold(state, op, key, value)
            # Which event wrote each key's value: the view row's version, time and writer come from it.
            if op is Op.SET:
                set_at[key] = version  # type: ignore[index]
            elif op is Op.DELETE:
                set_at.pop(key, None)  # type: ignore[arg-type]
            elif op is Op.CLEAR:
                set_at.clear()
            last = version
            folded += 1
            if version in stops:
                self.version = last
                on_stop(self, version)
        self.version = last
        self.events += folded
        return folded


# --- The walk both share -----------------------------------------------------------------------------


class _Walk(abc.ABC):
    """Visits every asset's stream: catch-up pages for large ones, then locked groups."""

    def __init__(self, db: Transactions, log: EventLog) -> None:
        self.db = db
        self.log = log
        self.interval = snapshot_store.SNAPSHOT_INTERVAL

    def run(self) -> None:
        for group in self._groups():
            if len(group) == 1 and group[0].listed_head - group[0].base > BATCH_EVENTS:
                self._catch_up(group[0])
            self.finished(self.db.run(functools.partial(self._finish_locked, group=group), write=True))

    # --- what rebuild and verify do differently -------------------------------------------------

    @abc.abstractmethod
    def page_folded(self, stream: _StreamFold, rows: Sequence[EventRow]) -> None:
        """Fold one catch-up page of a large asset (read without its lock) into `stream`."""

    @abc.abstractmethod
    def finish(self, conn: Connection, streams: list[_StreamFold], heads: dict[int, int]) -> None:
        """With the group's streams locked: fold the rest of each stream and rewrite or compare."""

    def finished(self, streams: list[_StreamFold]) -> None:  # noqa: B027 (a hook; verify needs none)
        """After the group's transaction committed."""

    # --- shared steps ---------------------------------------------------------------------------

    def _groups(self) -> Iterator[list[_StreamFold]]:
        """The assets in id order, grouped by estimated events; a large asset alone."""
        after, group, size = 0, list[_StreamFold](), 0
        while True:
            listed = self.db.run(functools.partial(_list_assets, after=after))
            if not listed:
                break
            after = listed[-1].asset_id
            for stream in listed:
                events = stream.listed_head - stream.base
                if group and (size + events > BATCH_EVENTS or len(group) >= BATCH_ASSETS):
                    yield group
                    group, size = [], 0
                group.append(stream)
                size += events
        if group:
            yield group

    def _catch_up(self, stream: _StreamFold) -> None:
        """Fold a large stream up to the head it had when listed, a page per read transaction."""
        while stream.version < stream.listed_head:
            rows = self.db.run(lambda conn: _read_stream(conn, stream.asset_id, stream.version, PAGE_EVENTS))
            if not rows:
                break
            self.page_folded(stream, rows)
            stream.caught_up = True

    def _finish_locked(self, conn: Connection, group: list[_StreamFold]) -> list[_StreamFold]:
        """Lock the group's streams, bring each fold to the stream's head, then `finish`."""
        streams = [stream.copy() for stream in group]
        heads: dict[int, int] = {}
        for stream in streams:
            locked = self.log.lock_stream(conn, stream.identity_hash, active_only=False)
            heads[stream.asset_id] = locked.version if locked else stream.listed_head
        bases = _compacted_versions(conn, [stream.asset_id for stream in streams])
        for stream in streams:
            if bases.get(stream.asset_id, 0) != stream.base:
                stream.restart(bases.get(stream.asset_id, 0))
        self.finish(conn, streams, heads)
        return streams

    @staticmethod
    def read_tail(
        conn: Connection, streams: list[_StreamFold]
    ) -> Iterator[tuple[_StreamFold, Sequence[EventRow]]]:
        """The events of the group's streams after what each fold has: one stream a page at a time,
        several streams asset by asset."""
        if len(streams) == 1:
            stream, after = streams[0], streams[0].version
            while rows := _read_stream(conn, stream.asset_id, after, PAGE_EVENTS):
                yield stream, rows
                after = rows[-1][1]
            return
        by_id = {stream.asset_id: stream for stream in streams}
        rows = conn.execute(
            _group_events, {"first_id": streams[0].asset_id, "last_id": streams[-1].asset_id}
        ).all()
        for asset_id, asset_rows in groupby(rows, key=itemgetter(0)):
            if asset_id in by_id:
                yield by_id[asset_id], list(asset_rows)


# --- Rebuild -----------------------------------------------------------------------------------------


class _Rebuild(_Walk):
    """Rewrites the view rows and snapshots of every asset from the fold of its stream."""

    def __init__(self, db: Transactions, log: EventLog, progress: ProgressCallback | None) -> None:
        super().__init__(db, log)
        self.progress = progress
        self.snapshots = snapshot_store.SnapshotProjection(
            CurrentStateView(db.backend, db.dialect), db.backend, db.dialect
        )
        self.events = self.assets = self.keys = 0
        self._in_flight = 0  # events of a large asset caught up but not yet committed with its view
        self._reported: int | None = None

    def report_progress(self) -> None:
        """Tell `progress` the running total (never less than told before: a stream compacted while it
        was being caught up is folded again, and its events are not counted twice)."""
        total = max(self.events + self._in_flight, self._reported or 0)
        if self.progress is not None:
            self.progress(total)
        self._reported = total

    def report_if_silent(self) -> None:
        """An empty store has no batch: report 0 once."""
        if self._reported is None:
            self.report_progress()

    def _multiples(self, after: int, upto: int) -> range:
        first = (after // self.interval + 1) * self.interval
        return range(first, upto + 1, self.interval)

    def page_folded(self, stream: _StreamFold, rows: Sequence[EventRow]) -> None:
        pending: list[dict[str, Any]] = []
        stream.fold_rows(rows, self._multiples(stream.version, rows[-1][1]), _snapshot_into(pending))
        if pending:
            self.db.run(lambda conn: self.snapshots.write(conn, pending), write=True)
        self._in_flight = stream.events
        self.report_progress()

    def finish(self, conn: Connection, streams: list[_StreamFold], heads: dict[int, int]) -> None:
        pending: list[dict[str, Any]] = []
        for stream, rows in self.read_tail(conn, streams):
            stream.fold_rows(
                rows, self._multiples(stream.version, heads[stream.asset_id]), _snapshot_into(pending)
            )
        ids = [stream.asset_id for stream in streams]
        conn.execute(_view.delete().where(_view.c.asset_id.in_(ids)))
        view_rows = _view_rows(conn, streams)
        for start in range(0, len(view_rows), _ROWS_PER_STATEMENT):
            conn.execute(_view.insert(), view_rows[start : start + _ROWS_PER_STATEMENT])
        fresh = [stream.asset_id for stream in streams if not stream.caught_up]
        if fresh:
            conn.execute(_snapshots.delete().where(_snapshots.c.asset_id.in_(fresh)))
        for stream in streams:
            if stream.caught_up:  # keep the snapshots its catch-up wrote, drop every other one
                conn.execute(
                    _snapshots.delete().where(
                        _snapshots.c.asset_id == stream.asset_id,
                        sa.or_(
                            _snapshots.c.version <= stream.base,
                            _snapshots.c.version > stream.version,
                            _snapshots.c.version % self.interval != 0,
                        ),
                    )
                )
        self.snapshots.write(conn, pending)

    def finished(self, streams: list[_StreamFold]) -> None:
        self.events += sum(stream.events for stream in streams)
        self.assets += sum(1 for stream in streams if stream.events)
        self.keys += sum(len(stream.state) for stream in streams)
        self._in_flight = 0
        self.report_progress()


def _snapshot_into(pending: list[dict[str, Any]]) -> OnVersion:
    def take(stream: _StreamFold, version: int) -> None:
        pending.append(
            {
                "asset_id": stream.asset_id,
                "version": version,
                "state": snapshot_store.encode_state(stream.state),
            }
        )

    return take


def _view_rows(conn: Connection, streams: list[_StreamFold]) -> list[dict[str, Any]]:
    """The view rows of the folded states, with the version, time and writer of the event that set each."""
    rows = []
    for stream in streams:
        versions = sorted({stream.set_at[key] for key in stream.state})
        written: dict[int, Any] = {}
        for start in range(0, len(versions), _ROWS_PER_STATEMENT):
            chunk = versions[start : start + _ROWS_PER_STATEMENT]
            for row in conn.execute(_setting_events, {"asset_id": stream.asset_id, "versions": chunk}):
                written[row.version] = row
        for key, text in stream.state.items():
            event = written[stream.set_at[key]]
            rows.append(
                {
                    "asset_id": stream.asset_id,
                    "key": key,
                    "value": text,
                    "version": event.version,
                    "updated_at": event.recorded_at,
                    **{f"updated_by_{name}": event._mapping[f"writer_{name}"] for name in WRITER_FIELDS},
                }
            )
    return rows


# --- Verify ------------------------------------------------------------------------------------------


class _Verify(_Walk):
    """Compares the view rows and snapshots of every asset with the fold of its stream."""

    def __init__(self, db: Transactions, log: EventLog, read_view: ReadView) -> None:
        super().__init__(db, log)
        self.drifts: list[Drift] = []
        self.read_view = read_view

    def page_folded(self, stream: _StreamFold, rows: Sequence[EventRow]) -> None:
        stored = self.db.run(
            lambda conn: _read_snapshots(conn, [stream.asset_id], after=stream.version, upto=rows[-1][1])
        ).get(stream.asset_id, {})
        stream.fold_rows(rows, stored, self._compare_snapshot(stored))

    def finish(self, conn: Connection, streams: list[_StreamFold], heads: dict[int, int]) -> None:
        ids = [stream.asset_id for stream in streams]
        stored = _read_snapshots(conn, ids, after=min(stream.version for stream in streams), upto=None)
        for stream, rows in self.read_tail(conn, streams):
            own = stored.get(stream.asset_id, {})
            stream.fold_rows(rows, own, self._compare_snapshot(own))
        view = self.read_view(conn, ids)
        for stream in streams:
            # Per asset: the view's drifts by key, then the snapshots' by version (found while folding).
            actual = view.get(stream.asset_id, {})
            stream.drifts[:0] = [
                Drift(stream.asset, key, _decoded(stream.state.get(key)), _decoded(actual.get(key)))
                for key in sorted(stream.state.keys() | actual.keys())
                if stream.state.get(key) != actual.get(key)
            ]
            stream.drifts += [
                Drift(stream.asset, None, None, _snapshot_value(text), version)
                for version, text in sorted(stored.get(stream.asset_id, {}).items())
                if version > stream.version  # a snapshot of a version the stream does not have
            ]

    def finished(self, streams: list[_StreamFold]) -> None:
        """Report the group's drifts only once its transaction is over (a retried one folds again)."""
        for stream in streams:
            self.drifts += stream.drifts

    def _compare_snapshot(self, stored: dict[int, str]) -> OnVersion:
        """Compare the snapshot stored at a version (texts by version) with the fold at that version."""

        def compare(stream: _StreamFold, version: int) -> None:
            text = stored[version]
            state = snapshot_store.decode_state(text)
            if state is None:
                expected = {key: _decoded(value) for key, value in sorted(stream.state.items())}
                stream.drifts.append(Drift(stream.asset, None, expected, text, version))
                return
            for key in sorted(stream.state.keys() | state.keys()):
                if stream.state.get(key) != state.get(key):
                    stream.drifts.append(
                        Drift(
                            stream.asset,
                            key,
                            _decoded(stream.state.get(key)),
                            _decoded(state.get(key)),
                            version,
                        )
                    )

        return compare


def _decoded(text: str | None) -> JSON:
    """A stored JSON text as a value; a text that is not JSON (a corrupted row) as the text itself."""
    if text is None:
        return None
    try:
        return codec.decode(text)
    except ValueError:
        return text


def _snapshot_value(text: str) -> JSON:
    state = snapshot_store.decode_state(text)
    if state is None:
        return text
    return {key: _decoded(value) for key, value in state.items()}


# --- Queries -----------------------------------------------------------------------------------------


def _list_assets(conn: Connection, after: int) -> list[_StreamFold]:
    """The next assets by id after `after`, each with its head and last compacted version."""
    compacted = (
        sa.select(sa.func.coalesce(sa.func.max(_compactions.c.last_version), 0))
        .where(_compactions.c.asset_id == _assets.c.id)
        .scalar_subquery()
    )
    query = (
        sa.select(
            _assets.c.id,
            _assets.c.identity_hash,
            _assets.c.name,
            _assets.c.uri,
            _assets.c.version,
            compacted.label("base"),
        )
        .where(_assets.c.id > after)
        .order_by(_assets.c.id)
        .limit(_ASSET_PAGE)
    )
    return [
        _StreamFold(row.id, row.identity_hash, Asset(row.name, row.uri), int(row.base), row.version)
        for row in conn.execute(query)
    ]


def _compacted_versions(conn: Connection, asset_ids: list[int]) -> dict[int, int]:
    """The last compacted version of each of the assets that was ever compacted."""
    query = (
        sa.select(_compactions.c.asset_id, sa.func.max(_compactions.c.last_version))
        .where(_compactions.c.asset_id.in_(asset_ids))
        .group_by(_compactions.c.asset_id)
    )
    return {asset_id: int(version) for asset_id, version in conn.execute(query)}


def _read_stream(conn: Connection, asset_id: int, after: int, limit: int) -> Sequence[EventRow]:
    """Up to `limit` events of one stream after version `after`, in version order."""
    return conn.execute(_stream_page, {"asset_id": asset_id, "after": after, "limit": limit}).all()


def _read_snapshots(
    conn: Connection, asset_ids: list[int], *, after: int, upto: int | None
) -> dict[int, dict[int, str]]:
    """Snapshot texts of the assets with after < version (<= upto), by asset id, then by version."""
    query = sa.select(_snapshots.c.asset_id, _snapshots.c.version, _snapshots.c.state).where(
        _snapshots.c.asset_id.in_(asset_ids), _snapshots.c.version > after
    )
    if upto is not None:
        query = query.where(_snapshots.c.version <= upto)
    stored: dict[int, dict[int, str]] = {}
    for asset_id, version, text in conn.execute(query):
        stored.setdefault(asset_id, {})[version] = text
    return stored


def _read_view(conn: Connection, asset_ids: list[int]) -> dict[int, dict[str, str]]:
    query = sa.select(_view.c.asset_id, _view.c.key, _view.c.value).where(_view.c.asset_id.in_(asset_ids))
    view: dict[int, dict[str, str]] = {}
    for asset_id, key, value in conn.execute(query):
        view.setdefault(asset_id, {})[key] = value
    return view
