"""Concurrency on PostgreSQL and MariaDB: 1 vs 8 writer processes, and 8 updaters of one key.

Scenarios, each run for a fixed time per repetition, taking turns (`stats.interleave`):
- `one writer`: one process doing `state.set` on its own asset;
- `8 writers, distinct assets`: eight processes, each `state.set` on its own asset (ops/s of all);
- `8 updaters, one key`: eight processes doing `state.update("counter", lambda v: (v or 0) + 1)` on the
  same asset and key;
- `plain, one writer` and `plain, 8 writers`: the same, with the plain upsert of `benchmarks.readwrite`
  (Airflow's way: one transaction per op, no log, no feed) instead of `state.set`: how far this machine
  and database scale writes at all, the ceiling for eventstore's scaling.

During every eventstore scenario a tailing reader process follows the global feed (`store.events(after=last)`,
sleeping 5 ms when it is caught up). Afterwards the harness compares the positions it saw with the
positions in es_events: the reader must have seen every one of them (no event may commit behind a
reader's position) and in strictly increasing order. The number of events must equal the number of
completed ops, and the counter must equal the number of completed updates (no update lost). Any failure
is reported as a failed check and makes the run exit non-zero.

Retries per update: `fn` runs once per attempt of the transaction (eventstore's `update` calls it while
holding the asset's row lock), so retries = calls of `fn` - completed updates. The harness also counts
the database errors `Database.run` treats as retryable (deadlock, serialization failure, lock wait
timeout) by wrapping the backend's `is_retryable` in the worker process; both are reported.

Workers are processes started once (spawn) and reused for every repetition; each starts its ops at the
same wall-clock instant and stops after the scenario's duration.
"""

from __future__ import annotations

import functools
import itertools
import json
import multiprocessing as mp
import multiprocessing.queues
import queue
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from benchmarks import readwrite
from benchmarks.databases import BenchDatabase
from benchmarks.stats import interleave
from eventstore import Asset, open_store
from eventstore.database import Database
from eventstore.ordering import ordering_for

WRITERS = 8
SHARED = Asset("bench-conc-shared")
COUNTER = "counter"


def _asset(index: int) -> Asset:
    return Asset(f"bench-conc-{index}")


# --- worker processes ------------------------------------------------------------------------------


def _writer_main(url: str, index: int, commands: mp.queues.Queue[Any], results: mp.queues.Queue[Any]) -> None:
    store = open_store(url, migrate=False)
    plain = Database(url)
    upsert = readwrite.plain_upsert(plain.dialect.name)
    retryable = [0]
    try:
        backend: Any = store._db.backend  # measurement only: count what Database.run would retry
        original = backend.is_retryable

        def counting(error: Any) -> bool:
            answer = bool(original(error))
            retryable[0] += answer
            return answer

        backend.is_retryable = counting
    except AttributeError:
        pass
    calls = [0]

    def increment(value: Any) -> int:
        calls[0] += 1
        return int(value or 0) + 1

    results.put(("ready", index))
    while True:
        command = commands.get()
        if command is None:
            break
        scenario, start_at, duration = command
        calls[0] = 0
        state = store.asset(SHARED if scenario == "same" else _asset(index))
        retryable[0] = 0
        while time.time() < start_at:
            time.sleep(0.0005)
        ops = 0
        deadline = start_at + duration
        started = time.perf_counter()
        while time.time() < deadline:
            if scenario == "same":
                state.update(COUNTER, increment)
            elif scenario == "plain":
                row = {
                    "asset_id": index,
                    "key": "watermark",
                    "value": json.dumps({"n": ops, "writer": index}),
                }
                plain.run(functools.partial(_execute, upsert, row))
            else:
                state.set("watermark", {"n": ops, "writer": index})
            ops += 1
        elapsed = time.perf_counter() - started
        results.put(("done", index, ops, calls[0], retryable[0], elapsed))
    store.close()
    plain.dispose()


def _execute(statement: Any, row: dict[str, Any], conn: sa.Connection) -> None:
    conn.execute(statement, row)


def _reader_main(url: str, commands: mp.queues.Queue[Any], results: mp.queues.Queue[Any]) -> None:
    store = open_store(url, migrate=False)
    results.put(("ready", -1))
    while True:
        command = commands.get()
        if command is None:
            break
        _, after = command
        last = after
        seen: list[int] = []
        out_of_order = 0
        stop_at: int | None = None
        while True:
            batch = store.events(after=last, limit=1000)
            for event in batch:
                if event.position <= last:
                    out_of_order += 1
                seen.append(event.position)
                last = max(last, event.position)
            if batch:
                continue
            if stop_at is None:
                try:
                    message = commands.get_nowait()
                    stop_at = int(message[1])
                except queue.Empty:
                    pass
            if stop_at is not None and last >= stop_at:
                break
            time.sleep(0.005)
        results.put(("tailed", seen, out_of_order))
    store.close()


# --- the harness -----------------------------------------------------------------------------------


