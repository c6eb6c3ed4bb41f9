"""What-if measurements for the optimisation of `set` and `get`: `python -m benchmarks.prototypes`.

These are not eventstore's code. Each prototype writes (or reads) exactly the rows eventstore's `set`
(`get`) writes (reads), on eventstore's schema, in a fresh `eventstore_proto` database, so its latency
shows what a change to the write or read path would buy before anyone makes it. They skip eventstore's
key/value validation (a few µs) and the snapshot every 1,000 versions. They run interleaved with the
current eventstore call, the plain SQLAlchemy baselines of `benchmarks.readwrite` and (SQLite,
PostgreSQL) eventsourcing's save; ratios to the plain baseline are paired per repetition.

set prototypes (one asset, keys cycling over 10, like readwrite):
- `raw, same statements`: eventstore's current statements (claim, read old value, upsert the view,
  advance the head, insert the event) through the raw driver: what SQLAlchemy costs.
- SQLite `exec_driver_sql, same statements`: the same SQL strings through an engine set up as
  eventstore's (`Database`), in a `BEGIN IMMEDIATE` transaction: SQLAlchemy without compiling or
  cache-key generation.
- PostgreSQL `claim + 1 CTE (4 round trips)`: BEGIN, the claim (UPDATE ... RETURNING takes the row lock),
  then one statement with data-modifying CTEs that reads the old value, upserts the view, advances the
  head and inserts the event (its snapshot is taken after the lock, so `previous` is right), COMMIT.
- PostgreSQL `1 CTE statement, autocommit (1 round trip)`: everything in one statement with an
  optimistic guard: the claim only updates the asset row if its version is still the one the
  statement's snapshot read, so a concurrent writer of the same asset makes it change nothing (0 rows;
  the caller runs it again) instead of recording a stale `previous`. Also through SQLAlchemy
  (`exec_driver_sql` on an autocommit engine), which is how eventstore would run it.
- MariaDB `LAST_INSERT_ID (6 round trips)`: `version = LAST_INSERT_ID(version + 1)` and `position =
  LAST_INSERT_ID(position + 1)` return the new values in the OK packet (no SELECT after each UPDATE),
  the event and view rows take their time from the locked asset row (INSERT ... SELECT), the asset id is
  cached (ids never change), and no reset ROLLBACK after COMMIT.

get prototypes:
- `raw, same query`: eventstore's lookup (active check + value in one query) on a held raw connection
  in autocommit: the floor of the current query.
- `SQLAlchemy, autocommit engine`: the same Core statement through an engine created with
  `isolation_level="AUTOCOMMIT"` (no BEGIN/COMMIT; no eventstore `begin` hook on SQLite) and
  `pool_reset_on_return=None`.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from benchmarks import databases, peer, readwrite
from benchmarks.databases import BenchDatabase, DbName
from benchmarks.stats import Stats, interleave, paired_ratio
from eventstore import Asset, open_store
from eventstore.database import Database
from eventstore.dialects import WRITE_OPTION

ASSET = Asset("bench-proto")
_WRITER = ("api", None, None, None, None, None)
_VIEW_COLUMNS = (
    "asset_id, {key}, value, version, updated_at, updated_by_kind, updated_by_dag_id, updated_by_run_id, "
    "updated_by_task_id, updated_by_map_index, updated_by_try_number"
)
_EVENT_COLUMNS = (
    "{pos}, asset_id, version, op, {key}, value, previous, writer_kind, writer_dag_id, writer_run_id, "
    "writer_task_id, writer_map_index, writer_try_number, recorded_at"
)
_VIEW_UPDATE = (
    "value = {x}value, version = {x}version, updated_at = {x}updated_at, "
    "updated_by_kind = {x}updated_by_kind, "
    "updated_by_dag_id = {x}updated_by_dag_id, updated_by_run_id = {x}updated_by_run_id, "
    "updated_by_task_id = {x}updated_by_task_id, updated_by_map_index = {x}updated_by_map_index, "
    "updated_by_try_number = {x}updated_by_try_number"
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores DATETIME on SQLite


# --- set prototypes --------------------------------------------------------------------------------


def sqlite_variants(db: BenchDatabase) -> tuple[dict[str, Callable[[str, str], None]], Callable[[], None]]:
    conn = db.raw_connect()
    h = ASSET.identity_hash
    claim = (
        "UPDATE es_assets SET version = version + 1, last_recorded_at = CASE WHEN last_recorded_at > ? "
        "THEN last_recorded_at ELSE ? END WHERE identity_hash = ? AND EXISTS (SELECT 1 FROM es_asset_active "
        "WHERE es_asset_active.asset_id = es_assets.id) RETURNING id, version, last_recorded_at"
    )
    read = "SELECT value FROM es_state WHERE asset_id = ? AND key IN (?)"
    view = (
        f"INSERT INTO es_state ({_VIEW_COLUMNS.format(key='key')}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        f"ON CONFLICT (asset_id, key) DO UPDATE SET {_VIEW_UPDATE.format(x='excluded.')}"
    )
    head = "UPDATE es_log_head SET position = position + 1 WHERE id = 1 RETURNING position"
    columns = _EVENT_COLUMNS.format(pos="position", key="key")
    event = f"INSERT INTO es_events ({columns}) VALUES ({', '.join('?' * 14)})"

    database = Database(db.url)

    def through_sqlalchemy(key: str, text: str) -> None:
        now = _sqlite_time(_now())
        with database.engine.connect() as sa_conn:
            sa_conn.execution_options(**{WRITE_OPTION: True})  # BEGIN IMMEDIATE, as eventstore
            with sa_conn.begin():
                asset_id, version, at = sa_conn.exec_driver_sql(claim, (now, now, h)).one()
                old = sa_conn.exec_driver_sql(read, (asset_id, key)).first()
                sa_conn.exec_driver_sql(view, (asset_id, key, text, version, at, *_WRITER))
                position = sa_conn.exec_driver_sql(head).scalar_one()
                sa_conn.exec_driver_sql(
                    event, (position, asset_id, version, "set", key, text, old and old[0], *_WRITER, at)
                )

    def close() -> None:
        conn.close()
        database.dispose()

    def op(key: str, text: str) -> None:
        now = _sqlite_time(_now())
        conn.execute("BEGIN IMMEDIATE")
        asset_id, version, at = conn.execute(claim, (now, now, h)).fetchone()
        old = conn.execute(read, (asset_id, key)).fetchone()
        conn.execute(view, (asset_id, key, text, version, at, *_WRITER))
        position = conn.execute(head).fetchone()[0]
        conn.execute(event, (position, asset_id, version, "set", key, text, old and old[0], *_WRITER, at))
        conn.execute("COMMIT")

    return {"raw, same statements": op, "exec_driver_sql, same statements": through_sqlalchemy}, close


def postgres_variants(db: BenchDatabase) -> tuple[dict[str, Callable[[str, str], None]], Callable[[], None]]:
    import psycopg

    url = sa.make_url(db.url)
    txn = psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)
    auto = db.raw_connect()
    h = ASSET.identity_hash
    claim = (
        "UPDATE es_assets SET version = version + 1, last_recorded_at = GREATEST(last_recorded_at, %(now)s) "
        "WHERE identity_hash = %(h)s AND EXISTS (SELECT 1 FROM es_asset_active "
        "WHERE es_asset_active.asset_id = es_assets.id) RETURNING id, version, last_recorded_at"
    )
    read = "SELECT value FROM es_state WHERE asset_id = %(a)s AND key = %(k)s"
    values = "%(a)s, %(k)s, %(val)s, %(v)s, %(at)s, 'api', NULL, NULL, NULL, NULL, NULL"
    view = (
        f"INSERT INTO es_state ({_VIEW_COLUMNS.format(key='key')}) VALUES ({values}) "
        f"ON CONFLICT (asset_id, key) DO UPDATE SET {_VIEW_UPDATE.format(x='excluded.')}"
    )
    head = "SELECT nextval('es_event_positions')"  # PostgreSQL's positions (eventstore.ordering)
    event = (
        f"INSERT INTO es_events ({_EVENT_COLUMNS.format(pos='position', key='key')}) VALUES "
        "(%(p)s, %(a)s, %(v)s, 'set', %(k)s, %(val)s, %(old)s, 'api', NULL, NULL, NULL, NULL, NULL, %(at)s)"
    )
    merged = (
        "WITH old AS (SELECT value FROM es_state WHERE asset_id = %(a)s AND key = %(k)s), "
        f"view AS (INSERT INTO es_state ({_VIEW_COLUMNS.format(key='key')}) VALUES ({values}) "
        f"ON CONFLICT (asset_id, key) DO UPDATE SET {_VIEW_UPDATE.format(x='excluded.')}), "
        "head AS (SELECT nextval('es_event_positions') AS position) "
        f"INSERT INTO es_events ({_EVENT_COLUMNS.format(pos='position', key='key')}) "
        "SELECT head.position, %(a)s, %(v)s, 'set', %(k)s, %(val)s, (SELECT value FROM old), "
        "'api', NULL, NULL, NULL, NULL, NULL, %(at)s FROM head RETURNING position"
    )
    one = (
        "WITH snap AS (SELECT id, version FROM es_assets WHERE identity_hash = %(h)s AND EXISTS "
        "(SELECT 1 FROM es_asset_active WHERE es_asset_active.asset_id = es_assets.id)), "
        "claim AS (UPDATE es_assets SET version = es_assets.version + 1, "
        "last_recorded_at = GREATEST(es_assets.last_recorded_at, %(now)s) FROM snap "
        "WHERE es_assets.id = snap.id AND es_assets.version = snap.version "
        "RETURNING es_assets.id, es_assets.version, es_assets.last_recorded_at), "
        "old AS (SELECT value FROM es_state WHERE asset_id = (SELECT id FROM snap) AND key = %(k)s), "
        f"view AS (INSERT INTO es_state ({_VIEW_COLUMNS.format(key='key')}) "
        "SELECT claim.id, %(k)s, %(val)s, claim.version, claim.last_recorded_at, 'api', NULL, NULL, NULL, "
        "NULL, NULL FROM claim ON CONFLICT (asset_id, key) DO UPDATE SET "
        f"{_VIEW_UPDATE.format(x='excluded.')}), "
        "head AS (SELECT nextval('es_event_positions') AS position FROM claim) "
        f"INSERT INTO es_events ({_EVENT_COLUMNS.format(pos='position', key='key')}) "
        "SELECT head.position, claim.id, claim.version, 'set', %(k)s, %(val)s, (SELECT value FROM old), "
        "'api', NULL, NULL, NULL, NULL, NULL, claim.last_recorded_at FROM claim, head RETURNING position"
    )

    def same(key: str, text: str) -> None:
        with txn.cursor() as cur:
            cur.execute(claim, {"now": _now(), "h": h})
            asset_id, version, at = cur.fetchone()  # type: ignore[misc]
            p = {"a": asset_id, "k": key, "val": text, "v": version, "at": at}
            cur.execute(read, p)
            old = cur.fetchone()
            cur.execute(view, p)
            cur.execute(head)
            position = cur.fetchone()[0]  # type: ignore[index]
            cur.execute(event, {**p, "p": position, "old": old and old[0]})
        txn.commit()

    def claim_and_cte(key: str, text: str) -> None:
        with txn.cursor() as cur:
            cur.execute(claim, {"now": _now(), "h": h})
            asset_id, version, at = cur.fetchone()  # type: ignore[misc]
            cur.execute(merged, {"a": asset_id, "k": key, "val": text, "v": version, "at": at})
        txn.commit()

    def one_statement(key: str, text: str) -> None:
        with auto.cursor() as cur:
            while True:
                cur.execute(one, {"h": h, "now": _now(), "k": key, "val": text})
                if cur.fetchone() is not None:
                    return  # else a concurrent writer of this asset won the race: run it again

    autocommit_engine = sa.create_engine(db.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)

    def one_statement_sqlalchemy(key: str, text: str) -> None:
        with autocommit_engine.connect() as conn:
            while conn.exec_driver_sql(one, {"h": h, "now": _now(), "k": key, "val": text}).first() is None:
                pass  # a concurrent writer of this asset won the race: run it again

    def close() -> None:
        txn.close()
        auto.close()
        autocommit_engine.dispose()

    return {
        "raw, same statements": same,
        "claim + 1 CTE (4 round trips)": claim_and_cte,
        "1 CTE statement, autocommit (1 round trip)": one_statement,
        "same 1 CTE via SQLAlchemy exec_driver_sql": one_statement_sqlalchemy,
    }, close


def mysql_variants(db: BenchDatabase) -> tuple[dict[str, Callable[[str, str], None]], Callable[[], None]]:
    conn = db.raw_connect()
    conn.autocommit(False)
    h = ASSET.identity_hash
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM es_assets WHERE identity_hash = %s", (h,))
        asset_id = cur.fetchone()[0]
    conn.commit()
    active = "EXISTS (SELECT 1 FROM es_asset_active WHERE es_asset_active.asset_id = es_assets.id)"
    claim = (
        "UPDATE es_assets SET version = version + 1, "
        "last_recorded_at = GREATEST(COALESCE(last_recorded_at, %s), %s) "
        f"WHERE identity_hash = %s AND {active}"
    )
    claimed = "SELECT id, version, last_recorded_at FROM es_assets WHERE identity_hash = %s"
    read = "SELECT value FROM es_state WHERE asset_id = %s AND `key` = %s"
    view = (
        f"INSERT INTO es_state ({_VIEW_COLUMNS.format(key='`key`')}) "
        "VALUES (%s, %s, %s, %s, %s, 'api', NULL, NULL, NULL, NULL, NULL) "
        f"ON DUPLICATE KEY UPDATE {_VIEW_UPDATE.format(x='VALUES(').replace(', ', '), ')})"
    )
    view = _fix_values(view)
    head = "UPDATE es_log_head SET `position` = `position` + 1 WHERE id = 1"
    head_read = "SELECT `position` FROM es_log_head WHERE id = 1"
    event = (
        f"INSERT INTO es_events ({_EVENT_COLUMNS.format(pos='`position`', key='`key`')}) VALUES "
        "(%s, %s, %s, 'set', %s, %s, %s, 'api', NULL, NULL, NULL, NULL, NULL, %s)"
    )
    claim_lid = (
        "UPDATE es_assets SET version = LAST_INSERT_ID(version + 1), "
        f"last_recorded_at = GREATEST(COALESCE(last_recorded_at, %s), %s) WHERE id = %s AND {active}"
    )
    view_select = (
        f"INSERT INTO es_state ({_VIEW_COLUMNS.format(key='`key`')}) "
        "SELECT id, %s, %s, version, last_recorded_at, "
        "'api', NULL, NULL, NULL, NULL, NULL FROM es_assets WHERE id = %s "
        f"ON DUPLICATE KEY UPDATE {_VIEW_UPDATE.format(x='VALUES(').replace(', ', '), ')})"
    )
    view_select = _fix_values(view_select)
    head_lid = "UPDATE es_log_head SET `position` = LAST_INSERT_ID(`position` + 1) WHERE id = 1"
    event_select = (
        f"INSERT INTO es_events ({_EVENT_COLUMNS.format(pos='`position`', key='`key`')}) "
        "SELECT %s, id, version, 'set', %s, %s, %s, 'api', NULL, NULL, NULL, NULL, NULL, last_recorded_at "
        "FROM es_assets WHERE id = %s"
    )

    def same(key: str, text: str) -> None:
        k = key.encode()
        now = _now()
        with conn.cursor() as cur:
            cur.execute(claim, (now, now, h))
            cur.execute(claimed, (h,))
            a, version, at = cur.fetchone()
            cur.execute(read, (a, k))
            old = cur.fetchone()
            cur.execute(view, (a, k, text, version, at))
            cur.execute(head)
            cur.execute(head_read)
            position = cur.fetchone()[0]
            cur.execute(event, (position, a, version, k, text, old and old[0], at))
        conn.commit()

    def last_insert_id(key: str, text: str) -> None:
        k = key.encode()
        now = _now()
        with conn.cursor() as cur:
            if not cur.execute(claim_lid, (now, now, asset_id)):
                raise RuntimeError("asset not active")
            cur.execute(read, (asset_id, k))
            old = cur.fetchone()
            cur.execute(view_select, (k, text, asset_id))
            cur.execute(head_lid)
            position = cur.lastrowid
            cur.execute(event_select, (position, k, text, old and old[0], asset_id))
        conn.commit()

    return {"raw, same statements": same, "LAST_INSERT_ID (6 round trips)": last_insert_id}, conn.close


def _fix_values(sql: str) -> str:
    """`VALUES(col` pieces from the template -> `VALUES(col)` (MariaDB's ON DUPLICATE KEY UPDATE)."""
    head, _, tail = sql.partition("ON DUPLICATE KEY UPDATE ")
    parts = [p.strip() for p in tail.split("),")]
    fixed = ", ".join(p if p.endswith(")") else p + ")" for p in parts)
    return f"{head}ON DUPLICATE KEY UPDATE {fixed}"


# --- get prototypes --------------------------------------------------------------------------------


def get_variants(db: BenchDatabase) -> tuple[dict[str, Callable[[str], object]], Callable[[], None]]:
    from projections import current_state

    lookup: Any = current_state._lookup  # measurement only: eventstore's own get statement
    engine = sa.create_engine(db.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
    dialect = engine.dialect
    compiled = lookup.compile(dialect=dialect)
    raw_sql = str(compiled)
    names = compiled.positiontup or []
    raw = db.raw_connect()
    h = ASSET.identity_hash

    def raw_params(key: str) -> Any:
        k: Any = key.encode() if db.kind == "mysql" else key
        values = {"identity_hash": h, "key": k}
        if names:
            return tuple(values[n] for n in names)
        return values

    cursor = raw.cursor()

    def raw_get(key: str) -> object:
        cursor.execute(raw_sql, raw_params(key))
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError("asset not active")
        return None if row[1] is None else json.loads(row[1])

    def autocommit_get(key: str) -> object:
        with engine.connect() as conn:
            row = conn.execute(lookup, {"identity_hash": h, "key": key}).first()
        if row is None:
            raise RuntimeError("asset not active")
        return None if row.value is None else json.loads(row.value)

    def close() -> None:
        raw.close()
        engine.dispose()

    return {"raw, same query": raw_get, "SQLAlchemy, autocommit engine": autocommit_get}, close


# --- the harness -----------------------------------------------------------------------------------


def _by_index(fn: Callable[[str], object], keys: tuple[str, ...]) -> Callable[[int], object]:
    return lambda i: fn(keys[i % len(keys)])


def measure(kind: DbName, *, ops: int, reps: int) -> dict[str, dict[str, Stats]]:
    db = databases.create(kind, "eventstore_proto")
    found: dict[str, dict[str, Stats]] = {}
    try:
        store = open_store(db.url)
        baseline = Database(db.url)
        readwrite.create_plain_table(baseline.engine)
        store.activate(ASSET)
        state = store.asset(ASSET)
        keys = readwrite.KEYS
        state.set_many({k: readwrite.value_for(0) for k in keys})
        upsert = readwrite.plain_upsert(baseline.engine.dialect.name)
        counter = itertools.count()

        def batch(op: Callable[[int], object]) -> Callable[[], float]:
            def run() -> float:
                import time

                start = time.perf_counter()
                for _ in range(ops):
                    op(next(counter))
                return (time.perf_counter() - start) / ops * 1e6

            return run

        def sa_set(i: int) -> None:
            text = orjson.dumps(readwrite.value_for(i)).decode()
            with baseline.engine.begin() as conn:
                conn.execute(upsert, {"asset_id": readwrite.SA_SET, "key": keys[i % 10], "value": text})

        def adapt(fn: Callable[[str, str], None]) -> Callable[[int], None]:
            return lambda i: fn(keys[i % 10], orjson.dumps(readwrite.value_for(i)).decode())

        set_ops: dict[str, Callable[[int], object]] = {
            "eventstore set (now)": lambda i: state.set(keys[i % 10], readwrite.value_for(i)),
            "plain upsert, SQLAlchemy": sa_set,
        }
        closers: list[Callable[[], None]] = []
        if kind == "sqlite":
            ops_sqlite, close = sqlite_variants(db)
            set_ops.update({name: adapt(fn) for name, fn in ops_sqlite.items()})
            closers.append(close)
        elif kind == "postgres":
            ops_pg, close = postgres_variants(db)
            set_ops.update({name: adapt(fn) for name, fn in ops_pg.items()})
            closers.append(close)
        else:
            ops_my, close = mysql_variants(db)
            set_ops.update({name: adapt(fn) for name, fn in ops_my.items()})
            closers.append(close)

        if peer.unavailable(kind) is None:
            writer = peer.PeerWriter(db, asset_name="bench-proto-peer")
            set_ops["eventsourcing save"] = lambda i: writer.set(keys[i % 10], readwrite.value_for(i))
            closers.append(writer.close)

        gets, close = get_variants(db)
        closers.append(close)

        def sa_get(i: int) -> object:
            with baseline.engine.connect() as conn:
                text = conn.execute(
                    readwrite.plain_select, {"asset_id": readwrite.SA_GET, "key": keys[i % 10]}
                ).scalar()
            return None if text is None else json.loads(text)

        with baseline.engine.begin() as conn:
            conn.execute(
                readwrite.plain_state.insert(),
                [{"asset_id": readwrite.SA_GET, "key": k, "value": "{}"} for k in keys],
            )
        get_ops: dict[str, Callable[[int], object]] = {
            "eventstore get (now)": lambda i: state.get(keys[i % 10]),
            "plain select, SQLAlchemy": sa_get,
            **{name: _by_index(fn, keys) for name, fn in gets.items()},
        }
        try:
            for section, variants, n in (("set", set_ops, ops), ("get", get_ops, ops * 5)):
                for op_ in variants.values():  # warm up
                    for _ in range(30):
                        op_(next(counter))
                samples = interleave({name: batch(op_) for name, op_ in variants.items()}, reps)
                del n
                base = "plain upsert, SQLAlchemy" if section == "set" else "plain select, SQLAlchemy"
                found[section] = {name: Stats(tuple(values)) for name, values in samples.items()}
                found[f"{section} ratio vs plain"] = {
                    name: paired_ratio(values, samples[base]) for name, values in samples.items()
                }
            with open_store(db.url, migrate=False) as check:
                drift = check.verify_projections() if hasattr(check, "verify_projections") else []
            if drift:
                raise AssertionError(f"a prototype left the view inconsistent with the log: {drift[:3]}")
        finally:
            for close_ in closers:
                close_()
            baseline.dispose()
            store.close()
    finally:
        databases.drop(db)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.prototypes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--db", action="append", choices=databases.DATABASES, help="repeatable; default: all")
    parser.add_argument("--ops", type=int, default=200, help="set ops per variant per repetition (get: 5×)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    for kind in tuple(args.db) if args.db else databases.DATABASES:
        found = measure(kind, ops=args.ops, reps=args.reps)
        print(f"== {kind} ==")
        for section in ("set", "get"):
            ratios = found[f"{section} ratio vs plain"]
            for name, stats in found[section].items():
                print(
                    f"  {section}  {name:45s} {stats.median:8.0f} µs/op  ({stats.low:.0f}–{stats.high:.0f})  "
                    f"{ratios[name].median:5.2f}× plain"
                )
        print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
