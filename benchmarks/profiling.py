"""Where the time of one `set` or `get` goes: `python -m benchmarks.profiling --db sqlite|postgres|mysql`.

For eventstore's `state.set` / `state.get` and the plain SQLAlchemy baselines of `benchmarks.readwrite`
(the upsert in its own transaction, the primary-key select), on a fresh `eventstore_profile` database:

1. An instrumented run without a profiler (so the times are real):
   - statements per op, by SQL text (SQLAlchemy `before_cursor_execute`), and how SQLAlchemy's compiled
     cache answered for each (`context.cache_hit`: hit, miss = compiled again, or no cache key);
   - round trips to the server per op, counted exactly: on PostgreSQL with libpq's protocol trace
     (`ReadyForQuery` messages: one per round trip, so psycopg's separate `BEGIN` counts), on MariaDB by
     counting PyMySQL's commands (COM_QUERY: every statement, COMMIT, and ROLLBACK); SQLite has none
     (it runs in-process), its statements are library calls and its cost is the fsync at COMMIT;
   - pool checkouts, BEGIN/COMMIT/ROLLBACK per op;
   - wall time per op split into: inside the driver's `execute` (network + server work), inside COMMIT
     (the durable flush), and everything else (Python: eventstore, SQLAlchemy, the driver's Python).
2. The same ops under cProfile, with the cumulative time of a few buckets that matter (SQLAlchemy's
   compile-or-cache lookup, statement construction, pool checkout, JSON codec, the driver) per op.
   cProfile inflates Python time, so read its figures as shares, not as latencies.

Writes benchmarks/results/profile-<db>.json and profile-<db>-<variant>.pstats (open with `python -m
pstats` or snakeviz). For a sampling profile without cProfile's overhead:
`py-spy record -o set.svg -- .venv/bin/python -m benchmarks.profiling --db postgres --only set --no-cprofile`.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import itertools
import json
import os
import pstats
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from benchmarks import databases, readwrite
from benchmarks.databases import BenchDatabase, DbName
from eventstore import Asset, open_store
from eventstore.database import Database
from eventstore.prepared import Prepared

RESULTS = Path(__file__).parent / "results"
ASSET = Asset("bench-profile")


@dataclass
class Trace:
    """What the instrumented run saw, summed over `ops` operations."""

    ops: int = 0
    statements: Counter[str] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)
    round_trips: int | None = None
    checkouts: int = 0
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    seconds_total: float = 0.0
    seconds_execute: float = 0.0
    seconds_commit: float = 0.0
    seconds_rollback: float = 0.0

    def per_op(self) -> dict[str, Any]:
        n = self.ops or 1
        us = 1e6 / n
        other = self.seconds_total - self.seconds_execute - self.seconds_commit - self.seconds_rollback
        return {
            "ops": self.ops,
            "us_per_op": self.seconds_total * us,
            "us_in_driver_execute": self.seconds_execute * us,
            "us_in_commit": self.seconds_commit * us,
            "us_in_rollback": self.seconds_rollback * us,
            "us_python_and_other": other * us,
            "statements_per_op": sum(self.statements.values()) / n,
            "round_trips_per_op": None if self.round_trips is None else self.round_trips / n,
            "checkouts_per_op": self.checkouts / n,
            "begins_per_op": self.begins / n,
            "commits_per_op": self.commits / n,
            "rollbacks_per_op": self.rollbacks / n,
            "statements": {sql: count / n for sql, count in self.statements.most_common()},
            "compiled_cache": {status: count / n for status, count in self.cache.most_common()},
        }


def _short(sql: str) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    text = re.sub(r"\(%\(\w+\)s(, %\(\w+\)s)+\)", "(…)", text)
    return text if len(text) <= 150 else text[:147] + "…"


@contextlib.contextmanager
def instrument(engines: Sequence[sa.Engine], kind: DbName) -> Iterator[Trace]:
    """Count statements, cache answers, transactions and round trips on `engines` while the block runs."""
    trace = Trace()
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        trace.statements[_short(statement)] += 1
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        trace.seconds_execute += time.perf_counter() - started.pop(id(cursor), time.perf_counter())
        status = getattr(context, "cache_hit", None)
        name = str(status) if status is not None else "n/a"
        trace.cache[name.rsplit(".", 1)[-1].replace("symbol(", "").strip(")'")] += 1

    def on_checkout(*_: Any) -> None:
        trace.checkouts += 1

    def on_begin(*_: Any) -> None:
        trace.begins += 1

    listeners: list[tuple[Any, str, Callable[..., None]]] = []
    patched: list[tuple[Any, Any, Any]] = []
    for engine in engines:
        listeners += [
            (engine, "before_cursor_execute", before),
            (engine, "after_cursor_execute", after),
            (engine, "begin", on_begin),
            (engine.pool, "checkout", on_checkout),
        ]
        dialect: Any = engine.dialect
        if any(dialect is d for d, _, _ in patched):
            continue
        original_commit, original_rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection: Any, original: Any = original_commit) -> None:
            trace.commits += 1
            t0 = time.perf_counter()
            original(dbapi_connection)
            trace.seconds_commit += time.perf_counter() - t0

        def do_rollback(dbapi_connection: Any, original: Any = original_rollback) -> None:
            trace.rollbacks += 1
            t0 = time.perf_counter()
            original(dbapi_connection)
            trace.seconds_rollback += time.perf_counter() - t0

        patched.append((dialect, original_commit, original_rollback))
        dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
    # Prepared statements (eventstore.prepared) run on the DBAPI cursor, past SQLAlchemy's events.
    original_execute = Prepared._execute

    def prepared_execute(self: Prepared, conn: Any, params: Any, *, many: bool = False) -> Any:
        trace.statements[_short(self.sql)] += 1
        trace.cache["prepared"] += 1
        t0 = time.perf_counter()
        try:
            return original_execute(self, conn, params, many=many)
        finally:
            trace.seconds_execute += time.perf_counter() - t0

    Prepared._execute = prepared_execute  # type: ignore[method-assign]
    for target, name, fn in listeners:
        sa.event.listen(target, name, fn)
    with _round_trips(engines, kind) as count:
        t0 = time.perf_counter()
        try:
            yield trace
        finally:
            trace.seconds_total = time.perf_counter() - t0
            for target, name, fn in listeners:
                sa.event.remove(target, name, fn)
            for dialect, original_commit, original_rollback in patched:
                dialect.do_commit, dialect.do_rollback = original_commit, original_rollback
            Prepared._execute = original_execute  # type: ignore[method-assign]
    trace.round_trips = count()


@contextlib.contextmanager
def _round_trips(engines: Sequence[sa.Engine], kind: DbName) -> Iterator[Callable[[], int | None]]:
    """Count client/server round trips of the engines' connections while the block runs."""
    if kind == "postgres":
        from psycopg import pq

        handle, path = tempfile.mkstemp(prefix="pqtrace-", suffix=".txt")
        traced: list[Any] = []

        def on_checkout(dbapi_connection: Any, *_: Any) -> None:
            if dbapi_connection not in traced:
                dbapi_connection.pgconn.trace(handle)
                dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
                traced.append(dbapi_connection)

        for engine in engines:
            sa.event.listen(engine.pool, "checkout", on_checkout)
        result: list[int] = []
        try:
            yield lambda: result[0] if result else None
        finally:
            for engine in engines:
                sa.event.remove(engine.pool, "checkout", on_checkout)
            for dbapi_connection in traced:
                dbapi_connection.pgconn.untrace()
            os.close(handle)
            with open(path) as lines:
                # Every round trip ends with the server's ReadyForQuery.
                result.append(sum(1 for line in lines if "\tReadyForQuery" in line and line.startswith("B")))
            os.unlink(path)
    elif kind == "mysql":
        import pymysql.connections

        commands = [0]
        connection_class: Any = pymysql.connections.Connection
        original = connection_class._execute_command

        def counted(self: Any, command: int, sql: Any) -> Any:
            commands[0] += 1
            return original(self, command, sql)

        connection_class._execute_command = counted
        try:
            yield lambda: commands[0]
        finally:
            connection_class._execute_command = original
    else:
        yield lambda: None


