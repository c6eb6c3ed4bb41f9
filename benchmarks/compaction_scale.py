"""Compaction at scale: 10,000 inactive assets holding 1,000,000 events, compacted while writes go on.

    .venv/bin/python -m benchmarks.compaction_scale --db sqlite|postgres|mysql
        [--assets 10000] [--events 1000000] [--keys 10] [--batch-size N] [--idle-seconds 10]
        [--write-rate 100] [--keep]

What it does, on a database of its own (created by `benchmarks.databases`, dropped at the end unless
`--keep`):

1. **Load.** `open_store` migrates the empty database; then the rows eventstore would have written are
   inserted with SQLAlchemy Core, straight into the tables (through the API one write is one durable
   transaction, so a million events would take hours). The rows keep every invariant of the write path:
   - es_assets: one row per inactive asset, `version` = its last version, `last_recorded_at` = its last
     event's time, `deactivated_at` = the time of its `deactivate` event (a day ago); no es_asset_active
     row, so the asset is inactive;
   - es_events: per asset, version 1 is `activate`, the last version `deactivate`, and the versions in
     between are `set`s cycling over `--keys` keys, each with the value it replaced as `previous`. Asset
     sizes alternate around the mean (mean ± d, d = 0..98 for the default mean of 100) so that batches
     group small assets and split large ones. Global positions are dense, 1..events, interleaving the
     streams of 100 assets at a time as concurrent writers would; `recorded_at` grows with position;
   - es_state: the fold of each asset's events (every key's last set), which an inactive asset keeps
     until compaction; the last position handed out: the highest position. No snapshot: streams are
     shorter than the snapshot interval, so the write path would not have written one.
   The writer's active assets are then activated through the API.
2. **Idle.** A writer process (spawned) sets a key on one of 10 active assets `--write-rate` times a
   second, one committed transaction per write, and records the latency of every write, counted from
   when the write was due (so a write held up also delays, and is charged to, the ones queued behind
   it). It runs alone for `--idle-seconds` after a second of warm-up.
3. **Compaction.** A second spawned process calls `store.compact(grace=0, batch_size=...)` while the
   writer goes on; it reports the wall-clock time, the report, and its peak RSS (`ru_maxrss`), also
   measured right before compacting (imports and an open store), so the difference is what compaction
   itself took.
4. **Checks and output.** The report must name every inactive asset with its events and keys, no event
   of an inactive asset may remain, and every write of the writer must be in the log. Printed: compaction
   time, events deleted per second, peak RSS, and the median, p95 and p99 latency of writes while idle
   vs during compaction.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from benchmarks import databases
from eventstore import Asset, Writer, open_store, schema
from eventstore.compaction import DEFAULT_BATCH_SIZE
from eventstore.ordering import ordering_for

ACTIVE = [Asset(f"bench-active-{i}") for i in range(10)]
INTERLEAVED_ASSETS = 100  # streams whose events are interleaved in the global order
WARM_UP_SECONDS = 1.0  # writes in the first second are left out of the idle figures
_WRITER_COLUMNS = {
    "kind": "task",
    "dag_id": "bench",
    "run_id": "load",
    "task_id": "t",
    "map_index": -1,
    "try_number": 1,
}


# --- Loading ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the loader wrote: the inactive assets' names with (events, keys), and the totals."""

    assets: dict[str, tuple[int, int]]
    events: int
    keys: int
    seconds: float


