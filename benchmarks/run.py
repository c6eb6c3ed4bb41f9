"""The runner: `python -m benchmarks [--db sqlite|postgres|mysql ...] [--quick]` (`make bench`).

Per database it creates `eventstore_bench` (a file for SQLite), migrates it, measures set/get/peer,
concurrency (PostgreSQL and MariaDB), then loads `eventstore_bench_large` in bulk and measures rebuild,
history, as-of, compaction, and the latency of writes while compaction runs; prints the tables, writes
benchmarks/results/bench-<time>.json (and latest.json), drops the databases (unless --keep) and exits 1
if a correctness check failed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console

from benchmarks import bulk, concurrency, databases, peer, readwrite, replay, rest, targets
from benchmarks import client as remote_client
from benchmarks.databases import DbName
from benchmarks.report import DatabaseReport, render, write_json
from benchmarks.stats import Stats, paired_ratio
from eventstore import open_store

RESULTS = Path(__file__).parent / "results"
SECTIONS = ("setget", "concurrency", "rest", "replay", "client")


@dataclass(frozen=True, slots=True)
class Sizes:
    reps: int
    set_ops: int  # ops per variant per repetition
    get_ops: int
    concurrency_seconds: float  # per scenario per repetition
    events: int  # the big stream for rebuild/history/as-of
    compaction_assets: int
    compaction_events_each: int
    busy_assets: int  # compaction under writes: inactive assets per repetition
    busy_events_each: int
    busy_idle_seconds: float  # writes alone before compaction starts
    busy_write_rate: float  # writes per second
    rest_ops: int  # requests per variant per repetition, one client
    rest_seconds: float  # per variant per repetition, 16 clients
    client_set_ops: int = 300  # the HTTP client vs raw httpx, ops per variant per repetition
    client_get_ops: int = 1_000
    client_update_ops: int = 100  # per process, 8 processes, per repetition


FULL = Sizes(
    reps=7,
    set_ops=300,
    get_ops=2_000,
    concurrency_seconds=3.0,
    events=1_000_000,
    compaction_assets=100,
    compaction_events_each=1_000,
    busy_assets=1_000,
    busy_events_each=100,
    busy_idle_seconds=2.0,
    busy_write_rate=100.0,
    rest_ops=1_000,
    rest_seconds=3.0,
)
QUICK = Sizes(
    client_set_ops=40,
    client_get_ops=100,
    client_update_ops=10,
    reps=5,
    set_ops=200,
    get_ops=1_000,
    concurrency_seconds=1.0,
    events=100_000,
    compaction_assets=20,
    compaction_events_each=500,
    busy_assets=500,
    busy_events_each=100,
    busy_idle_seconds=1.0,
    busy_write_rate=100.0,
    rest_ops=200,
    rest_seconds=1.0,
)


def _stats(values: list[float]) -> Stats | None:
    return Stats(tuple(values)) if values else None


def _guarded(report: DatabaseReport, console: Console, section: str, work: Callable[[], None]) -> None:
    """Run one section; an exception becomes a failed check (and a traceback on stderr), not a crash."""
    started = time.perf_counter()
    console.log(f"[cyan]{report.db}[/cyan]: {section} ...")
    try:
        work()
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        report.check(f"{section} ran", False, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}")
    console.log(f"[cyan]{report.db}[/cyan]: {section} done in {time.perf_counter() - started:.0f} s")


# Baselines of set and get: (sample name, row label, ratio key, ratio label).
SET_BASELINES = (
    ("sqlalchemy", "plain upsert, SQLAlchemy, own txn", "ratio_sa", "eventstore / SQLAlchemy upsert"),
    ("raw", "plain upsert, raw driver, autocommit", "ratio_raw", "eventstore / raw upsert"),
)
GET_BASELINES = (
    ("sqlalchemy", "PK select, SQLAlchemy", "ratio_sa", "eventstore / SQLAlchemy select"),
    ("raw", "PK select, raw driver", "ratio_raw", "eventstore / raw select"),
)


def _add_comparison(
    report: DatabaseReport,
    section: str,
    label: str,
    samples: dict[str, list[float]],
    baselines: tuple[tuple[str, str, str, str], ...],
) -> None:
    """eventstore's µs/op, each baseline's, and the paired ratios eventstore / baseline."""
    report.add(f"{section}.eventstore", section, label, "µs/op", _stats(samples["eventstore"]))
    for name, row_label, ratio_key, ratio_label in baselines:
        report.add(f"{section}.{name}", section, row_label, "µs/op", _stats(samples[name]))
        ratio = paired_ratio(samples["eventstore"], samples[name])
        report.add(f"{section}.{ratio_key}", section, ratio_label, "×", ratio)


def setget(db: databases.BenchDatabase, sizes: Sizes, report: DatabaseReport) -> None:
    measured = readwrite.measure_set(db, ops=sizes.set_ops, reps=sizes.reps)
    s = measured.samples
    _add_comparison(report, "set", "eventstore state.set", s, SET_BASELINES)
    es_ops = Stats(tuple(s["eventstore"])).inverted().scaled(1e6)
    report.add("peer.eventstore", "peer", "eventstore set", "ops/s", es_ops)
    if "eventsourcing" in s:
        report.add(
            "peer.eventsourcing",
            "peer",
            f"eventsourcing {peer.version()} save",
            "ops/s",
            Stats(tuple(s["eventsourcing"])).inverted().scaled(1e6),
        )
        report.add(
            "peer.ratio",
            "peer",
            "eventstore / eventsourcing ops/s",
            "×",
            paired_ratio(s["eventsourcing"], s["eventstore"]),
        )
    else:
        why = measured.skipped.get("eventsourcing", "not run")
        report.missing("peer.eventsourcing", "peer", "eventsourcing save", "ops/s", why)
        report.missing("peer.ratio", "peer", "eventstore / eventsourcing ops/s", "×", why)

    got = readwrite.measure_get(db, ops=sizes.get_ops, reps=sizes.reps).samples
    _add_comparison(report, "get", "eventstore state.get", got, GET_BASELINES)


def concurrent(db: databases.BenchDatabase, sizes: Sizes, report: DatabaseReport) -> None:
    found = concurrency.measure_concurrency(db, duration=sizes.concurrency_seconds, reps=sizes.reps)
    s = found.samples
    one, eight, same = s["one writer"], s["8 writers, distinct assets"], s["8 updaters, one key"]
    report.add("conc.one", "concurrency", "1 writer (set), own asset", "ops/s", _stats(one))
    report.add("conc.eight", "concurrency", "8 writers (set), distinct assets", "ops/s", _stats(eight))
    report.add("conc.scaling", "concurrency", "8 writers / 1 writer", "×", paired_ratio(eight, one))
    report.add("conc.same", "concurrency", "8 updaters, one key (update +1)", "ops/s", _stats(same))
    plain_one, plain_eight = s["plain, one writer"], s["plain, 8 writers"]
    report.add("conc.plain_one", "concurrency", "plain upsert: 1 writer", "ops/s", _stats(plain_one))
    report.add(
        "conc.plain_eight",
        "concurrency",
        "plain upsert: 8 writers, distinct rows",
        "ops/s",
        _stats(plain_eight),
    )
    report.add(
        "conc.plain_scaling",
        "concurrency",
        "plain upsert: 8 writers / 1 writer",
        "×",
        paired_ratio(plain_eight, plain_one),
        "the machine's ceiling: no log, no feed",
    )
    report.add(
        "conc.retries",
        "concurrency",
        "retries per update (extra calls of fn)",
        "retries/op",
        _stats(found.retries_per_op),
        "fn runs once per attempt, under the row lock",
    )
    report.add(
        "conc.retryable",
        "concurrency",
        "retryable DB errors per update",
        "errors/op",
        _stats(found.retryable_errors_per_op),
        "counted by wrapping backend.is_retryable",
    )
    report.check(
        "tailing reader missed nothing",
        found.reader_missed == 0,
        f"{found.reader_seen:,} events tailed over all runs, {found.reader_missed} missed",
    )
    report.check(
        "tailing reader saw positions in order",
        found.reader_out_of_order == 0,
        f"{found.reader_out_of_order} out of order",
    )
    report.check(
        "one event per completed op",
        not found.events_mismatch,
        "; ".join(found.events_mismatch) or "events = ops in every run",
    )
    report.check(
        "no lost update", found.lost_updates == 0, f"counter off by {found.lost_updates} over all runs"
    )


def rest_section(db: databases.BenchDatabase, sizes: Sizes, report: DatabaseReport) -> None:
    """The REST server on loopback (benchmarks.rest): latency with one client, req/s with 16, and
    whether a slow database call holds up other requests."""
    found = rest.measure_rest(db, ops=sizes.rest_ops, reps=sizes.reps, seconds=sizes.rest_seconds)
    lat, thr = found.latency, found.throughput
    section = "REST (loopback)"
    for method in ("get", "put"):
        name = method.upper()
        report.add(
            f"rest.noop_{method}",
            section,
            f"{name} no-op route, 1 client",
            "µs/req",
            _stats(lat[f"noop {method}"]),
        )
        report.add(
            f"rest.{method}", section, f"{name} of a key, 1 client", "µs/req", _stats(lat[f"rest {method}"])
        )
        report.add(
            f"rest.{method}_ratio",
            section,
            f"{name} of a key / no-op route",
            "×",
            paired_ratio(lat[f"rest {method}"], lat[f"noop {method}"]),
        )
        cpu = found.server_cpu
        if all(cpu[f"{kind} {method}"] and min(cpu[f"{kind} {method}"]) > 0 for kind in ("noop", "rest")):
            report.add(
                f"rest.{method}_cpu_ratio",
                section,
                f"{name}: server CPU per request, key / no-op",
                "×",
                paired_ratio(cpu[f"rest {method}"], cpu[f"noop {method}"]),
                "medians: {:,.0f} / {:,.0f} µs".format(
                    *(Stats(tuple(cpu[f"{kind} {method}"])).median for kind in ("rest", "noop"))
                ),
            )
        if method == "get":
            report.add(
                "rest.read_get_ratio",
                section,
                "floor: a read in a worker thread, no token / no-op route",
                "×",
                paired_ratio(lat["read get"], lat["noop get"]),
            )
        python = "state.get" if method == "get" else "state.set"
        report.add(
            f"rest.api_{method}",
            section,
            f"Python API {python}, same database",
            "µs/op",
            _stats(lat[f"api {method}"]),
        )
        report.add(
            f"rest.{method}_api_ratio",
            section,
            f"{name} of a key / Python API",
            "×",
            paired_ratio(lat[f"rest {method}"], lat[f"api {method}"]),
        )
    clients = f"{rest.CLIENTS} clients"
    report.add("rest.noop_get_16", section, f"GET no-op route, {clients}", "req/s", _stats(thr["noop get"]))
    report.add("rest.get_16", section, f"GET of a key, {clients}", "req/s", _stats(thr["rest get"]))
    report.add("rest.put_16", section, f"PUT of a key, {clients}", "req/s", _stats(thr["rest put"]))
    loop = found.loop_ms
    waiting = f"while {rest.BLOCKED_WRITES} PUTs wait for a lock"
    for probe, label in (("health", "GET /health"), ("other", "GET of another asset's key")):
        report.add(
            f"rest.loop_{probe}_idle", section, f"{label}, idle: median", "ms", _stats(loop[f"idle {probe}"])
        )
        report.add(
            f"rest.loop_{probe}_busy",
            section,
            f"{label}, {waiting}: median",
            "ms",
            _stats(loop[f"busy {probe}"]),
        )
    report.add(
        "rest.loop_busy_max",
        section,
        f"slowest of those requests {waiting}",
        "ms",
        Stats((max(loop["busy health"] + loop["busy other"]),)),
        "one sample per probe; the median rows are medians over probes",
    )
    report.check(
        "REST answers were right",
        not found.problems,
        "; ".join(sorted(set(found.problems)))[:300] or "every request answered as expected",
    )


def client(db: databases.BenchDatabase, sizes: Sizes, report: DatabaseReport) -> None:
    """The HTTP client against raw httpx on the same routes of one `eventstore serve`, and 8 updaters."""
    found = remote_client.measure(
        db,
        set_ops=sizes.client_set_ops,
        get_ops=sizes.client_get_ops,
        update_ops=sizes.client_update_ops,
        reps=sizes.reps,
    )
    s = found.samples
    section = "client"
    report.add("client.set", section, "client state.set (PUT)", "µs/op", _stats(s["set client"]))
    report.add("client.set_raw", section, "raw httpx PUT, same route", "µs/op", _stats(s["set raw"]))
    ratio = paired_ratio(s["set client"], s["set raw"])
    report.add("client.set_ratio", section, "set: client / raw httpx", "×", ratio)
    report.add("client.get", section, "client state.get (GET)", "µs/op", _stats(s["get client"]))
    report.add("client.get_raw", section, "raw httpx GET, same route", "µs/op", _stats(s["get raw"]))
    ratio = paired_ratio(s["get client"], s["get raw"])
    report.add("client.get_ratio", section, "get: client / raw httpx", "×", ratio)
    n = f"{remote_client.UPDATERS} processes × {sizes.client_update_ops} update(+1), one key"
    report.add("client.updates", section, n, "ops/s", _stats(found.updates_per_second))
    report.add(
        "client.retries",
        section,
        "remote update: 412 retries per op",
        "retries/op",
        _stats(found.retries_per_op),
        "each retry is one more GET and conditional PATCH",
    )
    report.check(
        "remote updates lost nothing", found.lost_updates == 0, f"counter off by {found.lost_updates}"
    )


def replays(db_kind: DbName, sizes: Sizes, report: DatabaseReport, keep: bool, console: Console) -> None:
    db = databases.create(db_kind, "eventstore_bench_large")
    try:
        open_store(db.url).close()
        console.log(f"[cyan]{db_kind}[/cyan]: loading {sizes.events:,} events in bulk ...")
        data = bulk.load_large(db.url, sizes.events)
        bulk.analyze(db.url)
        report.sizes["large_events"] = data.events
        report.sizes["large_big_stream_events"] = data.big_events
        report.sizes["large_assets"] = data.assets
        report.sizes["large_keys"] = data.keys
        report.sizes["large_load_seconds"] = round(data.load_seconds, 1)
        report.notes.append(
            f"replay data: {data.events:,} events ({data.big_events:,} in one stream, "
            f"{data.assets:,} assets, "
            f"{data.keys:,} keys in the view), bulk-loaded in {data.load_seconds:.0f} s "
            f"({data.events / data.load_seconds:,.0f} rows/s; see benchmarks/bulk.py)"
        )
        if replay.missing("verify_projections") is None:
            with open_store(db.url, migrate=False) as store:
                drift = store.verify_projections()
            report.check(
                "bulk-loaded data is consistent (verify_projections)",
                not drift,
                f"{len(drift)} drifts, first: {drift[0]!r}"[:300]
                if drift
                else "the view equals the fold of the log",
            )
        found = replay.Replay(dataset=data)
        console.log(f"[cyan]{db_kind}[/cyan]: rebuild vs raw fold ...")
        replay.measure_rebuild(db, data, sizes.reps, found)
        console.log(f"[cyan]{db_kind}[/cyan]: history and as-of ...")
        replay.measure_reads(db, data, sizes.reps, found)
        console.log(f"[cyan]{db_kind}[/cyan]: compaction ...")
        replay.measure_compaction(
            db,
            assets=sizes.compaction_assets,
            events_each=sizes.compaction_events_each,
            reps=sizes.reps,
            found=found,
        )
        console.log(f"[cyan]{db_kind}[/cyan]: compaction under writes ...")
        written = [bulk.small_asset(i) for i in range(min(10, data.assets - 1))]
        replay.measure_compaction_under_writes(
            db,
            written=written,
            assets=sizes.busy_assets,
            events_each=sizes.busy_events_each,
            reps=sizes.reps,
            idle_seconds=sizes.busy_idle_seconds,
            write_rate=sizes.busy_write_rate,
            found=found,
        )
        s, skipped = found.samples, found.skipped
        n = f"{data.events:,} events"

        def add(key: str, section: str, name: str, unit: str, sample: str, skip: str, note: str = "") -> None:
            values = s.get(sample, [])
            if values:
                report.add(key, section, name, unit, Stats(tuple(values)), note)
            else:
                report.missing(key, section, name, unit, skipped.get(skip, "not run"))

        add("rebuild.rate", "rebuild", f"rebuild_projections, {n}", "events/s", "rebuild events/s", "rebuild")
        add("rebuild.raw", "rebuild", "raw streaming select-and-fold", "events/s", "raw fold events/s", "-")
        if s.get("rebuild events/s"):
            report.add(
                "rebuild.ratio",
                "rebuild",
                "rebuild / raw fold",
                "×",
                paired_ratio(s["rebuild events/s"], s["raw fold events/s"]),
            )
        add("rebuild.rss", "rebuild", "rebuild: peak RSS of the process", "MB", "rebuild peak RSS", "rebuild")
        add(
            "rebuild.rss_growth",
            "rebuild",
            "rebuild: RSS growth during rebuild",
            "MB",
            "rebuild RSS growth",
            "rebuild",
        )
        add("rebuild.raw_rss", "rebuild", "raw fold: peak RSS of the process", "MB", "raw fold peak RSS", "-")
        add(
            "history.ms",
            "history",
            f"history(key, newest_first, limit=100) among {n}",
            "ms",
            "history ms",
            "history",
            f"the key has {data.history_key_events:,} changes",
        )
        add("history.raw_ms", "history", "raw indexed select, LIMIT 100", "ms", "history raw ms", "-")
        add(
            "asof.ms",
            "as-of",
            f"state_as_of(position=…) on a {data.big_events:,}-event stream",
            "ms",
            "as-of ms",
            "as-of",
            f"3/4 through, 999 events after a snapshot; {len(data.as_of_state)} keys",
        )
        add("asof.raw_ms", "as-of", "raw streaming fold up to the position", "ms", "as-of raw fold ms", "-")
        add(
            "compaction.rate",
            "compaction",
            f"compact(): {sizes.compaction_assets} inactive assets × {sizes.compaction_events_each} events",
            "events/s",
            "compaction events/s",
            "compaction",
        )
        _add_compaction_under_writes(report, sizes, len(written), found)
        report.check(
            "replay answers match the loaded data",
            not found.problems,
            "; ".join(sorted(set(found.problems)))[:300]
            or "rebuild counts, history length, as-of state, compaction counts",
        )
    finally:
        if not keep:
            databases.drop(db)


def _add_compaction_under_writes(
    report: DatabaseReport, sizes: Sizes, writers: int, found: replay.Replay
) -> None:
    """compact() while a writer writes: its rate, and the writes' latency without and during compaction."""
    s = found.samples
    section = "compaction + writes"
    why = found.skipped.get("compaction under writes", "not run")

    def add(key: str, name: str, unit: str, sample: str, note: str = "") -> None:
        if s.get(sample):
            report.add(key, section, name, unit, Stats(tuple(s[sample])), note)
        else:
            report.missing(key, section, name, unit, why)

    def ratio(key: str, name: str, during: str, idle: str) -> None:
        if s.get(during):
            report.add(key, section, name, "×", paired_ratio(s[during], s[idle]))

    events = f"{sizes.busy_assets:,} inactive assets × {sizes.busy_events_each} events"
    add("busy.rate", f"compact() while writing: {events}", "events/s", "busy compaction events/s")
    writer = (
        f"{sizes.busy_write_rate:.0f} sets/s over {writers} active assets; latency from when each was due"
    )
    add("busy.idle_ms", "write latency, no compaction: median", "ms", "writes idle median ms", writer)
    add("busy.during_ms", "write latency during compact(): median", "ms", "writes during median ms")
    ratio(
        "busy.ratio",
        "during / no compaction, median latency",
        "writes during median ms",
        "writes idle median ms",
    )
    add("busy.idle_p95", "write latency, no compaction: p95", "ms", "writes idle p95 ms")
    counts = s.get("writes during count") or [0.0]
    during = f"{min(counts):,.0f}–{max(counts):,.0f} writes during compact() per repetition"
    add("busy.during_p95", "write latency during compact(): p95", "ms", "writes during p95 ms", during)
    ratio(
        "busy.ratio_p95", "during / no compaction, p95 latency", "writes during p95 ms", "writes idle p95 ms"
    )
    add("busy.during_max", "write latency during compact(): max", "ms", "writes during max ms")
    if found.write_problems is not None:
        report.check(
            "writes during compaction all succeeded and are in the log",
            not found.write_problems,
            "; ".join(found.write_problems)[:300] or "every completed write left its event",
        )