@dataclass
class Concurrency:
    """Samples per scenario (ops/s per repetition), retries, and the reader's findings."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    retries_per_op: list[float] = field(default_factory=list)  # from calls of fn
    retryable_errors_per_op: list[float] = field(default_factory=list)  # from Database.run's retry test
    reader_missed: int = 0
    reader_out_of_order: int = 0
    reader_seen: int = 0
    events_mismatch: list[str] = field(default_factory=list)
    lost_updates: int = 0


class _Pool:
    def __init__(self, url: str) -> None:
        self.ctx = mp.get_context("spawn")
        self.results: mp.queues.Queue[Any] = self.ctx.Queue()
        self.commands: list[mp.queues.Queue[Any]] = [self.ctx.Queue() for _ in range(WRITERS)]
        self.reader_commands: mp.queues.Queue[Any] = self.ctx.Queue()
        self.processes = [
            self.ctx.Process(target=_writer_main, args=(url, i, self.commands[i], self.results), daemon=True)
            for i in range(WRITERS)
        ]
        self.processes.append(
            self.ctx.Process(target=_reader_main, args=(url, self.reader_commands, self.results), daemon=True)
        )
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self._get("ready")

    def _get(self, kind: str) -> tuple[Any, ...]:
        """The next message from a worker; fails fast if a worker died instead of waiting forever."""
        deadline = time.monotonic() + 300
        while True:
            try:
                message: tuple[Any, ...] = self.results.get(timeout=1)
                break
            except queue.Empty:
                dead = [p.name for p in self.processes if not p.is_alive()]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"concurrency benchmark: no {kind!r} from the workers ({', '.join(dead)} died)"
                    ) from None
        if message[0] != kind:
            raise RuntimeError(f"concurrency benchmark: expected {kind!r} from a worker, got {message[0]!r}")
        return message

    def close(self) -> None:
        for commands in [*self.commands, self.reader_commands]:
            commands.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()


def measure_concurrency(db: BenchDatabase, *, duration: float, reps: int) -> Concurrency:
    """Run the three scenarios `reps` times each, interleaved; ops/s per repetition."""
    found = Concurrency()
    with open_store(db.url) as store:
        for index in range(WRITERS):
            store.activate(_asset(index))
        store.activate(SHARED)
    engine = sa.create_engine(db.url)
    readwrite.create_plain_table(engine)
    pool = _Pool(db.url)

    def head() -> int:
        with engine.connect() as conn:
            return ordering_for(conn.dialect).last_assigned(conn)

    def counter() -> int:
        with open_store(db.url, migrate=False) as store:
            value = store.asset(SHARED).get(COUNTER, 0)
        return int(value)  # type: ignore[arg-type]

    def run_plain(writers: int) -> float:
        start_at = time.time() + 0.2
        for i in range(writers):
            pool.commands[i].put(("plain", start_at, duration))
        done = [pool._get("done") for _ in range(writers)]
        return sum(d[2] for d in done) / max(d[5] for d in done)

    def run(scenario: str, writers: int) -> float:
        before = head()
        counter_before = counter() if scenario == "same" else 0
        pool.reader_commands.put(("tail", before))
        start_at = time.time() + 0.2
        for i in range(writers):
            pool.commands[i].put((scenario, start_at, duration))
        done = [pool._get("done") for _ in range(writers)]
        after = head()
        pool.reader_commands.put(("stop", after))
        _, seen, out_of_order = pool._get("tailed")
        ops = sum(d[2] for d in done)
        elapsed = max(d[5] for d in done)
        # The reader must have seen every committed event between the two heads, in order.
        with engine.connect() as conn:
            committed = [
                int(p)
                for p in conn.exec_driver_sql(
                    f"SELECT position FROM es_events WHERE position > {before} AND position <= {after} "
                    "ORDER BY position"
                ).scalars()
            ]
        found.reader_seen += len(seen)
        found.reader_missed += len(set(committed) - set(seen))
        found.reader_out_of_order += out_of_order + sum(1 for a, b in itertools.pairwise(seen) if b <= a)
        if len(committed) != ops:
            found.events_mismatch.append(f"{scenario}: {ops} ops but {len(committed)} events")
        if scenario == "same":
            calls = sum(d[3] for d in done)
            found.retries_per_op.append((calls - ops) / ops if ops else 0.0)
            found.retryable_errors_per_op.append(sum(d[4] for d in done) / ops if ops else 0.0)
            found.lost_updates += abs(counter() - counter_before - ops)
        return ops / elapsed

    try:
        run("distinct", 1)  # warm-up: connections, caches; its retries are not counted
        run("same", WRITERS)
        run_plain(WRITERS)
        found.retries_per_op.clear()
        found.retryable_errors_per_op.clear()
        found.samples = interleave(
            {
                "one writer": lambda: run("distinct", 1),
                "8 writers, distinct assets": lambda: run("distinct", WRITERS),
                "8 updaters, one key": lambda: run("same", WRITERS),
                "plain, one writer": lambda: run_plain(1),
                "plain, 8 writers": lambda: run_plain(WRITERS),
            },
            reps,
        )
    finally:
        pool.close()
        engine.dispose()
    return found
