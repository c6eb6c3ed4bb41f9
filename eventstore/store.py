"""`open_store` and `Store`: the one place that wires the log, the projections and the database together."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from eventstore import codec, compaction, context, lifetime, schema, tasks
from eventstore import migrate as migrations
from eventstore.accessor import AssetState
from eventstore.assets import Asset, AssetInfo, identity_hash, text_hash
from eventstore.codec import JSON
from eventstore.compaction import CompactionRecord, CompactionReport
from eventstore.database import Database
from eventstore.errors import AssetNotActiveError, AssetNotFoundError, VersionConflictError
from eventstore.events import (
    MAX_POSITION,
    Change,
    Event,
    NewEvent,
    Op,
    PendingEvent,
    clear_events,
    set_events,
)
from eventstore.hosts import Host, installed_host, load_host
from eventstore.log import EventLog, InlineProjection, NothingToRecord
from eventstore.prepared import Connectable, Prepared
from eventstore.protocol import Decide, VersionedState
from eventstore.single_set import SetParts
from eventstore.tasks import Task
from eventstore.writers import WRITER_FIELDS, Writer, writer_from_row
from projections import history as history_reader
from projections import rebuild, replay
from projections.current_state import CurrentStateView
from projections.rebuild import Drift, RebuildReport
from projections.snapshots import SnapshotProjection

DEFAULT_URL = "sqlite:///eventstore.db"
"""Where `open_store()` and the shell go without a URL and without $EVENTSTORE_URL."""

T = TypeVar("T")

_assets = schema.assets
_state = schema.state
_is_active = schema.is_active


def _active_by(column: sa.Column[str]) -> sa.Select[Any]:
    """`Store.active_asset`: the name and uri of the active asset whose name (or uri) hash is bound."""
    active = schema.asset_active
    return (
        sa.select(_assets.c.name, _assets.c.uri)
        .join(active, active.c.asset_id == _assets.c.id)
        .where(column == sa.bindparam("text_hash"))
    )


# `Store.asset_info`: one asset by id.
_ASSET_INFO = sa.select(_assets.c.name, _assets.c.uri, _assets.c.version, _is_active.label("active")).where(
    _assets.c.id == sa.bindparam("asset_id")
)

# `Store.entry`: an asset's version and one key's view row, whether the key exists or not.
_ENTRY = (
    sa.select(
        _assets.c.version,
        _state.c.value,
        _state.c.updated_at,
        *(_state.c[f"updated_by_{field}"] for field in WRITER_FIELDS),
    )
    .select_from(
        _assets.outerjoin(
            _state, sa.and_(_state.c.asset_id == _assets.c.id, _state.c.key == sa.bindparam("key"))
        )
    )
    .where(_assets.c.id == sa.bindparam("asset_id"))
)


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One key of an asset's current state as the admin reads show it: its JSON text, when it was last
    written and by whom."""

    key: str
    value: str
    updated_at: datetime
    updated_by: Writer


@dataclass(frozen=True, slots=True)
class StateEntries:
    """A page of an asset's current state (`Store.entries`): the entries, how many there are in all,
    and the asset's version (the REST ETag)."""

    entries: list[StateEntry]
    total: int
    version: int


def store_url(url: str | URL | None = None) -> str | URL:
    """The URL a store opens: `url`, else $EVENTSTORE_URL, else DEFAULT_URL."""
    return url or os.environ.get("EVENTSTORE_URL") or DEFAULT_URL


def open_store(url: str | URL | None = None, *, migrate: bool = True) -> Store:
    """Open the store at `url` (default: $EVENTSTORE_URL, else SQLite file ./eventstore.db).

    Brings the schema to this version first unless `migrate=False`, in which case a missing, older or
    newer schema raises SchemaVersionError.
    """
    database = Database(store_url(url))
    try:
        if migrate:
            database.run_admin(migrations.upgrade)
        else:
            database.run(migrations.check)
        return Store(database, _host(database))
    except BaseException:
        database.dispose()
        raise


def _host(database: Database) -> Host | None:
    """The host application installed in this database (eventstore.hosts), ready for use; None if none."""
    name = database.run(installed_host)
    if name is None:
        return None
    factory = load_host(name)
    host: Host = factory(database)  # type: ignore[operator]
    if database.run(host.needs_refresh):
        database.run(host.refresh, write=True)
    return host


