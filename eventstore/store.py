"""`open_store` and `Store`: the one place that wires the log, the projections and the database together."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from eventstore import codec, compaction, lifetime, schema
from eventstore import migrate as migrations
from eventstore.accessor import AssetState
from eventstore.assets import Asset, AssetInfo
from eventstore.codec import JSON
from eventstore.compaction import CompactionRecord, CompactionReport
from eventstore.context import AssetStateStoreAccessors, Task, concrete_assets
from eventstore.database import Database
from eventstore.errors import AssetNotActiveError, AssetNotFoundError
from eventstore.events import Change, Event, NewEvent, PendingEvent, set_events
from eventstore.log import EventLog, NothingToRecord
from eventstore.one_statement_set import OneStatementSet
from eventstore.prepared import Connectable
from eventstore.writers import Writer
from projections import history as history_reader
from projections import rebuild, replay
from projections.current_state import CurrentStateView
from projections.rebuild import Drift, RebuildReport
from projections.snapshots import SnapshotProjection

DEFAULT_URL = "sqlite:///eventstore.db"

T = TypeVar("T")

_assets = schema.assets
_active = schema.asset_active
_is_active = sa.exists().where(_active.c.asset_id == _assets.c.id)


def open_store(url: str | URL | None = None, *, migrate: bool = True) -> Store:
    """Open the store at `url` (default: $EVENTSTORE_URL, else SQLite file ./eventstore.db).

    Brings the schema to this version first unless `migrate=False`, in which case a missing, older or
    newer schema raises SchemaVersionError.
    """
    database = Database(url or os.environ.get("EVENTSTORE_URL") or DEFAULT_URL)
    try:
        if migrate:
            database.run_admin(migrations.upgrade)
        else:
            database.run(migrations.check)
        return Store(database)
    except BaseException:
        database.dispose()
        raise


class Store:
    """An event-sourced key/value state store, one stream of events per asset."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.max_value_bytes = codec.max_value_bytes()
        """Values larger than this (UTF-8 JSON bytes) are written with a warning: EVENTSTORE_MAX_VALUE_BYTES
        as it was when the store was opened (default 65535, 0 = no limit)."""
        backend, dialect = database.backend, database.dialect
        self._view = CurrentStateView(backend, dialect)
        # Snapshots copy the view's rows after it has applied the events, so they come after it.
        ordering = database.ordering
        self._log = EventLog(
            ordering,
            dialect,
            projections=[self._view, SnapshotProjection(self._view, backend, dialect)],
            current_value=self._view.current_value if backend.claim_reads_current else None,
        )
        self._one_statement_set = (
            OneStatementSet(backend, ordering, dialect) if backend.one_statement_set else None
        )

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
        author = writer or Writer.api()
        self._record(lambda conn: lifetime.activate(conn, self._db.backend, self._log, asset, author))

    def deactivate(self, asset: Asset, writer: Writer | None = None) -> None:
        """Hide the asset's state (a `deactivate` event) until it is activated again or compacted."""
        _check_asset(asset)
        author = writer or Writer.api()
        self._record(lambda conn: lifetime.deactivate(conn, self._log, asset, author))

    def is_active(self, asset: Asset) -> bool:
        """True if the asset is registered and active."""
        _check_asset(asset)
        return self._db.read_in_autocommit(lambda conn: self._active_id(conn, asset) is not None)

    def assets(self, active: bool | None = None) -> list[AssetInfo]:
        """Every registered asset (or only the active or inactive ones), by id."""
        is_active = _is_active.label("active")
        query = sa.select(_assets.c.id, _assets.c.name, _assets.c.uri, _assets.c.version, is_active)
        if active is not None:
            query = query.where(_is_active if active else ~_is_active)
        rows = self._db.run(lambda conn: conn.execute(query.order_by(_assets.c.id)).all())
        return [AssetInfo(r.id, r.name, r.uri, bool(r.active), r.version) for r in rows]

    # --- reading and writing state -----------------------------------------------------------------

    def asset(self, asset: Asset, writer: Writer | None = None) -> AssetState:
        """The accessor for one asset's state, writing as `writer` (default: Writer.api()). No I/O."""
        return AssetState(self, asset, writer or Writer.api())

    def task_context(
        self, inlets: Iterable[object] = (), outlets: Iterable[object] = (), writer: Writer | None = None
    ) -> dict[str, Any]:
        """A task context whose "asset_state_store" holds the concrete inlets and outlets. No I/O."""
        assets = concrete_assets(inlets, outlets)
        return {"asset_state_store": AssetStateStoreAccessors(self, assets, writer or Writer.api())}

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
        context (asset_state_store, dag_id, run_id, task_id, map_index, try_number) and call it."""
        writer = Writer.task(dag_id, run_id, task_id, map_index, try_number)
        inlets = fn.inlets if isinstance(fn, Task) else ()
        outlets = fn.outlets if isinstance(fn, Task) else ()
        for asset in concrete_assets(inlets, outlets):
            self.activate(asset, writer)
        context = self.task_context(inlets, outlets, writer)
        context.update(
            dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number
        )
        return fn(**context)

    # --- audit and replay --------------------------------------------------------------------------

    def history(
        self,
        asset: Asset,
        key: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Change]:
        """How the asset's state changed, oldest first: each change with its previous value and writer.

        With `key`: that key's sets and deletes, and every clear that removed it. `since` inclusive,
        `until` exclusive; `limit` keeps the first N in the chosen order.
        """

        def read(conn: Connection) -> list[Change]:
            asset_id = self._known_id(conn, asset)
            return history_reader.history(
                conn, asset_id, key, since=since, until=until, limit=limit, newest_first=newest_first
            )

        return self._db.run(read)

    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        """The global feed: events with position > `after`, in position order.

        A reader that has seen position p never later finds a committed event at or below p.
        """
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
        return rebuild.rebuild_projections(self._db, self._log, progress)

    def verify_projections(self) -> list[Drift]:
        """Every place where the current view or a snapshot disagrees with the log; empty when none."""
        return rebuild.verify_projections(self._db, self._log)

    # --- used by AssetState ------------------------------------------------------------------------

    def _read(self, asset: Asset, key: str) -> str | None:
        """The key's JSON text (None if absent), in one query that also checks the asset is active."""
        active, text = self._db.run_direct(lambda conn: self._view.lookup(conn, asset.identity_hash, key))
        if not active:
            raise self._not_active(asset)
        return text

    def _set(self, asset: Asset, writer: Writer, key: str, text: str) -> None:
        """One `set` event: in one statement where the database can, else in the log's transaction."""
        fast = self._one_statement_set
        if fast is not None and self._db.run_direct(
            lambda conn: fast.try_set(conn, asset.identity_hash, key, text, writer)
        ):
            return
        self._change(asset, writer, [key], 1, lambda current: set_events({key: text}, current))

    def _change(
        self,
        asset: Asset,
        writer: Writer,
        keys: Sequence[str] | None,
        claims: int,
        decide: Callable[[Mapping[str, str]], list[PendingEvent]],
    ) -> list[NewEvent]:
        """One write transaction: lock the asset's stream and claim `claims` versions, read the current
        values of `keys` (all keys if None), let `decide` turn them into that many events (or none: then
        nothing is recorded), append them and update the view, commit."""

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

        try:
            return self._db.run_direct_transaction(write)
        except NothingToRecord:
            return []

    def _record(self, write: Callable[[Connection], T]) -> T | None:
        """Run a write transaction; one that finds nothing to record rolls back and returns None."""
        try:
            return self._db.run(write, write=True)
        except NothingToRecord:
            return None

    def _require_active(self, asset: Asset) -> None:
        if not self.is_active(asset):
            raise self._not_active(asset)

    # --- lookups -----------------------------------------------------------------------------------

    @staticmethod
    def _active_id(conn: Connection, asset: Asset) -> int | None:
        query = sa.select(_assets.c.id).where(_assets.c.identity_hash == asset.identity_hash, _is_active)
        return conn.execute(query).scalar()

    @staticmethod
    def _known_id(conn: Connection, asset: Asset) -> int:
        _check_asset(asset)
        query = sa.select(_assets.c.id).where(_assets.c.identity_hash == asset.identity_hash)
        asset_id: int | None = conn.execute(query).scalar()
        if asset_id is None:
            raise AssetNotFoundError(f"{asset!r} is not known to this store")
        return asset_id

    def _not_active(self, asset: Asset) -> AssetNotActiveError:
        known = self._db.run(
            lambda conn: conn.execute(
                sa.select(_assets.c.id).where(_assets.c.identity_hash == asset.identity_hash)
            ).first()
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
        self, *, dry_run: bool = False, batch_size: int | None = None, grace: timedelta | None = None
    ) -> CompactionReport:
        """Delete the events, view rows and snapshots of every inactive asset; never touch an active one.

        Spares assets deactivated less than `grace` ago (default: $EVENTSTORE_COMPACTION_GRACE, else 0).
        Deletes `batch_size` events per transaction (default compaction.DEFAULT_BATCH_SIZE), each
        committing on its own. Each compacted asset keeps its row (and stream version) and gets a
        permanent record (`compactions`). A dry run changes nothing and reports the same figures.
        """
        return compaction.compact(self._db, dry_run=dry_run, batch_size=batch_size, grace=grace)

    def compactions(self, asset: Asset | None = None) -> list[CompactionRecord]:
        """The permanent records of past compactions, oldest first: all of them, or one asset's.

        AssetNotFoundError for an asset this store has never seen.
        """

        def read(conn: Connection) -> list[CompactionRecord]:
            asset_id = None if asset is None else self._known_id(conn, asset)
            return compaction.records(conn, asset_id)

        return self._db.run(read)


def _check_asset(asset: object) -> None:
    if not isinstance(asset, Asset):
        raise TypeError(f"Expected an Asset, got {type(asset).__name__}")