# --- cProfile buckets ----------------------------------------------------------------------------

BUCKETS: dict[str, tuple[str, ...]] = {
    "SQLAlchemy compile or cache lookup (_compile_w_cache)": ("sqlalchemy/sql/elements.py:_compile_w_cache",),
    "  of which cache key generation": ("sqlalchemy/sql/cache_key.py:_generate_cache_key",),
    "  of which compiling (cache misses)": ("sqlalchemy/sql/elements.py:_compiler",),
    "statement construction in eventstore (dialects.upsert)": ("eventstore/dialects.py:upsert",),
    "pool checkout + Connection (Engine.connect)": ("sqlalchemy/engine/base.py:connect",),
    "SQLAlchemy execute (Connection.execute, incl. driver)": ("sqlalchemy/engine/base.py:execute",),
    "driver execute": (
        "psycopg/cursor.py:execute",
        "pymysql/cursors.py:execute",
        "~:<method 'execute' of 'sqlite3.Cursor' objects>",
        "~:<method 'execute' of 'sqlite3.Connection' objects>",
    ),
    "driver commit": (
        "psycopg/connection.py:commit",
        "pymysql/connections.py:commit",
        "~:<method 'commit' of 'sqlite3.Connection' objects>",
    ),
    "result rows (fetch, processors)": (
        "sqlalchemy/engine/result.py:first",
        "sqlalchemy/engine/result.py:scalar",
    ),
    "JSON codec (eventstore.codec)": ("eventstore/codec.py:encode", "eventstore/codec.py:decode"),
}


