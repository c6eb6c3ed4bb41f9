"""`python -m reliability restarts [-- --db postgres --restarts 30 --seed 1]`: database restarts mid-load,
and SQLite's disk full or read-only (docs/reliability.md, "Database restarts, full and read-only disks").

Under load (writer threads on one `Store`: set, set_many, update; a reader; an `eventstore serve`
process on the same database with HTTP clients writing and polling /health), the database is made
unusable again and again: a private PostgreSQL or MariaDB instance (reliability.instances) is stopped
and started again; SQLite's tmpfs is filled to the last byte and freed. Each time:

- every error a caller sees is StoreUnavailableError or its subclass OutcomeUnknownError (a raw
  psycopg/pymysql/sqlite3/SQLAlchemy exception fails the run), and the server answers 503, /health too;
- once the database is back, the same Store and the same server process work again (no reopen): the
  time from "the database accepts connections" (or "space is free") to the first success of every
  worker is the recovery time;
- a write whose outcome is unknown is never repeated: no value appears twice in the log.

SQLite's read-only disk is a single fault at the end (the kernel's emergency read-only on an ext4 loop
device, which it lets no one undo while mounted): writers get StoreUnavailableError, then the disk is
repaired and a reopened store finds every acknowledged write.

At the end: the view equals the fold of the log (`verify_projections`), versions have no holes, every
acknowledged write is in the log. Exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

import httpx
import sqlalchemy as sa

from eventstore import Asset, OutcomeUnknownError, StoreUnavailableError, open_store, schema
from eventstore.client import connect
from eventstore.store import Store
from reliability import instances

RAW_MODULES = ("psycopg", "pymysql", "sqlite3", "sqlalchemy")
"""Exceptions from these packages must never reach a caller."""


@dataclass
class Options:
    dbs: list[str]
    restarts: int
    seed: int
    down: float
    up: float
    writers: int
    clients: int


@dataclass
class Outcomes:
    """What the workers saw, shared between their threads (list.append and Counter updates under a lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: dict[str, str] = field(default_factory=dict)
    successes: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (key, value) of each ack'ed set
    unknown: list[tuple[str, str]] = field(default_factory=list)
    health: collections.Counter[int] = field(default_factory=collections.Counter)
    raw: list[str] = field(default_factory=list)
    unknown_landed: int = 0  # of the unknown outcomes, how many the log holds (filled by check_log)

    def error(self, where: str, error: BaseException) -> None:
        kind = f"{where}: {type(error).__name__}"
        with self.lock:
            self.errors[kind] += 1
            self.samples.setdefault(kind, str(error)[:240])
            if type(error).__module__.split(".")[0] in RAW_MODULES or not isinstance(
                error, StoreUnavailableError
            ):
                self.raw.append(f"{kind}: {error}")

    def success(self, worker: str) -> None:
        self.successes[worker].append(time.monotonic())


class Fault:
    """Something that makes the database unusable (`break_`) and usable again (`heal`)."""

    label = ""

    def break_(self) -> None: ...
    def heal(self) -> None: ...


class Restart(Fault):
    def __init__(self, instance: instances.Instance) -> None:
        self.instance, self.label = instance, "restart"

    def break_(self) -> None:
        self.instance.stop()

    def heal(self) -> None:
        self.instance.start()


class FullDisk(Fault):
    def __init__(self, disk: instances.SmallDisk) -> None:
        self.disk, self.label = disk, "disk full"

    def break_(self) -> None:
        self.disk.fill()

    def heal(self) -> None:
        self.disk.free()


# --- workers -----------------------------------------------------------------------------------------


def _store_writer(store: Store, number: int, outcomes: Outcomes, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed * 1000 + number)
    asset = Asset(f"writer-{number}")
    state = store.asset(asset)
    worker = f"store-writer-{number}"
    n = 0
    while not stop.is_set():
        n += 1
        value = f"{worker}-{n}-" + "x" * rng.randrange(10, 2000)
        key = f"k{rng.randrange(4)}"
        try:
            if rng.random() < 0.7:
                state.set(key, value)
                written = [(key, value)]
            else:
                state.set_many({key: value, "pair": value})
                written = [(key, value), ("pair", value)]
            state.update("count", lambda old: int(old) + 1, default=0)  # type: ignore[arg-type]
        except StoreUnavailableError as error:
            outcomes.error("store write", error)
            if isinstance(error, OutcomeUnknownError):
                with outcomes.lock:
                    outcomes.unknown.append((f"{asset.name}/{key}", value))
            time.sleep(0.02)
            continue
        except Exception as error:
            outcomes.error("store write", error)
            time.sleep(0.02)
            continue
        with outcomes.lock:
            outcomes.acknowledged.extend((f"{asset.name}/{k}", v) for k, v in written)
            outcomes.success(worker)
        time.sleep(0.005)


def _store_reader(store: Store, outcomes: Outcomes, stop: threading.Event) -> None:
    state = store.asset(Asset("writer-0"))
    while not stop.is_set():
        try:
            state.get("k0")
            store.history(Asset("writer-0"), "k0", newest_first=True, limit=5)
        except Exception as error:
            outcomes.error("store read", error)
            time.sleep(0.02)
            continue
        with outcomes.lock:
            outcomes.success("store-reader")
        time.sleep(0.01)


def _http_client(base: str, number: int, outcomes: Outcomes, stop: threading.Event) -> None:
    asset = Asset(f"client-{number}")
    worker = f"http-client-{number}"
    with connect(base) as remote:
        state = remote.asset(asset)
        n = 0
        while not stop.is_set():
            n += 1
            value = f"{worker}-{n}"
            try:
                state.set("watermark", value)
            except StoreUnavailableError as error:
                outcomes.error("http write", error)
                if isinstance(error, OutcomeUnknownError):
                    with outcomes.lock:
                        outcomes.unknown.append((f"{asset.name}/watermark", value))
                time.sleep(0.02)
                continue
            except Exception as error:
                outcomes.error("http write", error)
                time.sleep(0.02)
                continue
            with outcomes.lock:
                outcomes.acknowledged.append((f"{asset.name}/watermark", value))
                outcomes.success(worker)
            time.sleep(0.005)


def _health_poller(base: str, outcomes: Outcomes, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            try:
                response = http.get("/health")
            except httpx.HTTPError as error:
                outcomes.error("health", error)
            else:
                with outcomes.lock:
                    outcomes.health[response.status_code] += 1
                    if response.status_code == 200:
                        outcomes.success("health")
                    else:
                        detail = response.json().get("detail", "")
                        outcomes.samples.setdefault(f"health {response.status_code}", str(detail)[:240])
                        if response.status_code != 503 or not detail:
                            outcomes.raw.append(f"/health answered {response.status_code}: {detail}")
            time.sleep(0.05)


@contextlib.contextmanager
def _server(url: str, failures: list[str]) -> Iterator[str]:
    """`eventstore serve` on `url` in a process of its own; its base URL once it answers. A server that
    does not exit within 30 s of SIGTERM is killed and added to `failures`."""
    port = instances.free_port()
    command = [sys.executable, "-m", "eventstore", "--url", url, "serve", "--port", str(port)]
    # Its log to a file, not a pipe: a pipe nobody reads fills up with the 503 warnings, and the server
    # then blocks in its logging (how a first version of this run hung).
    log_file = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"eventstore serve did not start: {_tail(log_file)!r}")
            time.sleep(0.1)
        yield base
        if process.poll() is not None:
            raise RuntimeError("the server process exited during the run: it must survive every fault")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            failures.append(
                f"the server did not exit within 30 s of SIGTERM; its log ends {_tail(log_file)!r}"
            )
        log_file.close()


def _tail(log_file: IO[bytes]) -> bytes:
    log_file.seek(0, os.SEEK_END)
    log_file.seek(max(0, log_file.tell() - 600))
    return bytes(log_file.read())


# --- one database --------------------------------------------------------------------------------------


@dataclass
class Report:
    name: str
    faults: int = 0
    recovery: list[float] = field(default_factory=list)
    outcomes: Outcomes = field(default_factory=Outcomes)
    failures: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    def lines(self) -> list[str]:
        o = self.outcomes
        lines = [f"-- {self.name}: {self.faults} faults"]
        if self.recovery:
            p50 = statistics.median(self.recovery)
            lines.append(
                f"   recovery (back -> every worker's next success): p50 {p50:.2f} s, "
                f"max {max(self.recovery):.2f} s"
            )
        lines.append(
            f"   acknowledged writes {len(o.acknowledged)}, outcome unknown {len(o.unknown)} "
            f"(of which in the log: {o.unknown_landed}, each once)"
        )
        lines.append(f"   /health: {dict(sorted(o.health.items()))}")
        for kind, count in sorted(o.errors.items()):
            lines.append(f"   {count:6} {kind}   e.g. {o.samples.get(kind, '')!r}")
        for kind in (k for k in o.samples if k.startswith("health ")):
            lines.append(f"   {kind}   e.g. {o.samples[kind]!r}")
        lines.append(f"   raw or unexpected errors: {len(o.raw)}" + (f" e.g. {o.raw[0]!r}" if o.raw else ""))
        lines += [f"   check {name}: {'ok' if ok else 'FAILED'}" for name, ok in self.checks.items()]
        lines += [f"   FAILED: {failure}" for failure in self.failures]
        return lines

    @property
    def ok(self) -> bool:
        return not self.failures and not self.outcomes.raw and all(self.checks.values())


def run_under_faults(
    url: str, fault: Fault, options: Options, report: Report, log: Callable[[str], None]
) -> None:
    """The load on `url` (a Store in this process, a server process and its clients) while `fault` breaks
    and heals the database `options.restarts` times; fills `report`, then checks the log."""
    outcomes = report.outcomes
    stop = threading.Event()
    rng = random.Random(options.seed)
    with open_store(url) as store, _server(url, report.failures) as base:
        for number in range(options.writers):
            store.activate(Asset(f"writer-{number}"))
        for number in range(options.clients):
            store.activate(Asset(f"client-{number}"))
        threads = [
            threading.Thread(target=_store_writer, args=(store, n, outcomes, stop, options.seed))
            for n in range(options.writers)
        ]
        threads.append(threading.Thread(target=_store_reader, args=(store, outcomes, stop)))
        threads += [
            threading.Thread(target=_http_client, args=(base, n, outcomes, stop))
            for n in range(options.clients)
        ]
        threads.append(threading.Thread(target=_health_poller, args=(base, outcomes, stop)))
        for thread in threads:
            thread.start()
        try:
            for number in range(options.restarts):
                time.sleep(options.up * rng.uniform(0.5, 1.5))  # mid-load, at a random moment
                fault.break_()
                time.sleep(options.down)
                fault.heal()
                back = time.monotonic()
                report.faults += 1
                recovered = _wait_for_every_worker(outcomes, back, timeout=60)
                if recovered is None:
                    report.failures.append(
                        f"{fault.label} {number + 1}: not every worker recovered within 60 s"
                    )
                    break
                report.recovery.append(recovered)
                log(
                    f"{report.name}: {fault.label} {number + 1}/{options.restarts}, "
                    f"recovered in {recovered:.2f} s"
                )
            time.sleep(options.up)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
        report.checks.update(check_log(store, url, outcomes))


def _wait_for_every_worker(outcomes: Outcomes, back: float, timeout: float) -> float | None:
    """Seconds from `back` until every worker that ever succeeded succeeded again; None past `timeout`."""
    deadline = back + timeout
    while time.monotonic() < deadline:
        with outcomes.lock:
            firsts = [next((t for t in times if t >= back), None) for times in outcomes.successes.values()]
        if firsts and all(t is not None for t in firsts):
            return max(t for t in firsts if t is not None) - back
        time.sleep(0.02)
    return None


def check_log(store: Store, url: str, outcomes: Outcomes) -> dict[str, bool]:
    """The checks after a run: the view is the fold of the log; versions have no holes; every
    acknowledged write is in the log; no write was recorded twice (an unknown outcome never repeated)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    e, a = schema.events, schema.assets
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(a.c.name, e.c.version, e.c.op, e.c.key, e.c.value).join(a, a.c.id == e.c.asset_id)
        ).all()
    engine.dispose()
    versions: dict[str, list[int]] = collections.defaultdict(list)
    logged: collections.Counter[tuple[str, str]] = collections.Counter()
    for name, version, op, key, value in rows:
        versions[name].append(version)
        if op == "set" and key != "count":
            logged[(f"{name}/{key}", value)] += 1

    acknowledged = [(key, json.dumps(value)) for key, value in outcomes.acknowledged]
    outcomes.unknown_landed = sum(1 for key, value in outcomes.unknown if logged[(key, json.dumps(value))])
    return {
        "view == fold of the log": store.verify_projections() == [],
        "versions without holes": all(sorted(v) == list(range(1, len(v) + 1)) for v in versions.values()),
        "every acknowledged write in the log": all(logged[item] >= 1 for item in acknowledged),
        "no write recorded twice": all(count == 1 for count in logged.values()),
    }


def read_only_disk(options: Options, report: Report, log: Callable[[str], None]) -> None:
    """SQLite on a disk the kernel turns read-only under the running store (see FailingDisk): writers
    get StoreUnavailableError; after the repair, a reopened store has every acknowledged write."""
    disk = instances.FailingDisk(64)
    try:
        url = f"sqlite:///{disk.path / 'es.db'}"
        outcomes = report.outcomes
        stop = threading.Event()
        store = open_store(url)
        for number in range(options.writers):
            store.activate(Asset(f"writer-{number}"))
        threads = [
            threading.Thread(target=_store_writer, args=(store, n, outcomes, stop, options.seed))
            for n in range(options.writers)
        ]
        for thread in threads:
            thread.start()
        time.sleep(options.up)
        disk.fail()
        report.faults += 1
        time.sleep(options.down)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        with outcomes.lock:
            if not any("store write" in kind for kind in outcomes.errors):
                report.failures.append("no writer saw the read-only disk")
        store.close()
        disk.repair()
        log(f"{report.name}: the disk turned read-only, repaired and mounted again")
        with open_store(url) as reopened:
            report.checks.update(check_log(reopened, url, outcomes))
            reopened.asset(Asset("writer-0")).set("after", 1)
            report.checks["writes succeed after the repair"] = (
                reopened.asset(Asset("writer-0")).get("after") == 1
            )
    finally:
        disk.drop()


def run_database(db: str, options: Options, log: Callable[[str], None] = print) -> list[Report]:
    """Every fault of one database (`db`: sqlite, postgres or mysql); InstanceError if it cannot be set up."""
    if db == "sqlite":
        disk = instances.SmallDisk(256)  # room for the run's own data: only the filler makes it full
        try:
            full = Report("sqlite, disk full (tmpfs)")
            run_under_faults(f"sqlite:///{disk.path / 'es.db'}", FullDisk(disk), options, full, log)
        finally:
            disk.drop()
        read_only = Report("sqlite, disk read-only (ext4 errors=remount-ro)")
        read_only_disk(options, read_only, log)
        return [full, read_only]
    instance = instances.create_instance(db, f"esrestarts{os.getpid()}")
    try:
        report = Report(f"{db}, restarts of a private instance")
        run_under_faults(instance.url, Restart(instance), options, report, log)
        return [report]
    finally:
        instance.drop()


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m reliability restarts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "mysql", "all"), default="all")
    parser.add_argument("--restarts", type=int, default=20, help="faults per database (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--down", type=float, default=1.0, help="seconds the database stays unusable")
    parser.add_argument("--up", type=float, default=3.0, help="mean seconds of load between faults")
    parser.add_argument("--writers", type=int, default=3, help="writer threads on the Store")
    parser.add_argument("--clients", type=int, default=2, help="HTTP clients of the server")
    args = parser.parse_args(argv)
    dbs = ["sqlite", "postgres", "mysql"] if args.db == "all" else [args.db]
    return Options(dbs, args.restarts, args.seed, args.down, args.up, args.writers, args.clients)


def main(argv: list[str]) -> int:
    options = parse(argv)
    print(f"restarts: {options}", flush=True)
    ok = True
    for db in options.dbs:
        started = time.monotonic()
        try:
            reports = run_database(db, options, log=lambda line: print(line, flush=True))
        except instances.InstanceError as error:
            print(f"-- {db}: SKIPPED, {error}", flush=True)
            ok = ok and os.environ.get("CI") != "true"
            continue
        for report in reports:
            print("\n".join(report.lines()), flush=True)
            ok = ok and report.ok
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
