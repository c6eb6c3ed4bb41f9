"""Replay on a large log: rebuild, one key's history, as-of, compaction (see `bulk` for the data).

- rebuild: `store.rebuild_projections()` vs a raw streaming select-and-fold of the same rows (the raw
  driver's server-side cursor, `SELECT asset_id, op, key, value FROM es_events ORDER BY position`, folded
  into a dict per asset; it does not write the view back, eventstore's rebuild does). Each runs in a
  fresh process, so its peak RSS (VmHWM) is its own: the figure is the whole process (Python,
  SQLAlchemy, eventstore), not only what the rebuild added, which is reported beside it.
- history: `store.history(BIG, key, newest_first=True, limit=100)`: the last 100 changes of one key of
  the big stream; floor: the raw driver's `... WHERE asset_id = ? AND key = ? ORDER BY position DESC
  LIMIT 100`.
- as-of: `store.state_as_of(BIG, position=p)` with p three quarters through the big stream, checked
  against the fold computed while loading; floor: the raw driver streaming the stream's rows up to p and
  folding them (what an as-of without snapshots must do).
- compaction: per repetition, `bulk.load_inactive` appends deactivated assets, then
  `store.compact(grace=timedelta(0))` deletes them; events deleted per second of `compact`.
- compaction under writes: per repetition, `bulk.load_inactive` appends many small deactivated assets
  (their streams interleaved 100 at a time, as concurrent writers leave them); a spawned writer process
  sets a key on up to 10 of the log's small active assets in turn, `write_rate` times a second, one
  committed transaction per write, alone for `idle_seconds` and then while `compact` runs here. A
  write's latency counts from when it was due, so a write held up also delays, and is charged to, the
  ones queued behind it (no coordinated omission). Per repetition: the median, p95 and worst latency
  of the writes due while idle and of those due during `compact`, and its events deleted per second.
  Every write must succeed and be in the log, and `compact` must delete exactly the loaded events.

Each call of history and as-of is repeated until 0.2 s have passed and 3 calls were made (or 1 s, for
slow calls); the sample of a repetition is the mean latency in ms. Methods that do not exist yet (they
are being written against CONTRACT.md §5/§6) are reported as not measured.
"""

from __future__ import annotations

import json
import queue
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing import get_context
from time import perf_counter
from typing import Any

import sqlalchemy as sa

from benchmarks import bulk
from benchmarks.databases import BenchDatabase
from benchmarks.stats import interleave
from eventstore import Asset, Store, open_store, schema

MIN_SECONDS = 0.2
MIN_CALLS = 3
WRITTEN_KEY = "bench-counter"  # what the writer sets during compaction: a key no loaded stream has


def missing(name: str) -> str | None:
    """Why `Store.<name>` cannot be measured (None if it exists)."""
    if not callable(getattr(Store, name, None)):
        return f"Store.{name} does not exist yet in this tree (CONTRACT.md §5/§6): not measured"
    return None


# --- in a fresh process ----------------------------------------------------------------------------