def _bucket_times(stats: pstats.Stats, ops: int) -> dict[str, float]:
    """Cumulative µs per op of each bucket (a function counted once even if it recurses)."""
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for bucket, patterns in BUCKETS.items():
        total = 0.0
        for (filename, _line, function), (_cc, _nc, _tt, cumulative, _callers) in table.items():
            label = f"{filename}:{function}"
            if any(label.endswith(p) or (p.startswith("~:") and label == p) for p in patterns):
                total += cumulative
        out[bucket] = total / ops * 1e6
    return out


def _top(stats: pstats.Stats, ops: int, n: int = 15) -> list[dict[str, Any]]:
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    rows = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:n]
    return [
        {
            "function": f"{Path(f).name}:{line}({fn})" if f != "~" else fn,
            "calls_per_op": nc / ops,
            "tottime_us_per_op": tt / ops * 1e6,
            "cumtime_us_per_op": ct / ops * 1e6,
        }
        for (f, line, fn), (_cc, nc, tt, ct, _callers) in rows
    ]


# --- the variants ----------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    engines: list[sa.Engine]
    op: Callable[[int], object]


def _variants(db: BenchDatabase, only: tuple[str, ...]) -> tuple[list[Variant], Callable[[], None]]:
    store = open_store(db.url)
    baseline = Database(db.url)
    readwrite.create_plain_table(baseline.engine)
    store.activate(ASSET)
    state = store.asset(ASSET)
    keys = readwrite.KEYS
    upsert = readwrite.plain_upsert(baseline.engine.dialect.name)
    state.set_many({k: readwrite.value_for(0) for k in keys})
    with baseline.engine.begin() as conn:
        conn.execute(
            upsert,
            [
                {
                    "asset_id": readwrite.SA_GET,
                    "key": k,
                    "value": orjson.dumps(readwrite.value_for(0)).decode(),
                }
                for k in keys
            ],
        )

    def es_set(i: int) -> None:
        state.set(keys[i % len(keys)], readwrite.value_for(i))

    def sa_set(i: int) -> None:
        text = orjson.dumps(readwrite.value_for(i)).decode()
        with baseline.engine.begin() as conn:
            conn.execute(upsert, {"asset_id": readwrite.SA_SET, "key": keys[i % len(keys)], "value": text})

    def es_get(i: int) -> object:
        return state.get(keys[i % len(keys)])

    def sa_get(i: int) -> object:
        with baseline.engine.connect() as conn:
            text = conn.execute(
                readwrite.plain_select, {"asset_id": readwrite.SA_GET, "key": keys[i % len(keys)]}
            ).scalar()
        return None if text is None else json.loads(text)

    # Measurement only: every engine eventstore's Database holds (one for transactions, maybe more).
    engines = [e for e in vars(store._db).values() if isinstance(e, sa.Engine)]
    plain = [baseline.engine]
    variants = []
    if "set" in only:
        variants += [Variant("eventstore set", engines, es_set), Variant("sqlalchemy upsert", plain, sa_set)]
    if "get" in only:
        variants += [Variant("eventstore get", engines, es_get), Variant("sqlalchemy select", plain, sa_get)]

    def close() -> None:
        baseline.dispose()
        store.close()

    return variants, close


