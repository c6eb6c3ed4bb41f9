"""Garbage collection: compaction deletes the events, view rows and snapshots of inactive assets.

Compacting one asset happens in two steps:

1. **The decision, under the asset's row lock.** One transaction locks the es_assets rows of a batch of
   candidates (the row lock every writer, `activate` and `deactivate` take first; taken in id order, so
   compactors never deadlock each other) and re-checks each asset while holding it: not active,
   deactivated at least `grace` ago, and with events after its last compaction (its stream head
   `version` is above the `last_version` of its latest es_compactions row). For every asset that passes,
   the same transaction writes its es_compactions row (`last_version` = the head it saw, the number of
   events and view rows, `deactivated_at`, `position` = the last position handed out, `compacted_at`),
   deletes its view rows and snapshots (`PER_ASSET_DERIVED_TABLES`) and, when they fit in the batch,
   its events. From that commit on the asset is compacted: activating it again starts empty and its
   versions go on after `last_version`, because es_assets.version survives.
2. **The rest of a large stream, in batches.** The events of an asset that has more than fit in the
   deciding batch are deleted afterwards, `batch_size` at a time, lowest versions first, each batch in
   its own transaction under the row lock. Only events with version <= `last_version` are deleted: they
   were dead from the moment of the decision (no view row or snapshot is left from them and every one
   has a position <= the record's `position`), whereas an activation after the decision appends
   versions above `last_version`, which are never touched. A compaction interrupted here is finished by
   the next run (`compact` first looks for compacted versions that still have events).

Why this is safe with concurrent writers and compactors:
- An active asset is never compacted: "inactive" is checked while holding the row lock an activation
  needs, so an activation either commits before the check (the asset keeps everything) or waits for
  the decision to commit (and then starts empty).
- Several compactors report each asset exactly once between them: the record is written in the
  transaction that decided, under the lock, and the check "head > last compacted version" made under
  the lock fails for every later compactor.
- Positions are never reused: compaction never touches es_log_head or the position sequence, so the
  feed just has holes where compacted events were, which it reads across like any other settled hole
  (eventstore.ordering).

Batches: `batch_size` (default `DEFAULT_BATCH_SIZE`) bounds the events one transaction deletes. Small
assets are grouped into one transaction up to that many events; view rows and snapshots are deleted
with the decision (at most one view row per key of the asset). Nothing is loaded into memory but one
page of candidate assets (ids and counts). Compaction is a background job: after each batch it rests as
long as the database needs for the application's writes to keep their latency
(`Backend.rest_after_batch`: on SQLite and MariaDB as long as the batch took, on PostgreSQL not at all).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema
from eventstore.assets import Asset
from eventstore.database import Database
from eventstore.errors import CompactedError
from eventstore.log import utcnow
from eventstore.ordering import Ordering

DEFAULT_BATCH_SIZE = 2_000
"""Events deleted per transaction unless `batch_size` says otherwise.

Small enough that one batch holds SQLite's single write lock (and the row locks of its assets elsewhere)
for a few tens of milliseconds, which is what a write arriving meanwhile waits at most; large enough that
the commit per batch does not dominate (docs/garbage-collection.md: smaller batches took several times
as long with no better write latency, larger ones gained little and made writes wait longer)."""

GRACE_VARIABLE = "EVENTSTORE_COMPACTION_GRACE"
"""Environment variable with the default grace period: seconds (`3600`) or a duration (`90s`, `15m`,
`24h`, `7d`). Unset or empty means 0: assets are compacted as soon as they are inactive, as in Airflow."""

PER_ASSET_DERIVED_TABLES: tuple[sa.Table, ...] = (schema.state, schema.snapshots)
"""Every table, besides the log, that holds rows derived from an asset's events (keyed by `asset_id`).
Compaction deletes an asset's rows in all of them in the transaction that decides; a new per-asset
projection must be listed here."""

T = TypeVar("T")

_CANDIDATE_PAGE = 500  # candidate assets read per query; also the most assets one transaction locks

_assets = schema.assets
_active = schema.asset_active
_events = schema.events
_view = schema.state
_records = schema.compactions


# --- What compaction reports and records --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactedAsset:
    """One asset a compaction removed (or, in a dry run, would remove): its events and view rows."""

    name: str
    uri: str
    events: int
    keys: int


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What one `compact` call removed (or, in a dry run, would remove), asset by asset, and in total.

    `events_deleted` counts events, `rows_deleted` view rows (keys); both are sums over `assets`.
    """

    assets: list[CompactedAsset]
    events_deleted: int
    rows_deleted: int


