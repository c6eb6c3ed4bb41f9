"""Large logs for the replay benchmarks, written straight into the es_* tables.

Why not through the API: one `set` is one durable transaction (an fsync), a few hundred per second on
this machine, so a million events would take an hour. Instead the rows eventstore would have written
are generated in Python and inserted in bulk with SQLAlchemy Core (executemany in batches of
`BATCH` rows, one transaction per batch), into a store that `open_store` has just migrated. The rows keep
every invariant the write path keeps, so the store cannot tell them from API writes:

- es_events: positions 1, 2, 3, ... (global, in the order generated); versions 1, 2, 3, ... per asset
  with no holes; every stream starts with `activate`; `previous` is the key's value before a set or
  delete, and for a clear the JSON object of every key it removed (built like `events.clear_events`);
  recorded_at grows by 1 ms per position; writer = a task;
- es_assets.version = the asset's last version, last_recorded_at = its last event's time;
  es_asset_active holds the active assets (name and uri hashes as eventstore computes them);
- es_state = the fold of each active asset's events (`events.fold`), with the version, time and writer
  of the event that wrote each value;
- the last position handed out (es_log_head, or the sequence on PostgreSQL) = the highest position;
- es_snapshots, when the schema has it (it is being added): the fold right after every version that is a
  multiple of `projections.snapshots.SNAPSHOT_INTERVAL`, encoded by its `encode_state`, which is what
  the inline snapshot projection writes when events are appended one at a time.

`load_large` writes one big stream (asset `bench-big`, `events` events: sets over 1,000 keys, a delete
every 101st version when the key exists, a clear at every 100,000th version past 50,000) with the events
of 1% as many small assets (10 events each) interleaved every 100th position. `load_inactive` appends
deactivated assets for the compaction benchmarks, their streams interleaved in groups of `interleave`
as concurrent writers would leave them. After loading, `analyze` refreshes the planner's
statistics on PostgreSQL and MariaDB, as autovacuum and InnoDB's automatic statistics soon would on a
live database (a bulk load outruns them; SQLite is left as eventstore leaves it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

import orjson
import sqlalchemy as sa

from eventstore import Asset, schema
from eventstore.assets import text_hash
from eventstore.ordering import ordering_for

BATCH = 10_000
KEYS = 1_000
SMALL_EVENTS = 10
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
BIG = Asset("bench-big")
HISTORY_KEY = "key-042"

_WRITER = {
    "kind": "task",
    "dag_id": "bench_dag",
    "run_id": "bulk_load",
    "task_id": "load",
    "map_index": -1,
    "try_number": 1,
}
_EVENT_WRITER = {f"writer_{k}": v for k, v in _WRITER.items()}
_VIEW_WRITER = {f"updated_by_{k}": v for k, v in _WRITER.items()}


@dataclass
class _Stream:
    asset: Asset
    asset_id: int
    active: bool = True
    version: int = 0
    last_at: datetime | None = None
    first_at: datetime | None = None
    state: dict[str, tuple[str, int, datetime]] = field(default_factory=dict)  # key -> (text, version, at)


@dataclass
class LargeDataset:
    """What was loaded, and the answers the replay benchmarks check against."""

    events: int  # all events in the log
    big_events: int  # events of the big stream
    assets: int
    keys: int  # rows of es_state
    as_of_position: int  # the position of the big stream's version 3/4 * events - 1
    as_of_state: dict[str, Any]  # the big stream's state right after as_of_position
    history_key: str
    history_key_events: int  # how many events `history(BIG, HISTORY_KEY)` returns
    load_seconds: float


def small_asset(index: int) -> Asset:
    """The `index`th small (active) asset of `load_large`."""
    return Asset(f"bench-small-{index:05d}")


def _at(position: int) -> datetime:
    return BASE_TIME + timedelta(milliseconds=position)


def _snapshot_rule() -> tuple[sa.Table, int, Callable[[Mapping[str, str]], str]] | None:
    """(table, interval, encoder) of the inline snapshot projection, if this tree has one."""
    table = getattr(schema, "snapshots", None)
    try:
        from projections import snapshots
    except ImportError:
        return None
    interval = getattr(snapshots, "SNAPSHOT_INTERVAL", None)
    encode = getattr(snapshots, "encode_state", None)
    if table is None or not isinstance(interval, int) or encode is None:
        return None
    return table, interval, encode


class _Writer:
    """Buffers event rows (and the snapshots they trigger) and inserts them a batch at a time."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.rows: list[dict[str, Any]] = []
        self.snapshot_rows: list[dict[str, Any]] = []
        self.snapshots = _snapshot_rule()

    def add(self, row: dict[str, Any], stream: _Stream) -> None:
        self.rows.append(row)
        if self.snapshots is not None and stream.version % self.snapshots[1] == 0:
            state = {key: text for key, (text, _, _) in stream.state.items()}
            self.snapshot_rows.append(
                {"asset_id": stream.asset_id, "version": stream.version, "state": self.snapshots[2](state)}
            )
        if len(self.rows) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            with self.engine.begin() as conn:
                conn.execute(schema.events.insert(), self.rows)
                if self.snapshots is not None and self.snapshot_rows:
                    conn.execute(self.snapshots[0].insert(), self.snapshot_rows)
            self.rows = []
            self.snapshot_rows = []