def _rss_mb() -> float:
    """The peak resident set of this process so far, in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec, so a freshly spawned
    child would report its (large) parent's peak; VmHWM belongs to the process's own address space.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rebuild_child(url: str) -> dict[str, float]:
    store = open_store(url, migrate=False)
    try:
        base = _rss_mb()
        started = perf_counter()
        report = store.rebuild_projections()
        seconds = perf_counter() - started
        return {
            "seconds": seconds,
            "events": float(report.events),
            "keys": float(report.keys),
            "peak_mb": _rss_mb(),
            "base_mb": base,
        }
    finally:
        store.close()


def _fold(rows: Any, state: dict[int, dict[str, str]]) -> int:
    count = 0
    for asset_id, op, key, value in rows:
        count += 1
        if isinstance(key, bytes | bytearray):
            key = bytes(key).decode()
        current = state.get(asset_id)
        if current is None:
            current = state[asset_id] = {}
        if op == "set":
            current[key] = value
        elif op == "delete":
            current.pop(key, None)
        elif op == "clear":
            current.clear()
    return count


def raw_fold(
    db: BenchDatabase, where: str = "", params: tuple[Any, ...] = ()
) -> tuple[int, dict[int, dict[str, str]]]:
    """Stream `asset_id, op, key, value` of es_events (in position order) through the raw driver's
    server-side cursor and fold them; (rows read, state per asset id)."""
    sql = f"SELECT asset_id, op, key, value FROM es_events {where} ORDER BY position"
    if db.kind == "mysql":
        sql = sql.replace(" key,", " `key`,")
    conn = db.raw_connect()
    state: dict[int, dict[str, str]] = {}
    try:
        if db.kind == "sqlite":
            cursor = conn.execute(sql, params)
            count = _fold(cursor, state)  # sqlite3 steps through the result as it is iterated
        elif db.kind == "postgres":
            with conn.transaction(), conn.cursor(name="bench_fold") as cursor:
                cursor.itersize = 10_000
                cursor.execute(sql, params)
                count = _fold(cursor, state)
        else:
            import pymysql.cursors

            with conn.cursor(pymysql.cursors.SSCursor) as cursor:
                cursor.execute(sql, params)
                count = _fold(cursor, state)
    finally:
        conn.close()
    return count, state


def _raw_fold_child(db: BenchDatabase) -> dict[str, float]:
    base = _rss_mb()
    started = perf_counter()
    count, state = raw_fold(db)
    seconds = perf_counter() - started
    return {
        "seconds": seconds,
        "events": float(count),
        "keys": float(sum(len(s) for s in state.values())),
        "peak_mb": _rss_mb(),
        "base_mb": base,
    }


def _in_fresh_process(fn: Callable[..., dict[str, float]], *args: Any) -> dict[str, float]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as executor:
        return executor.submit(fn, *args).result()


# --- the harness -----------------------------------------------------------------------------------


@dataclass
class Replay:
    """Samples per measurement, and what could not be measured (name -> why)."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # wrong answers: become failed checks
    write_problems: list[str] | None = None  # compaction under writes: failed or missing writes
    dataset: bulk.LargeDataset | None = None


def _repeat(call: Callable[[], object]) -> float:
    """Mean ms per call over at least MIN_CALLS calls and MIN_SECONDS."""
    calls = 0
    started = perf_counter()
    while True:
        call()
        calls += 1
        elapsed = perf_counter() - started
        if elapsed >= MIN_SECONDS and (calls >= MIN_CALLS or elapsed >= 1.0):
            return elapsed / calls * 1000


def measure_rebuild(db: BenchDatabase, data: bulk.LargeDataset, reps: int, found: Replay) -> None:
    rebuilds: list[dict[str, float]] = []
    folds: list[dict[str, float]] = []

    def rebuild() -> float:
        result = _in_fresh_process(_rebuild_child, db.url)
        rebuilds.append(result)
        return result["events"] / result["seconds"]

    def fold() -> float:
        result = _in_fresh_process(_raw_fold_child, db)
        folds.append(result)
        return result["events"] / result["seconds"]

    variants: dict[str, Callable[[], float]] = {"raw fold": fold}
    why = missing("rebuild_projections")
    if why:
        found.skipped["rebuild"] = why
    else:
        variants["rebuild"] = rebuild
    samples = interleave(variants, reps)
    found.samples["rebuild events/s"] = samples.get("rebuild", [])
    found.samples["raw fold events/s"] = samples["raw fold"]
    found.samples["rebuild peak RSS"] = [r["peak_mb"] for r in rebuilds]
    found.samples["rebuild RSS growth"] = [r["peak_mb"] - r["base_mb"] for r in rebuilds]
    found.samples["raw fold peak RSS"] = [r["peak_mb"] for r in folds]
    for r in rebuilds:
        if int(r["events"]) != data.events or int(r["keys"]) != data.keys:
            found.problems.append(
                f"rebuild folded {int(r['events'])} events into {int(r['keys'])} keys; "
                f"the log has {data.events} events and the fold {data.keys} keys"
            )
    for r in folds:
        if int(r["events"]) != data.events or int(r["keys"]) != data.keys:
            found.problems.append(f"raw fold read {int(r['events'])} events / {int(r['keys'])} keys")