@dataclass(frozen=True, slots=True)
class CompactionRecord:
    """The permanent trace of one compaction of one asset (a row of es_compactions).

    `last_version`: the stream continues after it; `events`: how many events were removed;
    `deactivated_at`: when the asset had been deactivated; `compacted_at`: when it was compacted;
    `position`: the highest global position handed out at that moment (history and as-of at or before
    it are gone).
    """

    asset: Asset
    last_version: int
    events: int
    deactivated_at: datetime | None
    compacted_at: datetime
    position: int


# --- The latest compaction of an asset: the one definition every reader uses ---------------------------


@dataclass(frozen=True, slots=True)
class CompactionMark:
    """The latest compaction of an asset: its events up to `last_version`, and every point up to
    `position` (or, by time, up to `compacted_at` before its first surviving event), are gone."""

    last_version: int
    position: int
    compacted_at: datetime


_latest_compaction = (
    sa.select(_records.c.last_version, _records.c.position, _records.c.compacted_at)
    .where(_records.c.asset_id == sa.bindparam("asset_id"))
    .order_by(_records.c.last_version.desc())
    .limit(1)
)


def latest_compaction(conn: Connection, asset_id: int) -> CompactionMark | None:
    """The asset's latest compaction, or None if it was never compacted."""
    row = conn.execute(_latest_compaction, {"asset_id": asset_id}).first()
    return None if row is None else CompactionMark(row.last_version, row.position, row.compacted_at)