class Store:
    """An event-sourced key/value state store, one stream of events per asset.

    With a `host` (an application whose database this is, such as Airflow: eventstore.hosts), the
    host's table is the current-state view: reads of state read it, writes change it (its triggers
    append the events), and the host owns the assets' lifetime.
    """

    def __init__(self, database: Database, host: Host | None = None) -> None:
        self._db = database
        self._host = host
        self.max_value_bytes = codec.max_value_bytes()
        """Values larger than this (UTF-8 JSON bytes) are written with a warning: EVENTSTORE_MAX_VALUE_BYTES
        as it was when the store was opened (default 65535, 0 = no limit)."""
        backend, dialect = database.backend, database.dialect
        self._view = CurrentStateView(backend, dialect)
        # Snapshots copy the view's rows after it has applied the events, so they come after it.
        projections: list[InlineProjection] = [self._view, SnapshotProjection(self._view, backend, dialect)]
        self._log = EventLog(
            database.ordering,
            dialect,
            projections=projections,
            current_value=self._view.current_value if backend.claim_reads_current else None,
        )
        self._entry = Prepared(_ENTRY, dialect)
        self._asset_info = Prepared(_ASSET_INFO, dialect)
        self._active_by_name = Prepared(_active_by(schema.asset_active.c.name_hash), dialect)
        self._active_by_uri = Prepared(_active_by(schema.asset_active.c.uri_hash), dialect)
        # Where the database can: `set` in one statement, every projection taking part (single_set).
        parts = SetParts([p.single_set_part() for p in projections], self._view.current_value)
        self._single_set = None if host else backend.single_set(dialect, database.ordering, parts)

    @property
    def host(self) -> str | None:
        """The application whose database this is and whose table is the current-state view
        ("Airflow": eventstore.hosts), or None."""
        return None if self._host is None else self._host.name

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._db.url_for_people

    def close(self) -> None:
        self._db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.url}>"

    # --- assets and their lifetime -----------------------------------------------------------------

    def activate(self, asset: Asset, writer: Writer | None = None) -> None:
        """Register `asset` if new and make it active, appending an `activate` event (none if active)."""
        _check_asset(asset)
        if self._host is not None:
            raise self._host.refusal("activate")
        author = writer or Writer.api()
        self._record(lambda conn: lifetime.activate(conn, self._db.backend, self._log, asset, author))

    def deactivate(self, asset: Asset, writer: Writer | None = None) -> None:
        """Hide the asset's state (a `deactivate` event) until it is activated again or compacted."""
        _check_asset(asset)
        if self._host is not None:
            raise self._host.refusal("deactivate")
        author = writer or Writer.api()
        self._record(lambda conn: lifetime.deactivate(conn, self._log, asset, author))

    def is_active(self, asset: Asset) -> bool:
        """True if the asset is registered and active."""
        _check_asset(asset)
        query = schema.asset_id_by_identity(asset.identity_hash).where(_is_active)
        return self._db.read_in_autocommit(lambda conn: conn.execute(query).first() is not None)

    def assets(
        self,
        active: bool | None = None,
        *,
        name: str | None = None,
        uri: str | None = None,
        asset_id: int | None = None,
    ) -> list[AssetInfo]:
        """Every registered asset (or only the active or inactive ones), by id; `name`, `uri` and
        `asset_id` narrow the list to exact matches."""
        is_active = _is_active.label("active")
        query = sa.select(_assets.c.id, _assets.c.name, _assets.c.uri, _assets.c.version, is_active)
        if active is not None:
            query = query.where(_is_active if active else ~_is_active)
        # Names and uris are compared through their hashes in es_asset_active, or here by identity
        # hash where both are given; a lone name or uri is compared exactly in Python (MariaDB's
        # collations would ignore case and trailing spaces).
        if name is not None and uri is not None:
            query = query.where(_assets.c.identity_hash == identity_hash(name, uri))
        if asset_id is not None:
            query = query.where(_assets.c.id == asset_id)
        rows = self._db.run(lambda conn: conn.execute(query.order_by(_assets.c.id)).all())
        return [
            AssetInfo(r.id, r.name, r.uri, bool(r.active), r.version)
            for r in rows
            if (name is None or r.name == name) and (uri is None or r.uri == uri)
        ]

    def active_asset(self, *, name: str | None = None, uri: str | None = None) -> Asset | None:
        """The active asset with this name, or with this uri (give exactly one), or None. At most one
        can exist (es_asset_active's unique hashes); found through that index in one prepared statement."""
        if (name is None) == (uri is None):
            raise ValueError("Give exactly one of name= and uri=")
        query, text = (self._active_by_name, name) if name is not None else (self._active_by_uri, uri)
        assert text is not None
        try:
            wanted = text_hash(text)
        except UnicodeEncodeError:
            return None  # a lone surrogate: no asset's name or uri can hold one
        row = self._db.run_direct(lambda conn: query.first(conn, {"text_hash": wanted}))
        if row is None or (row[0] if name is not None else row[1]) != text:
            return None
        return Asset(row[0], row[1])

    def named_asset(self, name: str, uri: str | None = None) -> Asset:
        """The asset a shell NAME (and --uri) stands for: `Asset(name, uri)`, the uri defaulting to the
        name. With a host (Airflow), whose assets' uris differ from their names, a NAME without a uri is
        the active asset of that name, else the only inactive one (ValueError if several share it)."""
        if uri is not None or self._host is None:
            return Asset(name) if uri is None else Asset(name, uri)
        active = self.active_asset(name=name)
        if active is not None:
            return active
        known = self.assets(name=name)
        if len(known) > 1:
            uris = ", ".join(info.uri for info in known)
            raise ValueError(f"Several inactive assets are named {name!r} (uris {uris}): give its uri")
        return Asset(name, known[0].uri) if known else Asset(name)

    def asset_info(self, asset_id: int) -> AssetInfo:
        """The asset with this id (`AssetInfo.id`, the REST id), active or not; AssetNotFoundError if none.
        One prepared statement (every REST route on an asset id starts here)."""
        row = self._db.run_direct(lambda conn: self._asset_info.first(conn, {"asset_id": asset_id}))
        if row is None:
            raise AssetNotFoundError(f"Asset with id {asset_id} not found")
        name, uri, version, active = row
        return AssetInfo(asset_id, name, uri, bool(active), version)

    def ping(self) -> None:
        """Return if the database answers a trivial query; StoreUnavailableError otherwise."""
        self._db.read_in_autocommit(lambda conn: conn.execute(sa.text("SELECT 1")).scalar())

    # --- reading and writing state -----------------------------------------------------------------

    def asset(self, asset: Asset, writer: Writer | None = None) -> AssetState:
        """The accessor for one asset's state, writing as `writer` (default: Writer.api()). No I/O."""
        return AssetState(self, asset, writer or Writer.api())

    def task_context(
        self, inlets: Iterable[object] = (), outlets: Iterable[object] = (), writer: Writer | None = None
    ) -> dict[str, Any]:
        """A task context whose "asset_state_store" holds the concrete inlets and outlets. No I/O."""
        return context.task_context(self, inlets, outlets, writer)

    def run_task(
        self,
        fn: Task | Callable[..., Any],
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        try_number: int = 1,
    ) -> Any:
        """Run `fn(**context)` as Airflow would: activate its concrete inlets and outlets, build the
        context (asset_state_store, dag_id, run_id, task_id, map_index, try_number), call it and return its
        result (eventstore.tasks.run_task)."""
        return tasks.run_task(
            self,
            fn,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
        )

    # --- audit and replay --------------------------------------------------------------------------

    def history(
        self,
        asset: Asset,
        key: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Change]:
        """How the asset's state changed, oldest first: each change with its previous value and writer.

        With `key`: that key's sets and deletes, and every clear that removed it. `since` inclusive,
        `until` exclusive; `offset` skips the first N in the chosen order, `limit` keeps the next N.
        """
        if offset < 0:
            raise ValueError(f"offset must be 0 or more, not {offset}")

        def read(conn: Connection) -> list[Change]:
            asset_id = self._known_id(conn, asset)
            return history_reader.history(
                conn,
                asset,
                asset_id,
                key,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
                newest_first=newest_first,
            )

        return self._db.run(read)

    def count_history(
        self,
        asset: Asset,
        key: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many changes `history(asset, key, since=, until=)` returns, counted in the database."""

        def read(conn: Connection) -> int:
            asset_id = self._known_id(conn, asset)
            return history_reader.count(conn, asset, asset_id, key, since=since, until=until)

        return self._db.run(read)

    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        """The global feed: events with position > `after`, in position order.

        A reader that has seen position p never later finds a committed event at or below p.
        `after` and `limit` are whole numbers from 0 to 2**63 - 1 (ValueError otherwise).
        """
        for name, number in (("after", after), ("limit", limit)):
            if not 0 <= number <= MAX_POSITION:
                raise ValueError(f"{name} must be from 0 to {MAX_POSITION}, not {number}")
        return self._db.read_in_autocommit(
            lambda conn: history_reader.feed(conn, self._db.ordering, after, limit)
        )

    def state_as_of(
        self, asset: Asset, *, at: datetime | None = None, position: int | None = None
    ) -> dict[str, JSON]:
        """The asset's state right after its last event at or before `at` (inclusive) or `position`.

        Exactly one of them; `at` must be an aware datetime (else ValueError). `{}` before the asset's
        first event; a deactivated asset's hidden state is still its state. AssetNotFoundError for an
        unknown asset; CompactedError for a point at or before a compaction of the asset.
        """
        _check_asset(asset)
        replay.check_point(at, position)

        return self._db.run(lambda conn: replay.state_as_of(conn, asset, at=at, position=position))

    def rebuild_projections(self, progress: Callable[[int], object] | None = None) -> RebuildReport:
        """Recompute the current view and the snapshots from the log, asset by asset, in bounded memory.

        Safe while writers write: each asset is finished under its stream lock. `progress`, if given, is
        called with the running total of events folded, at least once per batch.
        """
        if self._host is not None:
            raise self._host.refusal("rebuild")
        return rebuild.rebuild_projections(self._db, self._log, progress)

    def verify_projections(self) -> list[Drift]:
        """Every place where the current view or a snapshot disagrees with the log; empty when none.
        With a host, the view is the host's table."""
        read_view = None if self._host is None else self._host.read_view
        return rebuild.verify_projections(self._db, self._log, read_view)

    # --- the accessor's interface (eventstore.protocol.StateStore) ---------------------------------

    def require_active(self, asset: Asset) -> None:
        """Return if the asset is active; raise AssetNotActiveError otherwise."""
        if not self.is_active(asset):
            raise self._not_active(asset)

    def read_value(self, asset: Asset, key: str) -> str | None:
        """The key's JSON text (None if absent), in one query that also checks the asset is active."""
        host = self._host
        if host is not None:
            active, text = self._db.read_in_autocommit(
                lambda conn: host.lookup(conn, asset.identity_hash, key)
            )
            if not active and self._refresh_host():  # an asset the host's triggers mirrored since
                return self.read_value(asset, key)
        else:
            active, text = self._db.run_direct(lambda conn: self._view.lookup(conn, asset.identity_hash, key))
        if not active:
            raise self._not_active(asset)
        return text

    def read_state(self, asset: Asset, keys: Sequence[str] | None = None) -> VersionedState:
        """The JSON texts of `keys` (all if None) and the asset's version, from one consistent read."""
        _check_asset(asset)

        def read(conn: Connection) -> VersionedState:
            row = conn.execute(
                sa.select(_assets.c.id, _assets.c.version).where(
                    _assets.c.identity_hash == asset.identity_hash, _is_active
                )
            ).first()
            if row is None:
                raise self._not_active(asset)
            return VersionedState(self._current(conn, row.id, keys), row.version)

        return self._db.run(read)

    def entries(
        self, asset_id: int, keys: Sequence[str] | None = None, *, limit: int | None = None, offset: int = 0
    ) -> StateEntries:
        """The view rows of the asset with this id, active or not (the REST admin reads), sorted by key:
        all of them or only `keys`, paged by `limit`/`offset`, with the count before paging and the
        asset's version, from one consistent read. AssetNotFoundError for an unknown id."""

        def read(conn: Connection) -> StateEntries:
            version = conn.execute(sa.select(_assets.c.version).where(_assets.c.id == asset_id)).scalar()
            if version is None:
                raise AssetNotFoundError(f"Asset with id {asset_id} not found")
            if self._host is not None:
                hosted, count = self._host.entries(conn, asset_id, keys, limit, offset)
                return StateEntries([StateEntry(*entry) for entry in hosted], count, version)
            where = [_state.c.asset_id == asset_id]
            if keys is not None:
                where.append(_state.c.key.in_(list(keys)))
            total = conn.execute(sa.select(sa.func.count()).select_from(_state).where(*where)).scalar_one()
            query = sa.select(_state).where(*where).order_by(_state.c.key).offset(offset).limit(limit)
            rows = conn.execute(query).all()
            found = [
                StateEntry(r.key, r.value, r.updated_at, writer_from_row(r._mapping, "updated_by_"))
                for r in rows
            ]
            return StateEntries(found, total, version)

        return self._db.run(read)

    def entry(self, asset_id: int, key: str) -> tuple[StateEntry | None, int]:
        """One key of the asset with this id, active or not (the REST admin read of a key), and the
        asset's version, in one prepared statement: (None, version) if the key is absent.
        AssetNotFoundError for an unknown id."""
        if self._host is not None:
            found = self.entries(asset_id, [key])
            return (found.entries[0] if found.entries else None), found.version
        row = self._db.run_direct(lambda conn: self._entry.first(conn, {"asset_id": asset_id, "key": key}))
        if row is None:
            raise AssetNotFoundError(f"Asset with id {asset_id} not found")
        version, value, updated_at, *writer = row
        if value is None:
            return None, version
        return StateEntry(key, value, updated_at, Writer(*writer)), version

    def set_value(self, asset: Asset, writer: Writer, key: str, text: str) -> None:
        """One `set` event: in one statement where the database can, else in the log's transaction."""
        fast = self._single_set
        if fast is not None:
            if fast.unprepared:
                self._db.run_direct(fast.prepare)
            recorded = self._db.run_direct_write(
                lambda conn: fast.try_set(conn, asset.identity_hash, key, text, writer)
            )
            if recorded:
                return
        self._change(asset, writer, [key], 1, lambda current: set_events({key: text}, current))

    def change(self, asset: Asset, writer: Writer, keys: Sequence[str] | None, decide: Decide) -> None:
        """Atomically: read the current texts of `keys` (all if None) under the asset's lock, let `decide`
        turn them into events, append them (nothing if it decides none). Holding the lock, `decide` runs
        once: concurrent changes of the asset wait, and none is lost."""
        # Every decision of the accessor is one event at most per key, or one clear.
        self._change(asset, writer, keys, 1 if keys is None else len(keys), decide)

    def write(
        self,
        asset: Asset,
        writer: Writer,
        *,
        sets: Mapping[str, str] | None = None,
        deletes: Sequence[str] = (),
        clear: bool = False,
        expected_version: int | None = None,
        inactive_ok: bool = False,
    ) -> int:
        """A decided change in one transaction: clear (if asked), then `sets`, then `deletes` of keys that
        exist; returns the asset's version afterwards. With `expected_version`, only if the asset's
        version is still that: VersionConflictError otherwise, and nothing is written (REST If-Match).
        With `inactive_ok` (REST admin delete and clear), an inactive asset's hidden state may be removed
        too; `sets` are then refused with AssetNotActiveError, as they are for an inactive asset."""
        if inactive_ok and sets:
            raise ValueError("Only deletes and clears may write to an inactive asset")
        _check_asset(asset)
        values = dict(sets or {})

        def decide(current: Mapping[str, str]) -> list[PendingEvent]:
            pending = clear_events(current) if clear else []
            state = {} if clear else dict(current)
            pending += set_events(values, state)
            state.update(values)
            pending += [PendingEvent(Op.DELETE, key, None, state.pop(key)) for key in deletes if key in state]
            return pending

        keys = None if clear else [*values, *deletes]
        return self._locked_write(
            asset, writer, keys, decide, expected_version=expected_version, active_only=not inactive_ok
        )[0]

    # --- rewind ------------------------------------------------------------------------------------

    def restore(
        self,
        asset: Asset,
        *,
        at: datetime | None = None,
        position: int | None = None,
        writer: Writer | None = None,
        dry_run: bool = False,
    ) -> list[Change]:
        """Rewind an active asset's state to what it was at `at` (inclusive) or `position`.

        Appends, in one transaction, the `set` and `delete` events that turn the current state into
        `state_as_of(asset, at=..., position=...)`, and returns them (empty, and nothing appended, when the
        two are already equal). The log keeps everything: a restore is itself audited, and another restore
        undoes it. With `dry_run`, returns the same changes and appends nothing.

        Exactly one of `at`/`position` (ValueError otherwise); AssetNotActiveError for an inactive or
        unknown asset; CompactedError for a point at or before a compaction of the asset.
        """
        _check_asset(asset)
        replay.check_point(at, position)

        def decide(conn: Connection, current: Mapping[str, str]) -> list[PendingEvent]:
            target = replay.state_texts_as_of(conn, asset, at=at, position=position)
            changed = {key: text for key, text in target.items() if current.get(key) != text}
            pending = set_events(changed, current)
            gone = sorted(key for key in current if key not in target)
            return pending + [PendingEvent(Op.DELETE, key, None, current[key]) for key in gone]

        _version, changes = self._locked_write(
            asset, writer or Writer.api(), None, decide, dry_run=dry_run, report=True
        )
        return changes

    # --- write transactions ------------------------------------------------------------------------

    def _change(
        self,
        asset: Asset,
        writer: Writer,
        keys: Sequence[str] | None,
        claims: int,
        decide: Callable[[Mapping[str, str]], list[PendingEvent]],
    ) -> list[NewEvent]:
        """One write transaction on the quickest path: lock the asset's stream and claim `claims`
        versions, read the current values of `keys` (all keys if None), let `decide` turn them into that
        many events (or none: then nothing is recorded), append them and update the view, commit."""

        # One key (set, delete, update): read with the claim where the database allows, one statement less.
        key = keys[0] if keys is not None and len(keys) == 1 and self._log.reads_current_with_claim else None

        def write(conn: Connectable) -> list[NewEvent]:
            claim = self._log.claim(conn, asset.identity_hash, claims, active_only=True, key=key)
            if claim is None:
                raise self._not_active(asset)
            current = (
                claim.current if claim.current is not None else self._view.read(conn, claim.asset_id, keys)
            )
            return self._log.append(conn, claim, decide(current), writer)

        if self._host is not None:  # the host's triggers append the events: one path, _locked_write
            self._locked_write(asset, writer, keys, decide)
            return []
        try:
            return self._db.run_direct_transaction(write)
        except NothingToRecord:
            return []

    def _locked_write(
        self,
        asset: Asset,
        writer: Writer,
        keys: Sequence[str] | None,
        decide: Callable[..., list[PendingEvent]],
        *,
        expected_version: int | None = None,
        dry_run: bool = False,
        report: bool = False,
        active_only: bool = True,
    ) -> tuple[int, list[Change]]:
        """A write whose number of events is known only once the state is read: lock the stream, check
        `expected_version`, read the current values of `keys` (all if None), decide, then claim exactly as
        many versions and append. `decide(current)`, or `decide(conn, current)` with `report`, which
        also returns the appended events as `Change`s. A dry run rolls back and returns the same."""

        def write(conn: Connection) -> tuple[int, list[Change]]:
            stream = self._log.lock_stream(conn, asset.identity_hash, active_only=active_only)
            if stream is None and self._host is not None and self._host.needs_refresh(conn):
                self._host.refresh(conn)  # an asset the host's triggers mirrored since the store opened
                stream = self._log.lock_stream(conn, asset.identity_hash, active_only=active_only)
            if stream is None:
                raise self._not_active(asset)
            if expected_version is not None and stream.version != expected_version:
                raise VersionConflictError(
                    f"{asset!r} is at version {stream.version}, not {expected_version}: another write came "
                    "first. Read the state again, and write again if the change still holds."
                )
            current = self._current(conn, stream.asset_id, keys)
            pending = decide(conn, current) if report else decide(current)
            if not pending:
                raise _Unchanged(stream.version, [])
            if self._host is not None:
                self._host.apply(conn, stream.asset_id, pending, writer)
                version = conn.execute(
                    sa.select(_assets.c.version).where(_assets.c.id == stream.asset_id)
                ).scalar_one()
                changes = (
                    history_reader.appended_range(conn, stream.asset_id, stream.version + 1, version)
                    if report
                    else []
                )
                if dry_run:
                    raise _Unchanged(version, changes)
                return version, changes
            claim = self._log.claim(conn, asset.identity_hash, len(pending), active_only=active_only)
            assert claim is not None, "the stream is locked (and active, where that was asked)"
            events = self._log.append(conn, claim, pending, writer)
            changes = history_reader.appended(conn, events) if report else []
            if dry_run:
                raise _Unchanged(claim.versions[-1], changes)  # roll back: nothing was applied
            return claim.versions[-1], changes

        try:
            return self._db.run(write, write=True)
        except _Unchanged as unchanged:
            return unchanged.version, unchanged.changes

    def _refresh_host(self) -> bool:
        """Let the host bring eventstore's mirror of its assets up to date; True if it had to."""
        host = self._host
        if host is None or not self._db.run(host.needs_refresh):
            return False
        self._db.run(host.refresh, write=True)
        return True

    def _current(self, conn: Connection, asset_id: int, keys: Sequence[str] | None) -> dict[str, str]:
        """The asset's current JSON texts (all keys, or `keys`): from the host's table, else the view."""
        if self._host is not None:
            return self._host.read(conn, asset_id, keys)
        return self._view.read(conn, asset_id, keys)

    def _record(self, write: Callable[[Connection], T]) -> T | None:
        """Run a write transaction; one that finds nothing to record rolls back and returns None."""
        try:
            return self._db.run(write, write=True)
        except NothingToRecord:
            return None

    # --- lookups -----------------------------------------------------------------------------------

    @staticmethod
    def _known_id(conn: Connection, asset: Asset) -> int:
        _check_asset(asset)
        asset_id: int | None = conn.execute(schema.asset_id_by_identity(asset.identity_hash)).scalar()
        if asset_id is None:
            raise AssetNotFoundError(f"{asset!r} is not known to this store")
        return asset_id

    def _not_active(self, asset: Asset) -> AssetNotActiveError:
        known = self._db.run(
            lambda conn: conn.execute(schema.asset_id_by_identity(asset.identity_hash)).first()
        )
        if known is None:
            return AssetNotActiveError(
                f"{asset!r} is not known to this store. Activate it first: store.activate(asset), or "
                "declare it as an inlet or outlet of the task."
            )
        return AssetNotActiveError(
            f"{asset!r} is not active, so its state cannot be read or written (it was deactivated). "
            "Activate it again with store.activate(asset) to get its state back."
        )

    # --- garbage collection ------------------------------------------------------------------------

    def compact(
        self,
        *,
        dry_run: bool = False,
        batch_size: int | None = None,
        grace: timedelta | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> CompactionReport:
        """Delete the events, view rows and snapshots of every inactive asset; never touch an active one.

        Spares assets deactivated less than `grace` ago (default: $EVENTSTORE_COMPACTION_GRACE, else 0).
        Deletes `batch_size` events per transaction (default compaction.DEFAULT_BATCH_SIZE), each
        committing on its own. Each compacted asset keeps its row (and stream version) and gets a
        permanent record (`compactions`). A dry run changes nothing and reports the same figures.
        `progress`, if given, is called after every batch with the running count of events deleted.
        """
        return compaction.compact(
            self._db, dry_run=dry_run, batch_size=batch_size, grace=grace, progress=progress
        )

    def compactions(self, asset: Asset | None = None) -> list[CompactionRecord]:
        """The permanent records of past compactions, oldest first: all of them, or one asset's.

        AssetNotFoundError for an asset this store has never seen.
        """

        def read(conn: Connection) -> list[CompactionRecord]:
            asset_id = None if asset is None else self._known_id(conn, asset)
            return compaction.records(conn, asset_id)

        return self._db.run(read)


class _Unchanged(NothingToRecord):
    """Rolls back a write that records nothing (or a dry run), carrying what the caller returns."""

    def __init__(self, version: int, changes: list[Change]) -> None:
        super().__init__()
        self.version, self.changes = version, changes


def _check_asset(asset: object) -> None:
    if not isinstance(asset, Asset):
        raise TypeError(f"Expected an Asset, got {type(asset).__name__}")