def measure_reads(db: BenchDatabase, data: bulk.LargeDataset, reps: int, found: Replay) -> None:
    """history and as-of on the big stream, with their raw floors, interleaved."""
    store = open_store(db.url, migrate=False)
    raw = db.raw_connect()
    p = db.paramstyle
    key_column = "`key`" if db.kind == "mysql" else "key"
    history_sql = (
        f"SELECT position, version, op, {key_column}, value, previous FROM es_events "
        f"WHERE asset_id = {p} AND {key_column} = {p} ORDER BY position DESC LIMIT 100"
    )
    key_param: Any = data.history_key.encode() if db.kind == "mysql" else data.history_key
    cursor = raw.cursor()
    try:
        variants: dict[str, Callable[[], float]] = {}

        def raw_history() -> list[Any]:
            cursor.execute(history_sql, (1, key_param))
            return list(cursor.fetchall())

        variants["history raw"] = lambda: _repeat(raw_history)

        def raw_as_of() -> dict[str, str]:
            _, state = raw_fold(db, f"WHERE asset_id = {p} AND position <= {p}", (1, data.as_of_position))
            return state.get(1, {})

        variants["as-of raw fold"] = lambda: _repeat(raw_as_of)

        why = missing("history")
        if why:
            found.skipped["history"] = why
        else:
            expected = min(100, data.history_key_events)

            def history() -> object:
                changes = store.history(bulk.BIG, data.history_key, newest_first=True, limit=100)
                if len(changes) != expected:
                    found.problems.append(f"history returned {len(changes)} changes, expected {expected}")
                return changes

            history()
            variants["history"] = lambda: _repeat(history)

        why = missing("state_as_of")
        if why:
            found.skipped["as-of"] = why
        else:

            def as_of() -> object:
                state = store.state_as_of(bulk.BIG, position=data.as_of_position)
                if state != data.as_of_state:
                    found.problems.append(
                        f"state_as_of(position={data.as_of_position}) differs from the fold"
                    )
                return state

            as_of()
            variants["as-of"] = lambda: _repeat(as_of)
        samples = interleave(variants, reps)
        for name, values in samples.items():
            found.samples[f"{name} ms"] = values
        if len(raw_history()) != min(100, data.history_key_events):
            found.problems.append("the raw history select returned a wrong number of rows")
        if {k: json.loads(v) for k, v in raw_as_of().items()} != data.as_of_state:
            found.problems.append("the raw as-of fold differs from the fold computed while loading")
    finally:
        raw.close()
        store.close()


def measure_compaction(db: BenchDatabase, *, assets: int, events_each: int, reps: int, found: Replay) -> None:
    why = missing("compact")
    if why:
        found.skipped["compaction"] = why
        return
    rates: list[float] = []
    with open_store(db.url, migrate=False) as store:
        for rep in range(reps + 1):  # the first is a warm-up
            loaded = bulk.load_inactive(db.url, assets, events_each, tag=f"r{rep}")
            started = perf_counter()
            report = store.compact(grace=timedelta(0))
            seconds = perf_counter() - started
            if report.events_deleted != loaded:
                found.problems.append(
                    f"compact deleted {report.events_deleted} events; {loaded} were inactive"
                )
            if rep:
                rates.append(report.events_deleted / seconds)
    found.samples["compaction events/s"] = rates


# --- compaction under writes -------------------------------------------------------------------------