def _event(stream: _Stream, position: int, op: str, key: str | None, value: str | None) -> dict[str, Any]:
    """The event row for `op` on `stream` at `position`, folding it into the stream's state."""
    at = _at(position)
    stream.version += 1
    previous: str | None = None
    if op in ("set", "delete"):
        assert key is not None
        old = stream.state.get(key)
        previous = None if old is None else old[0]
        if op == "set":
            assert value is not None
            stream.state[key] = (value, stream.version, at)
        else:
            del stream.state[key]
    elif op == "clear":
        removed = ",".join(f"{orjson.dumps(k).decode()}:{t}" for k, (t, _, _) in sorted(stream.state.items()))
        previous = f"{{{removed}}}"
        stream.state.clear()
    stream.last_at = at
    stream.first_at = stream.first_at or at
    return {
        "position": position,
        "asset_id": stream.asset_id,
        "version": stream.version,
        "op": op,
        "key": key,
        "value": value,
        "previous": previous,
        "recorded_at": at,
        **_EVENT_WRITER,
    }


def _big_op(stream: _Stream, version: int) -> tuple[str, str | None, str | None]:
    """What the big stream's event at `version` does (version 1 is the activation)."""
    if version == 1:
        return "activate", None, None
    key = f"key-{version % KEYS:03d}"
    if version % 100_000 == 50_000 and stream.state:
        return "clear", None, None
    if version % 101 == 0 and key in stream.state:
        return "delete", key, None
    return "set", key, f'{{"n":{version},"watermark":"2024-06-01T00:00:00+00:00"}}'


def _small_op(stream: _Stream, version: int) -> tuple[str, str | None, str | None]:
    if version == 1:
        return "activate", None, None
    return "set", f"k{version % 3}", f'{{"n":{version}}}'


def _register(engine: sa.Engine, streams: list[_Stream]) -> None:
    """Insert the asset rows (ids given) before their events, which reference them."""
    with engine.begin() as conn:
        conn.execute(
            schema.assets.insert(),
            [
                {
                    "id": s.asset_id,
                    "identity_hash": s.asset.identity_hash,
                    "name": s.asset.name,
                    "uri": s.asset.uri,
                    "version": 0,
                    "last_recorded_at": None,
                    "created_at": BASE_TIME,
                    "deactivated_at": None,
                }
                for s in streams
            ],
        )


def _finish(engine: sa.Engine, streams: list[_Stream], head: int, deactivated_at: datetime | None) -> int:
    """Asset heads, active marks, the view (the fold) and the log head, in one transaction."""
    keys = 0
    with engine.begin() as conn:
        for s in streams:
            conn.execute(
                schema.assets.update()
                .where(schema.assets.c.id == s.asset_id)
                .values(
                    version=s.version,
                    last_recorded_at=s.last_at,
                    created_at=s.first_at or BASE_TIME,
                    deactivated_at=None if s.active else deactivated_at,
                )
            )
        active = [s for s in streams if s.active]
        if active:
            conn.execute(
                schema.asset_active.insert(),
                [
                    {
                        "asset_id": s.asset_id,
                        "name_hash": text_hash(s.asset.name),
                        "uri_hash": text_hash(s.asset.uri),
                        "activated_at": s.first_at or BASE_TIME,
                    }
                    for s in active
                ],
            )
        view = [
            {
                "asset_id": s.asset_id,
                "key": key,
                "value": text,
                "version": version,
                "updated_at": at,
                **_VIEW_WRITER,
            }
            for s in streams
            for key, (text, version, at) in s.state.items()
        ]
        for start in range(0, len(view), BATCH):
            conn.execute(schema.state.insert(), view[start : start + BATCH])
        keys = len(view)
        # Hand out the positions the rows took, as writers would (the store is idle while it loads).
        ordering = ordering_for(conn.dialect)
        ordering.reserve(conn, head - ordering.last_assigned(conn))
    return keys