def run_database(
    kind: DbName, sizes: Sizes, sections: tuple[str, ...], keep: bool, console: Console
) -> DatabaseReport:
    report = DatabaseReport(kind)
    started = time.perf_counter()
    try:
        db = databases.create(kind, "eventstore_bench")
    except databases.DatabaseUnavailable as error:
        report.check("database reachable", False, str(error))
        return report
    try:
        open_store(db.url).close()
        try:
            report.settings = databases.settings(db)
        except sa.exc.SQLAlchemyError as error:
            report.notes.append(f"could not read the durability settings: {error}".splitlines()[0])
        report.sizes.update(asdict(sizes))
        if "setget" in sections:
            _guarded(report, console, "set/get/peer", lambda: setget(db, sizes, report))
        if "concurrency" in sections:
            if kind == "sqlite":
                report.notes.append(
                    "concurrency is measured on PostgreSQL and MariaDB only (SQLite has one writer)"
                )
            else:
                _guarded(report, console, "concurrency", lambda: concurrent(db, sizes, report))
        if "rest" in sections:
            _guarded(report, console, "REST", lambda: rest_section(db, sizes, report))
        if "replay" in sections:
            _guarded(report, console, "replay", lambda: replays(kind, sizes, report, keep, console))
        if "client" in sections:
            _guarded(report, console, "client", lambda: client(db, sizes, report))
    finally:
        if not keep:
            databases.drop(db)
    report.targets = targets.evaluate(report, events=sizes.events)
    report.seconds = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", action="append", choices=databases.DATABASES, help="repeatable; default: all three"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes (100k events, 5 reps): ~2-3 min per db"
    )
    parser.add_argument("--reps", type=int, help="repetitions (at least 5 for a published figure)")
    parser.add_argument("--events", type=int, help="events of the big stream (default 1M, 100k with --quick)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="repeatable; default: all sections")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases afterwards")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.reps:
        sizes = replace(sizes, reps=args.reps)
    if args.events:
        sizes = replace(sizes, events=args.events)
    chosen: tuple[DbName, ...] = tuple(args.db) if args.db else databases.DATABASES
    sections = tuple(args.only) if args.only else SECTIONS
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a log file or a pipe: room for the tables
    if peer.unavailable("sqlite"):
        console.print(f"[yellow]{peer.unavailable('sqlite')}[/yellow]")
    reports = []
    started = datetime.now(UTC)
    for kind in chosen:
        report = run_database(kind, sizes, sections, args.keep, console)
        render(report, console)
        reports.append(report)
    options = {"databases": list(chosen), "quick": args.quick, "sections": list(sections), **asdict(sizes)}
    path = write_json(reports, options, args.out, started)
    console.print(f"results: {path}")
    failed = [f"{r.db}: {c.name} ({c.detail})" for r in reports for c in r.checks if not c.ok]
    if failed:
        console.print("[bold red]correctness checks failed:[/bold red]\n  " + "\n  ".join(failed))
        return 1
    return 0
