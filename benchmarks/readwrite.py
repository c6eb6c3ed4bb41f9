"""set and get: eventstore against what Airflow does today, and against the raw driver.

set, one committed transaction per op, the same keys and values (JSON text of the same value) in all:
- `eventstore`: `store.asset(a).set(key, value)`;
- `sqlalchemy upsert`: Airflow's way: `INSERT ... ON CONFLICT (asset_id, key) DO UPDATE` (`ON DUPLICATE
  KEY UPDATE` on MariaDB) into a plain two-column-key table, in its own transaction, through an engine
  built exactly as eventstore builds its own (`eventstore.database.Database`: on SQLite WAL,
  synchronous=FULL and an explicit BEGIN; READ COMMITTED on MariaDB);
- `raw upsert`: the same statement through the raw driver in autocommit: the floor;
- `eventsourcing` (SQLite and PostgreSQL; see `benchmarks.peer`): one aggregate per asset, one event
  per set, `app.save`.

get: `state.get(key)` vs a primary-key select of the value (decoded with `json.loads`, as eventstore
decodes) through the same kind of engine (connect, execute, close) and through the raw driver.

Every variant runs `ops` operations per repetition; the variants take turns (`stats.interleave`); the
sample of a repetition is its mean latency in µs per op.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from benchmarks import peer
from benchmarks.databases import BenchDatabase
from benchmarks.stats import interleave
from eventstore import Asset, open_store
from eventstore.database import Database

KEYS = tuple(f"key-{i}" for i in range(10))
SET_ASSET = Asset("bench-set")
GET_ASSET = Asset("bench-get")

# The plain table of Airflow's asset state store: (asset id, key) -> JSON text.
_metadata = sa.MetaData()
plain_state = sa.Table(
    "bench_plain_state",
    _metadata,
    sa.Column("asset_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# asset ids in the plain table, one per variant so no variant finds another's rows
SA_SET, RAW_SET, SA_GET = 1, 2, 3


def value_for(i: int) -> dict[str, Any]:
    """A typical watermark-plus-summary value, different at every op."""
    return {"watermark": "2024-06-01T00:00:00+00:00", "rows": i, "ok": True}


def plain_upsert(dialect: str) -> sa.Executable:
    """The SQLAlchemy Core upsert of the plain table, built once (so compiled once and cached)."""
    if dialect == "sqlite":
        sq = sqlite.insert(plain_state)
        return sq.on_conflict_do_update(index_elements=["asset_id", "key"], set_={"value": sq.excluded.value})
    if dialect == "postgresql":
        pg = postgresql.insert(plain_state)
        return pg.on_conflict_do_update(index_elements=["asset_id", "key"], set_={"value": pg.excluded.value})
    my = mysql.insert(plain_state)
    return my.on_duplicate_key_update(value=my.inserted.value)


plain_select = sa.select(plain_state.c.value).where(
    plain_state.c.asset_id == sa.bindparam("asset_id"), plain_state.c.key == sa.bindparam("key")
)


def raw_upsert_sql(db: BenchDatabase) -> str:
    p = db.paramstyle
    if db.kind == "mysql":
        return (
            f"INSERT INTO bench_plain_state (asset_id, `key`, value) VALUES ({p}, {p}, {p}) "
            "ON DUPLICATE KEY UPDATE value = VALUES(value)"
        )
    return (
        f"INSERT INTO bench_plain_state (asset_id, key, value) VALUES ({p}, {p}, {p}) "
        "ON CONFLICT (asset_id, key) DO UPDATE SET value = excluded.value"
    )


def raw_select_sql(db: BenchDatabase) -> str:
    p = db.paramstyle
    key = "`key`" if db.kind == "mysql" else "key"
    return f"SELECT value FROM bench_plain_state WHERE asset_id = {p} AND {key} = {p}"


def create_plain_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        plain_state.drop(conn, checkfirst=True)
        plain_state.create(conn)


@dataclass
class Measured:
    """Samples per variant (µs per op, one per repetition), and why a variant could not run."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _batch(op: Callable[[int], object], ops: int, counter: Iterator[int]) -> Callable[[], float]:
    def run() -> float:
        start = perf_counter()
        for _ in range(ops):
            op(next(counter))
        return (perf_counter() - start) / ops * 1e6

    return run