def stream_sizes(assets: int, events: int) -> list[int]:
    """Events per asset: pairs mean + d, mean - d (d = 0..mean-2), summing to exactly `events`."""
    mean, extra = divmod(events, assets)
    spread = max(0, mean - 2)
    sizes = []
    for i in range(assets):
        d = (i // 2 * 37) % (spread + 1) if spread else 0
        sizes.append(mean + d if i % 2 == 0 else mean - d)
    if assets % 2:
        sizes[-1] = mean
    for i in range(extra):
        sizes[i] += 1
    return sizes


def load(url: str, assets: int, events: int, keys: int) -> Loaded:
    """Insert `assets` inactive assets with `events` events in total (see the module docstring)."""
    started = time.perf_counter()
    engine = sa.create_engine(url)
    sizes = stream_sizes(assets, events)
    names = [f"bench-gone-{i:06d}" for i in range(assets)]
    base_time = datetime.now(UTC) - timedelta(days=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                schema.assets.insert(),
                [
                    {
                        "identity_hash": Asset(name).identity_hash,
                        "name": name,
                        "uri": name,
                        "version": size,
                        "created_at": base_time,
                    }
                    for name, size in zip(names, sizes, strict=True)
                ],
            )
            rows = conn.execute(sa.select(schema.assets.c.id, schema.assets.c.name))
            ids = {row.name: row.id for row in rows}
        position = 0
        written: dict[str, tuple[int, int]] = {}
        for first in range(0, assets, INTERLEAVED_ASSETS):
            group = range(first, min(first + INTERLEAVED_ASSETS, assets))
            event_rows, state_rows, asset_updates, position = _group_rows(
                [(ids[names[i]], names[i], sizes[i]) for i in group], position, keys, base_time
            )
            with engine.begin() as conn:
                conn.execute(schema.events.insert(), event_rows)
                if state_rows:
                    conn.execute(schema.state.insert(), state_rows)
                conn.execute(
                    schema.assets.update()
                    .where(schema.assets.c.id == sa.bindparam("asset_id"))
                    .values(last_recorded_at=sa.bindparam("last_at"), deactivated_at=sa.bindparam("last_at")),
                    asset_updates,
                )
            for i in group:
                written[names[i]] = (sizes[i], min(keys, max(0, sizes[i] - 2)))
        with engine.begin() as conn:
            ordering_for(conn.dialect).restart_after(conn, position)
    finally:
        engine.dispose()
    return Loaded(
        written,
        sum(e for e, _ in written.values()),
        sum(k for _, k in written.values()),
        time.perf_counter() - started,
    )


def _group_rows(
    streams: list[tuple[int, str, int]], position: int, keys: int, base_time: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], int]:
    """The es_events and es_state rows of a group of streams, their versions interleaved round-robin."""
    event_rows: list[dict[str, Any]] = []
    states: dict[int, dict[str, tuple[str, int, datetime]]] = {asset_id: {} for asset_id, _, _ in streams}
    last_at: dict[int, datetime] = {}
    for version in range(1, max(size for _, _, size in streams) + 1):
        for asset_id, name, size in streams:
            if version > size:
                continue
            position += 1
            at = base_time + timedelta(microseconds=position)
            key = value = previous = None
            if version == 1:
                op = "activate"
            elif version == size:
                op = "deactivate"
            else:
                op = "set"
                key = f"k{(version - 2) % keys}"
                value = orjson.dumps({"asset": name, "version": version, "rows": version * 37}).decode()
                old = states[asset_id].get(key)
                previous = old[0] if old else None
                states[asset_id][key] = (value, version, at)
            event_rows.append(
                {
                    "position": position,
                    "asset_id": asset_id,
                    "version": version,
                    "op": op,
                    "key": key,
                    "value": value,
                    "previous": previous,
                    "recorded_at": at,
                    **{f"writer_{k}": v for k, v in _WRITER_COLUMNS.items()},
                }
            )
            last_at[asset_id] = at
    state_rows = [
        {
            "asset_id": asset_id,
            "key": key,
            "value": value,
            "version": version,
            "updated_at": at,
            **{f"updated_by_{k}": v for k, v in _WRITER_COLUMNS.items()},
        }
        for asset_id, state in states.items()
        for key, (value, version, at) in state.items()
    ]
    updates = [{"asset_id": asset_id, "last_at": at} for asset_id, at in last_at.items()]
    return event_rows, state_rows, updates, position


# --- Processes ----------------------------------------------------------------------------------------


def writer_main(url: str, rate: float, stop: Any, results: Any) -> None:
    """Write to the active assets `rate` times a second until `stop` is set; send (wall-clock time, seconds)
    of every write, its latency counted from when it was due, so a write held up delays the next ones
    and they count it too (no coordinated omission)."""
    samples: list[tuple[float, float]] = []
    errors: list[str] = []
    with open_store(url, migrate=False) as store:
        states = [store.asset(asset, Writer.watcher()) for asset in ACTIVE]
        start_wall, start = time.time(), time.perf_counter()
        slot = writes = 0
        while not stop.is_set():
            due = start + slot / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                states[slot % len(states)].set("counter", slot)
            except Exception as error:  # a write that fails during compaction is a finding, not a crash
                errors.append(f"{type(error).__name__}: {error}")
            else:
                samples.append((start_wall + (due - start), time.perf_counter() - due))
                writes += 1
            slot += 1
    results.put(("writer", {"samples": samples, "errors": errors, "writes": writes}))