def _head(engine: sa.Engine) -> tuple[int, int]:
    """(log head position, highest asset id) of the store."""
    with engine.connect() as conn:
        head = ordering_for(conn.dialect).last_assigned(conn)
        top = conn.execute(sa.select(sa.func.max(schema.assets.c.id))).scalar()
    return int(head), int(top or 0)


def load_large(url: str, events: int) -> LargeDataset:
    """Load the big stream of `events` events plus the small assets into the migrated, empty store."""
    started = perf_counter()
    engine = sa.create_engine(url)
    try:
        head, top = _head(engine)
        if head or top:
            raise RuntimeError("load_large needs an empty store")
        big = _Stream(BIG, 1)
        small = [_Stream(small_asset(i), 2 + i) for i in range(max(1, events // 100 // SMALL_EVENTS))]
        _register(engine, [big, *small])
        writer = _Writer(engine)
        small_total = len(small) * SMALL_EVENTS
        small_done = 0
        position = 0
        # Three quarters through, at the last version before a snapshot: as-of folds the most events there.
        as_of_version = events * 3 // 4 - 1
        as_of_position = 0
        as_of_state: dict[str, Any] = {}
        history_events = 0
        for _ in range(events + small_total):
            position += 1
            if position % 100 == 0 and small_done < small_total:
                stream = small[small_done % len(small)]
                small_done += 1
                writer.add(_event(stream, position, *_small_op(stream, stream.version + 1)), stream)
                continue
            if big.version >= events:
                stream = small[small_done % len(small)]
                small_done += 1
                writer.add(_event(stream, position, *_small_op(stream, stream.version + 1)), stream)
                continue
            op, key, value = _big_op(big, big.version + 1)
            removed_history_key = op == "clear" and HISTORY_KEY in big.state
            writer.add(_event(big, position, op, key, value), big)
            if key == HISTORY_KEY or removed_history_key:
                history_events += 1
            if big.version == as_of_version:
                as_of_position = position
                as_of_state = {k: json.loads(t) for k, (t, _, _) in big.state.items()}
        writer.flush()
        keys = _finish(engine, [big, *small], position, None)
    finally:
        engine.dispose()
    return LargeDataset(
        events=position,
        big_events=big.version,
        assets=1 + len(small),
        keys=keys,
        as_of_position=as_of_position,
        as_of_state=as_of_state,
        history_key=HISTORY_KEY,
        history_key_events=history_events,
        load_seconds=perf_counter() - started,
    )


def analyze(url: str) -> None:
    """Refresh the planner's statistics after a bulk load, as autovacuum (PostgreSQL) and InnoDB's
    automatic statistics (MariaDB) soon would on a live database; SQLite keeps its defaults (eventstore
    never runs ANALYZE there)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE")
            elif engine.dialect.name in ("mysql", "mariadb"):
                names = ", ".join(t.name for t in schema.metadata.sorted_tables)
                conn.exec_driver_sql(f"ANALYZE TABLE {names}").all()
    finally:
        engine.dispose()


def load_inactive(url: str, assets: int, events_each: int, tag: str, interleave: int = 1) -> int:
    """Append `assets` deactivated assets of `events_each` events (activate, sets, deactivate) each,
    deactivated a day ago; return the number of events written. The streams of each group of
    `interleave` assets take turns, one version each (1: every stream's events are contiguous)."""
    engine = sa.create_engine(url)
    try:
        head, top = _head(engine)
        streams = [
            _Stream(Asset(f"bench-gone-{tag}-{i:05d}"), top + 1 + i, active=False) for i in range(assets)
        ]
        _register(engine, streams)
        writer = _Writer(engine)
        position = head
        for first in range(0, assets, max(1, interleave)):
            group = streams[first : first + max(1, interleave)]
            for version in range(1, events_each + 1):
                for stream in group:
                    position += 1
                    if version == 1:
                        row = _event(stream, position, "activate", None, None)
                    elif version == events_each:
                        row = _event(stream, position, "deactivate", None, None)
                    else:
                        row = _event(stream, position, "set", f"k{version % 10}", f'{{"n":{version}}}')
                    writer.add(row, stream)
        writer.flush()
        # An inactive asset keeps its view rows until compaction removes them.
        _finish(engine, streams, position, datetime.now(UTC) - timedelta(days=1))
    finally:
        engine.dispose()
    return position - head