def profile(kind: DbName, *, ops: int, only: tuple[str, ...], with_cprofile: bool) -> dict[str, Any]:
    db = databases.create(kind, "eventstore_profile")
    found: dict[str, Any] = {"db": kind, "ops": ops, "variants": {}}
    try:
        variants, close = _variants(db, only)
        try:
            counter = itertools.count()
            for variant in variants:
                for _ in range(50):  # warm up: connections, compiled cache, prepared statements
                    variant.op(next(counter))
                with instrument(variant.engines, kind) as trace:
                    for _ in range(ops):
                        variant.op(next(counter))
                trace.ops = ops
                entry: dict[str, Any] = {"trace": trace.per_op()}
                if with_cprofile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    for _ in range(ops):
                        variant.op(next(counter))
                    profiler.disable()
                    stats = pstats.Stats(profiler)
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    stats.dump_stats(RESULTS / f"profile-{kind}-{variant.name.replace(' ', '-')}.pstats")
                    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.stats.values())  # type: ignore[attr-defined]
                    entry["cprofile_us_per_op"] = total / ops * 1e6
                    entry["buckets_us_per_op"] = _bucket_times(stats, ops)
                    entry["top_tottime"] = _top(stats, ops)
                found["variants"][variant.name] = entry
        finally:
            close()
    finally:
        databases.drop(db)
    return found


def render(found: dict[str, Any]) -> str:
    lines = [f"== {found['db']}: {found['ops']} ops per variant =="]
    for name, entry in found["variants"].items():
        t = entry["trace"]
        rt = "n/a (in-process)" if t["round_trips_per_op"] is None else f"{t['round_trips_per_op']:.2f}"
        lines.append(
            f"\n-- {name}: {t['us_per_op']:.0f} µs/op = driver execute {t['us_in_driver_execute']:.0f} + "
            f"commit {t['us_in_commit']:.0f} + rollback {t['us_in_rollback']:.0f} + "
            f"Python/other {t['us_python_and_other']:.0f}"
        )
        lines.append(
            f"   statements/op {t['statements_per_op']:.2f}, round trips/op {rt}, checkouts/op "
            f"{t['checkouts_per_op']:.2f}, begin {t['begins_per_op']:.2f}, commit {t['commits_per_op']:.2f}, "
            f"rollback {t['rollbacks_per_op']:.2f}"
        )
        lines.append(
            f"   compiled cache: {', '.join(f'{k} {v:.2f}' for k, v in t['compiled_cache'].items())}"
        )
        for sql, count in t["statements"].items():
            lines.append(f"   {count:4.2f}× {sql}")
        if "buckets_us_per_op" in entry:
            lines.append(
                f"   cProfile ({entry['cprofile_us_per_op']:.0f} µs/op under the profiler), cumulative:"
            )
            for bucket, us in entry["buckets_us_per_op"].items():
                if us:
                    lines.append(f"     {us:7.0f} µs  {bucket}")
            lines.append("   top functions by own time (µs/op):")
            for row in entry["top_tottime"][:10]:
                own, calls = row["tottime_us_per_op"], row["calls_per_op"]
                lines.append(f"     {own:7.1f}  ({calls:.1f} calls)  {row['function']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profiling", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--db", action="append", choices=databases.DATABASES, help="repeatable; default: all")
    parser.add_argument("--ops", type=int, default=1000, help="ops per variant (default 1000)")
    parser.add_argument("--only", action="append", choices=("set", "get"), help="default: both")
    parser.add_argument("--no-cprofile", action="store_true", help="only the instrumented run (for py-spy)")
    args = parser.parse_args(argv)
    only = tuple(args.only) if args.only else ("set", "get")
    for kind in tuple(args.db) if args.db else databases.DATABASES:
        found = profile(kind, ops=args.ops, only=only, with_cprofile=not args.no_cprofile)
        print(render(found), flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"profile-{kind}.json").write_text(json.dumps(found, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