def _latency_writer(url: str, names: list[str], rate: float, stop: Any, results: Any) -> None:
    """Set WRITTEN_KEY on the assets `names` in turn, `rate` times a second until `stop` is set.

    Sends ("ready", wall time) after a warm-up write per asset, then ("done", {"samples": [(wall time
    the write was due, seconds from then until it returned)], "errors": [...], "writes": n}).
    """
    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    with open_store(url, migrate=False) as store:
        states = [store.asset(Asset(name)) for name in names]
        for state in states:
            state.set(WRITTEN_KEY, -1)
        writes = len(states)
        results.put(("ready", time.time()))
        start_wall, start = time.time(), perf_counter()
        slot = 0
        while not stop.is_set():
            due = start + slot / rate
            wait = due - perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                states[slot % len(states)].set(WRITTEN_KEY, slot)
            except Exception as error:  # a write that fails during compaction is a finding, not a crash
                errors.append(f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
            else:
                samples.append((start_wall + (due - start), perf_counter() - due))
                writes += 1
            slot += 1
    results.put(("done", {"samples": samples, "errors": errors, "writes": writes}))


def _receive(results: Any, process: Any, timeout: float = 300) -> Any:
    """The writer's next message; an error if it exited without sending it or took over `timeout` s."""
    deadline = perf_counter() + timeout
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            if not process.is_alive() or perf_counter() > deadline:
                raise RuntimeError(
                    f"the writer process sent nothing (exit code {process.exitcode})"
                ) from None


def _percentile(ms: list[float], p: int) -> float:
    if len(ms) < 2:
        return ms[0]
    return statistics.quantiles(ms, n=100, method="inclusive")[p - 1]


def _count(db: BenchDatabase, query: Any) -> int:
    engine = sa.create_engine(db.url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def measure_compaction_under_writes(
    db: BenchDatabase,
    *,
    written: list[Asset],
    assets: int,
    events_each: int,
    reps: int,
    idle_seconds: float,
    write_rate: float,
    found: Replay,
) -> None:
    """Compact `assets` × `events_each` inactive events per repetition while a writer sets a key on the
    active assets `written` `write_rate` times a second (see the module docstring)."""
    why = missing("compact")
    if why:
        found.skipped["compaction under writes"] = why
        return
    e = schema.events
    written_events = sa.select(sa.func.count()).where(e.c.key == WRITTEN_KEY, e.c.op == "set")
    writes_before = _count(db, written_events)
    writes = 0
    problems: list[str] = []
    samples: dict[str, list[float]] = {}
    context = get_context("spawn")
    with open_store(db.url, migrate=False) as store:
        for rep in range(reps):
            loaded = bulk.load_inactive(db.url, assets, events_each, tag=f"w{rep}", interleave=100)
            results = context.Queue()
            stop = context.Event()
            writer = context.Process(
                target=_latency_writer,
                args=(db.url, [a.name for a in written], write_rate, stop, results),
            )
            writer.start()
            try:
                _, ready_at = _receive(results, writer)
                time.sleep(idle_seconds)
                began, started = time.time(), perf_counter()
                report = store.compact(grace=timedelta(0))
                seconds, ended = perf_counter() - started, time.time()
                time.sleep(0.2)  # the writer surely ran throughout
            finally:
                stop.set()
            _, done = _receive(results, writer)
            writer.join(60)
            if writer.is_alive():
                writer.kill()
                problems.append("the writer did not exit")
            writes += done["writes"]
            problems += [f"write failed: {error}" for error in done["errors"][:5]]
            if report.events_deleted != loaded:
                found.problems.append(
                    f"compact deleted {report.events_deleted} events; {loaded} were inactive"
                )
            idle = [d * 1000 for t, d in done["samples"] if ready_at <= t < began]
            during = [d * 1000 for t, d in done["samples"] if began <= t <= ended]
            if not idle or not during:
                problems.append(
                    f"no write was due while idle ({len(idle)}) or during compact ({len(during)}, "
                    f"{seconds:.2f} s): too small to measure"
                )
                continue
            for name, value in (
                ("busy compaction events/s", report.events_deleted / seconds),
                ("writes idle median ms", statistics.median(idle)),
                ("writes idle p95 ms", _percentile(idle, 95)),
                ("writes during median ms", statistics.median(during)),
                ("writes during p95 ms", _percentile(during, 95)),
                ("writes during max ms", max(during)),
                ("writes during count", float(len(during))),
            ):
                samples.setdefault(name, []).append(value)
    in_log = _count(db, written_events) - writes_before
    if in_log != writes:
        problems.append(f"{in_log} events of the writer in the log for {writes} completed writes")
    left = _count(
        db, sa.select(sa.func.count()).where(~e.c.asset_id.in_(sa.select(schema.asset_active.c.asset_id)))
    )
    if left:
        found.problems.append(f"{left} events of inactive assets are left after compaction")
    found.samples.update(samples)
    found.write_problems = problems