def compactor_main(url: str, batch_size: int, results: Any) -> None:
    """Compact everything inactive (grace 0); send the timings, the report's totals and peak RSS."""
    with open_store(url, migrate=False) as store:
        store.compactions()  # warm the pool and the code paths before measuring memory
        rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        began_wall, began = time.time(), time.perf_counter()
        report = store.compact(grace=timedelta(0), batch_size=batch_size)
        seconds = time.perf_counter() - began
        ended_wall = time.time()
    results.put(
        (
            "compactor",
            {
                "began": began_wall,
                "ended": ended_wall,
                "seconds": seconds,
                "assets": {a.name: (a.events, a.keys) for a in report.assets},
                "events_deleted": report.events_deleted,
                "rows_deleted": report.rows_deleted,
                "rss_before_kib": rss_before_kib,
                "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            },
        )
    )


# --- Measuring and reporting ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latency:
    """Write latencies of one phase, in milliseconds."""

    count: int
    median: float
    p95: float
    p99: float
    worst: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if len(seconds) < 2:
            value = seconds[0] * 1000 if seconds else float("nan")
            return cls(len(seconds), value, value, value, value)
        ms = [s * 1000 for s in seconds]
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        return cls(len(ms), statistics.median(ms), cuts[94], cuts[98], max(ms))

    def __str__(self) -> str:
        return (
            f"median {self.median:7.2f} ms   p95 {self.p95:7.2f} ms   p99 {self.p99:7.2f} ms   "
            f"max {self.worst:8.2f} ms   ({self.count} writes)"
        )


def run(options: argparse.Namespace) -> int:
    """Load, measure idle writes, compact while writing, check, print; 1 if a check failed."""
    kind: databases.DbName = options.db
    assets, events, batch_size = options.assets, options.events, options.batch_size
    database = databases.create(kind, "eventstore_bench_compaction")
    problems: list[str] = []
    try:
        open_store(database.url).close()
        print(f"{kind}: loading {assets:,} inactive assets with {events:,} events ...", flush=True)
        loaded = load(database.url, assets, events, options.keys)
        print(f"  loaded in {loaded.seconds:.1f} s ({loaded.keys:,} view rows)", flush=True)
        with open_store(database.url) as store:
            for asset in ACTIVE:
                store.activate(asset)

        context = mp.get_context("spawn")
        results = context.Queue()
        stop = context.Event()
        writer = context.Process(target=writer_main, args=(database.url, options.write_rate, stop, results))
        writer.start()
        time.sleep(WARM_UP_SECONDS + options.idle_seconds)
        compactor = context.Process(target=compactor_main, args=(database.url, batch_size, results))
        compactor.start()
        outcome = dict(_receive(results, 1))
        time.sleep(0.5)  # a few writes after compaction, so the writer was surely running throughout
        stop.set()
        outcome.update(_receive(results, 1))
        writer.join(60)
        compactor.join(60)

        compaction, written = outcome["compactor"], outcome["writer"]
        if compactor.exitcode != 0 or writer.exitcode != 0:
            problems.append(f"exit codes: compactor {compactor.exitcode}, writer {writer.exitcode}")
        if compaction["assets"] != loaded.assets:
            problems.append("the report does not list exactly the loaded assets with their events and keys")
        problems += [f"write failed: {error}" for error in written["errors"][:5]]
        problems += _check_log(database.url, written["writes"])

        idle_from = min(s for s, _ in written["samples"]) + WARM_UP_SECONDS
        idle_samples = [d for s, d in written["samples"] if idle_from <= s < compaction["began"]]
        during = [d for s, d in written["samples"] if compaction["began"] <= s <= compaction["ended"]]
        seconds = compaction["seconds"]
        print(
            f"  compaction: {seconds:.1f} s, {compaction['events_deleted'] / seconds:,.0f} events deleted/s"
        )
        print(
            f"  report: {len(compaction['assets']):,} assets, {compaction['events_deleted']:,} events, "
            f"{compaction['rows_deleted']:,} view rows (batch_size {batch_size:,})"
        )
        print(
            f"  compacting process peak RSS: {compaction['rss_peak_kib'] / 1024:.1f} MiB "
            f"({compaction['rss_before_kib'] / 1024:.1f} MiB before compacting)"
        )
        print(f"  writes idle:   {Latency.of(idle_samples)}")
        print(f"  writes during: {Latency.of(during)}")
        for problem in problems:
            print(f"  CHECK FAILED: {problem}")
    finally:
        if not options.keep:
            databases.drop(database)
    return 1 if problems else 0


def _receive(results: Any, count: int) -> Iterator[tuple[str, dict[str, Any]]]:
    for _ in range(count):
        yield results.get(timeout=3600)


def _check_log(url: str, writes: int) -> list[str]:
    """No event of an inactive asset is left; the active assets hold every write."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            e, active = schema.events, schema.asset_active
            orphans = conn.execute(
                sa.select(sa.func.count()).where(~e.c.asset_id.in_(sa.select(active.c.asset_id)))
            ).scalar_one()
            sets = conn.execute(sa.select(sa.func.count()).where(e.c.op == "set")).scalar_one()
    finally:
        engine.dispose()
    problems = []
    if orphans:
        problems.append(f"{orphans} events of inactive assets are left")
    if sets != writes:
        problems.append(f"{sets} set events for {writes} writes")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=databases.DATABASES, required=True)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10, help="keys per asset")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--write-rate", type=float, default=100.0, help="active writes per second")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