def compacted_version(asset_id: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """The last compacted version of the asset `asset_id` (0 if never compacted), as a SQL expression:
    its stream's surviving events are those after it."""
    return sa.func.coalesce(
        sa.select(sa.func.max(_records.c.last_version))
        .where(_records.c.asset_id == asset_id)
        .scalar_subquery(),
        0,
    )


def compacted_error(asset: Asset, mark: CompactionMark, point: str) -> CompactedError:
    """The error for a point or range that compaction removed, giving the compaction date (YYYY-MM-DD)."""
    return CompactedError(
        f"{asset!r} was compacted on {mark.compacted_at:%Y-%m-%d}: its state {point} is gone. Its surviving "
        f"history starts after position {mark.position} (stream version {mark.last_version})."
    )


_compacted_version = compacted_version(_assets.c.id)


# --- Grace period --------------------------------------------------------------------------------------

_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


def parse_grace(text: str) -> timedelta:
    """A grace period from its text: a number of seconds (`3600`, `1.5`) or a number with a unit
    `s`, `m`, `h` or `d` (`90s`, `15m`, `24h`, `7d`). Anything else raises ValueError."""
    match = _DURATION.fullmatch(text.strip())
    problem = None if match else "is not a duration"
    if match:
        try:
            return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
        except OverflowError:
            problem = "is too long a duration"
    raise ValueError(
        f"{GRACE_VARIABLE}={text!r} {problem}: give a number of seconds (3600) or a number with a unit "
        "s, m, h or d (90s, 15m, 24h, 7d)"
    )


def grace_from_environment() -> timedelta:
    """The default grace period: EVENTSTORE_COMPACTION_GRACE parsed by `parse_grace`; 0 if unset or empty."""
    text = os.environ.get(GRACE_VARIABLE, "")
    return parse_grace(text) if text.strip() else timedelta(0)


# --- Compaction ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Candidate:
    """An asset that looked compactable when the candidates were read (without locks)."""

    asset_id: int
    name: str
    uri: str
    events: int  # head version minus the last compacted version: versions have no holes


@dataclass(frozen=True, slots=True)
class _Decision:
    """An asset the deciding transaction compacted; `events_left`: its events go in later batches."""

    asset_id: int
    last_version: int
    compacted: CompactedAsset
    events_left: bool


def compact(
    database: Database,
    *,
    dry_run: bool = False,
    batch_size: int | None = None,
    grace: timedelta | None = None,
    progress: Callable[[int], object] | None = None,
) -> CompactionReport:
    """Compact every inactive asset deactivated at least `grace` ago (see the module docstring).

    `batch_size`: events deleted per transaction (default DEFAULT_BATCH_SIZE). `grace`: default from
    EVENTSTORE_COMPACTION_GRACE. A dry run reads the same candidates and changes nothing. `progress`, if
    given, is called after every batch with the running count of events deleted (in a dry run: that
    would be deleted) by this call; it ends at the report's `events_deleted`.
    """
    size = _checked_batch_size(batch_size)
    cutoff = _cutoff(grace_from_environment() if grace is None else grace)
    compacted: list[CompactedAsset] = []
    deleted = 0

    def advance(events: int) -> None:
        nonlocal deleted
        deleted += events
        if progress is not None:
            progress(deleted)

    if not dry_run:
        for asset_id, last_version in database.run(_unfinished_compactions):
            # Left over by an interrupted run, which reported them: not counted again.
            _delete_dead_events(database, asset_id, last_version, size, lambda _events: advance(0))
    for page in _candidate_pages(database, cutoff):
        if dry_run:
            preview = database.run(functools.partial(_preview, candidates=page))
            compacted.extend(preview)
            advance(sum(asset.events for asset in preview))
            continue
        for batch in _batches(page, size):
            decide = functools.partial(
                _decide, ordering=database.ordering, candidates=batch, cutoff=cutoff, batch_size=size
            )
            decisions = _write_batch(database, decide)
            advance(sum(d.compacted.events for d in decisions if not d.events_left))
            for decision in decisions:
                if decision.events_left:
                    _delete_dead_events(database, decision.asset_id, decision.last_version, size, advance)
                compacted.append(decision.compacted)
    return CompactionReport(
        assets=compacted,
        events_deleted=sum(asset.events for asset in compacted),
        rows_deleted=sum(asset.keys for asset in compacted),
    )


def records(conn: Connection, asset_id: int | None = None) -> list[CompactionRecord]:
    """The compaction records of every asset (or of one), oldest first."""
    query = sa.select(_records, _assets.c.name, _assets.c.uri).join(
        _assets, _assets.c.id == _records.c.asset_id
    )
    if asset_id is not None:
        query = query.where(_records.c.asset_id == asset_id)
    return [
        CompactionRecord(
            asset=Asset(row.name, row.uri),
            last_version=row.last_version,
            events=row.events,
            deactivated_at=row.deactivated_at,
            compacted_at=row.compacted_at,
            position=row.position,
        )
        for row in conn.execute(query.order_by(_records.c.id))
    ]


def _checked_batch_size(batch_size: int | None) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return batch_size


def _cutoff(grace: timedelta) -> datetime | None:
    """Assets deactivated at or before this time are past their grace period; None: all are."""
    if not isinstance(grace, timedelta):
        raise TypeError(f"grace must be a datetime.timedelta, got {type(grace).__name__}")
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    return None if not grace else utcnow() - grace


def _past_grace(deactivated_at: datetime | None, cutoff: datetime | None) -> bool:
    # eventstore sets deactivated_at whenever an asset becomes inactive; should it be missing anyway, only
    # a grace period of 0 lets the asset be compacted.
    return cutoff is None or (deactivated_at is not None and deactivated_at <= cutoff)


def _candidate_pages(database: Database, cutoff: datetime | None) -> Iterator[list[_Candidate]]:
    """Compactable-looking assets in id order, a page per read transaction (keyset paging on id)."""
    query = sa.select(
        _assets.c.id,
        _assets.c.name,
        _assets.c.uri,
        (_assets.c.version - _compacted_version).label("events"),
    ).where(~schema.is_active, _assets.c.version > _compacted_version)
    if cutoff is not None:
        query = query.where(_assets.c.deactivated_at <= cutoff)
    after = 0
    while True:
        page_query = query.where(_assets.c.id > after).order_by(_assets.c.id).limit(_CANDIDATE_PAGE)
        rows = database.run(functools.partial(_fetch_all, query=page_query))
        if not rows:
            return
        yield [_Candidate(row.id, row.name, row.uri, int(row.events)) for row in rows]
        if len(rows) < _CANDIDATE_PAGE:
            return
        after = rows[-1].id


def _fetch_all(conn: Connection, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
    return conn.execute(query).all()


def _batches(candidates: Sequence[_Candidate], batch_size: int) -> Iterator[list[_Candidate]]:
    """Consecutive groups of candidates with at most `batch_size` events (a larger asset on its own)."""
    batch: list[_Candidate] = []
    events = 0
    for candidate in candidates:
        if batch and events + candidate.events > batch_size:
            yield batch
            batch, events = [], 0
        batch.append(candidate)
        events += candidate.events
    if batch:
        yield batch


def _key_counts(conn: Connection, asset_ids: Sequence[int]) -> dict[int, int]:
    query = (
        sa.select(_view.c.asset_id, sa.func.count())
        .where(_view.c.asset_id.in_(asset_ids))
        .group_by(_view.c.asset_id)
    )
    return {asset_id: int(count) for asset_id, count in conn.execute(query)}


def _preview(conn: Connection, candidates: Sequence[_Candidate]) -> list[CompactedAsset]:
    """What a real run would report for these candidates, read without changing anything."""
    keys = _key_counts(conn, [c.asset_id for c in candidates])
    return [CompactedAsset(c.name, c.uri, c.events, keys.get(c.asset_id, 0)) for c in candidates]


def _lock_assets(conn: Connection, asset_ids: Sequence[int]) -> list[Any]:
    """Take the row locks writers take (SELECT ... FOR UPDATE on es_assets), in id order."""
    query = (
        sa.select(_assets.c.id, _assets.c.name, _assets.c.uri, _assets.c.version, _assets.c.deactivated_at)
        .where(_assets.c.id.in_(asset_ids))
        .order_by(_assets.c.id)
        .with_for_update()
    )
    return list(conn.execute(query).all())


def _decide(
    conn: Connection,
    ordering: Ordering,
    candidates: Sequence[_Candidate],
    cutoff: datetime | None,
    batch_size: int,
) -> list[_Decision]:
    """Lock the candidates, keep those still compactable, and compact them (step 1 of the docstring)."""
    locked = _lock_assets(conn, [c.asset_id for c in candidates])
    ids = [row.id for row in locked]
    # Read after taking the locks, so they reflect every activation and compaction committed before.
    active = set(conn.execute(sa.select(_active.c.asset_id).where(_active.c.asset_id.in_(ids))).scalars())
    compacted_versions: dict[int, int] = {
        asset_id: int(version)
        for asset_id, version in conn.execute(
            sa.select(_records.c.asset_id, sa.func.max(_records.c.last_version))
            .where(_records.c.asset_id.in_(ids))
            .group_by(_records.c.asset_id)
        )
    }
    due = [
        row
        for row in locked
        if row.id not in active
        and row.version > compacted_versions.get(row.id, 0)
        and _past_grace(row.deactivated_at, cutoff)
    ]
    if not due:
        return []
    due_ids = [row.id for row in due]
    keys = _key_counts(conn, due_ids)
    position = ordering.last_assigned(conn)
    now = utcnow()
    decisions: list[_Decision] = []
    deleted_now: list[int] = []
    budget = batch_size
    for row in due:
        events = row.version - compacted_versions.get(row.id, 0)
        fits = events <= budget
        if fits:
            deleted_now.append(row.id)
            budget -= events
        compacted = CompactedAsset(row.name, row.uri, events, keys.get(row.id, 0))
        decisions.append(_Decision(row.id, row.version, compacted, events_left=not fits))
    conn.execute(
        _records.insert(),
        [
            {
                "asset_id": row.id,
                "last_version": row.version,
                "events": decision.compacted.events,
                "keys": decision.compacted.keys,
                "deactivated_at": row.deactivated_at,
                "position": position,
                "compacted_at": now,
            }
            for row, decision in zip(due, decisions, strict=True)
        ],
    )
    for table in PER_ASSET_DERIVED_TABLES:
        conn.execute(table.delete().where(table.c.asset_id.in_(due_ids)))
    if deleted_now:
        # Under the row lock of an inactive asset its stream cannot grow: all its events are <= row.version.
        conn.execute(_events.delete().where(_events.c.asset_id.in_(deleted_now)))
    return decisions


def _unfinished_compactions(conn: Connection) -> list[tuple[int, int]]:
    """(asset id, last compacted version) of every asset with events left at or below that version."""
    latest = (
        sa.select(_records.c.asset_id, sa.func.max(_records.c.last_version).label("last_version"))
        .group_by(_records.c.asset_id)
        .subquery()
    )
    left = sa.exists().where(
        _events.c.asset_id == latest.c.asset_id, _events.c.version <= latest.c.last_version
    )
    query = sa.select(latest.c.asset_id, latest.c.last_version).where(left).order_by(latest.c.asset_id)
    return [(int(asset_id), int(version)) for asset_id, version in conn.execute(query)]


def _delete_dead_events(
    database: Database,
    asset_id: int,
    last_version: int,
    batch_size: int,
    deleted: Callable[[int], object],
) -> None:
    """Delete the asset's events at or below `last_version`, a batch per transaction (step 2); `deleted`
    is told how many each batch removed."""
    delete_batch = functools.partial(
        _delete_dead_batch, asset_id=asset_id, last_version=last_version, batch_size=batch_size
    )
    while count := _write_batch(database, delete_batch):
        deleted(count)


def _write_batch(database: Database, work: Callable[[Connection], T]) -> T:
    """Run one write batch in its own transaction, then rest as the database needs for waiting writers
    to get their turn (`Backend.rest_after_batch`: on SQLite as long as the batch held the write lock)."""
    locked_at = 0.0

    def timed(conn: Connection) -> T:
        nonlocal locked_at
        locked_at = time.perf_counter()  # the transaction has begun: on SQLite, the write lock is held
        return work(conn)

    result = database.run(timed, write=True)
    rest = database.backend.rest_after_batch(time.perf_counter() - locked_at)
    if rest > 0:
        time.sleep(rest)
    return result


def _delete_dead_batch(conn: Connection, asset_id: int, last_version: int, batch_size: int) -> int:
    """Delete up to `batch_size` of the asset's lowest events at or below `last_version`; how many it
    deleted (0 if none were left)."""
    _lock_assets(conn, [asset_id])
    lowest = conn.execute(
        sa.select(sa.func.min(_events.c.version)).where(
            _events.c.asset_id == asset_id, _events.c.version <= last_version
        )
    ).scalar()
    if lowest is None:
        return 0
    highest = min(last_version, int(lowest) + batch_size - 1)
    # Versions have no holes: the batch deletes every version from `lowest` to `highest`.
    conn.execute(_events.delete().where(_events.c.asset_id == asset_id, _events.c.version <= highest))
    return highest - int(lowest) + 1