def measure_set(
    db: BenchDatabase, *, ops: int, reps: int, with_peer: bool = True, warmup: int = 20
) -> Measured:
    """eventstore `set` vs the plain upsert (SQLAlchemy, in a transaction) vs the raw upsert (autocommit)
    vs eventsourcing's `save`, interleaved; µs per op."""
    measured = Measured()
    store = open_store(db.url)
    baseline = Database(db.url)
    raw = db.raw_connect()
    writer: peer.PeerWriter | None = None
    try:
        create_plain_table(baseline.engine)
        store.activate(SET_ASSET)
        state = store.asset(SET_ASSET)
        upsert = plain_upsert(baseline.engine.dialect.name)
        raw_sql = raw_upsert_sql(db)
        cursor = raw.cursor()

        def es_set(i: int) -> None:
            state.set(KEYS[i % len(KEYS)], value_for(i))

        def sa_set(i: int) -> None:
            text = orjson.dumps(value_for(i)).decode()
            with baseline.engine.begin() as conn:
                conn.execute(upsert, {"asset_id": SA_SET, "key": KEYS[i % len(KEYS)], "value": text})

        def raw_set(i: int) -> None:
            text = orjson.dumps(value_for(i)).decode()
            cursor.execute(raw_sql, (RAW_SET, KEYS[i % len(KEYS)], text))

        ops_by_name: dict[str, Callable[[int], object]] = {
            "eventstore": es_set,
            "sqlalchemy": sa_set,
            "raw": raw_set,
        }
        if with_peer:
            reason = peer.unavailable(db.kind)
            if reason is None:
                writer = peer.PeerWriter(db)
                peer_writer = writer

                def peer_set(i: int) -> None:
                    peer_writer.set(KEYS[i % len(KEYS)], value_for(i))

                ops_by_name["eventsourcing"] = peer_set
            else:
                measured.skipped["eventsourcing"] = reason
        counter = itertools.count()
        for op in ops_by_name.values():  # warm up: connections, compiled statements, the first inserts
            _batch(op, warmup, counter)()
        measured.samples = interleave({n: _batch(op, ops, counter) for n, op in ops_by_name.items()}, reps)
    finally:
        if writer is not None:
            writer.close()
        raw.close()
        baseline.dispose()
        store.close()
    return measured


def measure_get(db: BenchDatabase, *, ops: int, reps: int, warmup: int = 50) -> Measured:
    """eventstore `get` vs a primary-key select through SQLAlchemy and through the raw driver; µs per op."""
    store = open_store(db.url)
    baseline = Database(db.url)
    raw = db.raw_connect()
    try:
        create_plain_table(baseline.engine)
        store.activate(GET_ASSET)
        state = store.asset(GET_ASSET)
        texts = {key: orjson.dumps(value_for(n)).decode() for n, key in enumerate(KEYS)}
        state.set_many({key: value_for(n) for n, key in enumerate(KEYS)})
        with baseline.engine.begin() as conn:
            conn.execute(
                plain_state.insert(), [{"asset_id": SA_GET, "key": k, "value": t} for k, t in texts.items()]
            )
        raw_sql = raw_select_sql(db)
        cursor = raw.cursor()

        def es_get(i: int) -> object:
            return state.get(KEYS[i % len(KEYS)])

        def sa_get(i: int) -> object:
            with baseline.engine.connect() as conn:
                text = conn.execute(plain_select, {"asset_id": SA_GET, "key": KEYS[i % len(KEYS)]}).scalar()
            return None if text is None else json.loads(text)

        def raw_get(i: int) -> object:
            cursor.execute(raw_sql, (SA_GET, KEYS[i % len(KEYS)]))
            row = cursor.fetchone()
            return None if row is None else json.loads(row[0])

        for name, op in (("eventstore", es_get), ("sqlalchemy", sa_get), ("raw", raw_get)):
            if op(0) != value_for(0):
                raise AssertionError(f"get benchmark: the {name} variant read a wrong value")
        ops_by_name: dict[str, Callable[[int], object]] = {
            "eventstore": es_get,
            "sqlalchemy": sa_get,
            "raw": raw_get,
        }
        counter = itertools.count()
        for op in ops_by_name.values():
            _batch(op, warmup, counter)()
        return Measured(interleave({n: _batch(op, ops, counter) for n, op in ops_by_name.items()}, reps))
    finally:
        raw.close()
        baseline.dispose()
        store.close()
