"""Load: a real `eventstore serve` process on loopback under concurrent clients for minutes, per database.

`python -m reliability.load [--db sqlite|postgres|mysql ...] [--seconds S] [--clients N]`
(`make reliability RELIABILITY_ARGS="load -- --db postgres --seconds 300"`).

Per database: a fresh database with a pool of active assets and three tokens (write, read, admin); the
server (`eventstore.server.serve`, exactly what `eventstore serve` runs, access log on, in a child
process); then, each in its own process (reliability/load_workers.py), `--clients` clients: two thirds
task writers through the HTTP client, one third readers (history pollers and feed followers), plus
one compactor. They run for `--seconds`, as fast as they can (closed loop); the readers of the feed
poll every 50 ms once caught up.

Measured: per route kind the count, p50/p99/max latency (ms, as the client saw it: for `update` and
`set_many` a read and a conditional write, again on 412) and the errors by kind; the HTTP requests
per second of all clients together; the 412s (normal: a conditional write that lost a race); the
server's RSS every second (reliability/rss.py says when memory counts as flat).

The run fails (exit 1) on any error: an exception in a client (the clients do not retry, so a 503 or a
dropped connection counts), an unexpected status, a 5xx in the server's access log, a worker that
died, a server that is no longer healthy; on any broken invariant afterwards: the view differs from
the fold of the log, a counter lost an update, a feed follower missed an event or saw one out of order,
a deactivated asset was not compacted exactly once; on a route kind never exercised; and on memory
that does not stay flat.

Results: a table (rich) and reliability/results/load-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks import databases
from eventstore import Asset, open_store
from eventstore.tokens import create_token
from reliability import rss
from reliability.load_workers import WorkerConfig, WorkerResult, run_worker
from tests.remote import ServeProcess

RESULTS = Path(__file__).parent / "results"
ROUTES = {
    "set": "PUT state-store/{key} (client set)",
    "update": "GET + PATCH If-Match (client update)",
    "set_many": "GET + PATCH If-Match (client set_many)",
    "history": "GET state-history",
    "feed": "GET state-events?after=",
    "activate": "POST assets",
    "deactivate": "POST assets/{id}/deactivate",
    "compact": "POST state-store/compact",
}
ACCESS_LINE = re.compile(r'"[A-Z]+ \S+ HTTP/[\d.]+" (\d{3})')


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float = 300.0
    clients: int = 8
    assets: int = 20
    compact_every: float = 5.0
    slope_limit: float = 1.0
    """MB/min: the most the server's RSS may grow after the warm-up (reliability/rss.py)."""
    growth_limit: float = 0.10
    """The most the final RSS may exceed the warm-up level, as a fraction."""
    workdir: Path = RESULTS / "db"
    """Where the SQLite file goes (on the repository's disk, not a RAM disk where fsync costs nothing)."""
    database: str = f"reliability_load_{os.getpid()}"
    """The database's name: unique per process, so that two runs on one server do not meet."""


@dataclass(frozen=True, slots=True)
class RouteSummary:
    route: str
    count: int
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]


@dataclass
class DatabaseRun:
    """What one database's run measured and found."""

    db: str
    seconds: float
    clients: dict[str, int]
    routes: dict[str, RouteSummary] = field(default_factory=dict)
    requests: int = 0
    requests_per_second: float = 0.0
    conflicts_412: int = 0
    server_statuses: dict[str, int] = field(default_factory=dict)
    memory: rss.MemoryVerdict | None = None
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)
    """Each check's name and "ok" or what went wrong."""

    @property
    def errors(self) -> dict[str, int]:
        """Every error of every route kind, as "route: kind" -> count."""
        return {f"{r.route}: {kind}": n for r in self.routes.values() for kind, n in r.errors.items()}

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {verdict}" for name, verdict in self.checks.items() if verdict != "ok"]


def roles(clients: int) -> list[str]:
    """`clients` writers and readers (a third readers, at least one history poller and one feed
    follower), plus the compactor."""
    readers = max(2, clients // 3)
    writers = max(1, clients - readers)
    return (
        ["writer"] * writers
        + ["history", "feed"] * (readers // 2)
        + ["history"] * (readers % 2)
        + ["compactor"]
    )


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_database(kind: databases.DbName, options: Options) -> DatabaseRun:
    """One database: create it, load its server for `options.seconds`, check, drop it."""
    database = databases.create(kind, options.database, options.workdir)
    try:
        return _run(database, options)
    finally:
        databases.drop(database)


def _run(database: databases.BenchDatabase, options: Options) -> DatabaseRun:
    assets = [Asset(f"load-{n}") for n in range(options.assets)]
    with open_store(database.url) as store:
        for asset in assets:
            store.activate(asset)
        ids = {info.name: info.id for info in store.assets()}
        tokens = {scope: create_token(store, f"load-{scope}", scope) for scope in ("write", "read", "admin")}
    token_of = {"writer": "write", "history": "read", "feed": "read", "compactor": "admin"}
    plan = roles(options.clients)
    found = DatabaseRun(database.kind, options.seconds, dict(Counter(plan)))
    # fork where there is one: the clients start at once, with the modules this process has imported
    # (no thread runs here yet: the RSS sampler starts after).
    context = (
        multiprocessing.get_context("fork")
        if "fork" in multiprocessing.get_all_start_methods()
        else multiprocessing.get_context("spawn")
    )
    ready: Any = context.Queue()
    go, stop, done = context.Event(), context.Event(), context.Event()
    with ServeProcess(database.url, env={"EVENTSTORE_COMPACTION_GRACE": "0"}) as server:
        processes = []
        for index, role in enumerate(plan):
            config = WorkerConfig(
                url=server.url,
                token=tokens[token_of[role]],
                assets=tuple(a.name for a in assets),
                asset_ids=tuple(ids[a.name] for a in assets),
                compact_every=options.compact_every,
                seed=int(time.time()),
            )
            process = context.Process(
                target=run_worker,
                args=(role, index, config, ready, go, stop, done),
                name=f"load-{role}-{index}",
            )
            process.start()
            processes.append(process)
        results: list[WorkerResult] = []
        try:
            _wait_ready(ready, len(plan), results)
            sampler = rss.RssSampler(server.process.pid)
            sampler.start()
            go.set()
            started = time.monotonic()
            while time.monotonic() - started < options.seconds and server.process.poll() is None:
                time.sleep(min(0.5, max(0.0, options.seconds - (time.monotonic() - started))))
            stop.set()
            elapsed = time.monotonic() - started
            found.rss_samples = sampler.stop()
            _collect(ready, results, lambda r: r.role != "feed", sum(role != "feed" for role in plan))
            done.set()
            _collect(ready, results, lambda r: r.role == "feed", plan.count("feed"))
        finally:
            stop.set()
            done.set()
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
        found.seconds = elapsed
        _summarise(found, results, elapsed)
        found.memory = rss.judge(
            found.rss_samples, slope_limit=options.slope_limit, growth_limit=options.growth_limit
        )
        found.checks["memory stays flat"] = "ok" if found.memory.ok else "; ".join(found.memory.reasons)
        _check_server(found, server)
    _check_store(found, database.url, assets, results)
    return found


def _wait_ready(ready: Any, count: int, results: list[WorkerResult]) -> None:
    waiting = count
    deadline = time.monotonic() + 120
    while waiting:
        message = ready.get(timeout=max(1.0, deadline - time.monotonic()))
        if message[0] == "ready":
            waiting -= 1
        else:  # a worker that failed before it was ready
            results.append(message[1])


def _collect(ready: Any, results: list[WorkerResult], wanted: Any, count: int) -> None:
    """Wait for `count` results that are `wanted`; a worker that sends none within 2 minutes (hung on a
    server that no longer answers, or dead) is recorded as a failure instead."""
    deadline = time.monotonic() + 120
    while sum(1 for r in results if wanted(r)) < count:
        try:
            message = ready.get(timeout=max(1.0, deadline - time.monotonic()))
        except queue.Empty:
            missing = count - sum(1 for r in results if wanted(r))
            results.append(
                WorkerResult("missing", -1, fatal=f"{missing} workers sent no result within 2 minutes")
            )
            return
        if message[0] == "result":
            results.append(message[1])


def _summarise(found: DatabaseRun, results: list[WorkerResult], elapsed: float) -> None:
    latencies: dict[str, list[float]] = {route: [] for route in ROUTES}
    errors: dict[str, Counter[str]] = {route: Counter() for route in ROUTES}
    for result in results:
        for route, tally in result.tallies.items():
            latencies.setdefault(route, []).extend(tally.latencies_ms)
            errors.setdefault(route, Counter()).update(tally.errors)
        found.requests += result.requests
        found.conflicts_412 += result.conflicts
        if result.retries:
            errors["retries"] = errors.get("retries", Counter()) + Counter({"client retried": result.retries})
    for route, values in latencies.items():
        ordered = sorted(values)
        found.routes[route] = RouteSummary(
            route=route,
            count=len(ordered),
            per_second=len(ordered) / elapsed,
            p50_ms=percentile(ordered, 0.50),
            p99_ms=percentile(ordered, 0.99),
            max_ms=ordered[-1] if ordered else 0.0,
            errors=dict(errors.get(route, {})),
        )
    found.requests_per_second = found.requests / elapsed
    fatal = [f"{r.role}-{r.index}: {r.fatal}" for r in results if r.fatal]
    found.checks["every worker ran to the end"] = "ok" if not fatal else "; ".join(fatal)
    found.checks["no client saw an error"] = (
        "ok" if not found.errors else f"{sum(found.errors.values())} errors"
    )
    unused = [route for route in ROUTES if not found.routes[route].count]
    found.checks["every route kind exercised"] = "ok" if not unused else f"never called: {', '.join(unused)}"
    churned = sorted(name for r in results for name in r.churned)
    compacted = sorted(name for r in results for name in r.compacted)
    found.checks["each deactivated asset compacted exactly once"] = (
        "ok" if churned == compacted else f"deactivated {churned}, compacted {compacted}"
    )


def _check_server(found: DatabaseRun, server: ServeProcess) -> None:
    """The server still answers /health, and its access log has no 5xx and no traceback."""
    alive = server.process.poll() is None
    try:
        healthy = alive and httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        healthy = False
    found.checks["server alive and healthy at the end"] = "ok" if healthy else server.output()[-500:]
    statuses: Counter[str] = Counter()
    tracebacks = 0
    server.log.seek(0)
    for line in server.log:
        if match := ACCESS_LINE.search(line):
            statuses[match.group(1)] += 1
        elif "Traceback" in line or line.startswith("ERROR"):
            tracebacks += 1
    found.server_statuses = dict(sorted(statuses.items()))
    bad = {status: n for status, n in statuses.items() if status.startswith("5")}
    found.checks["no 5xx and no traceback in the server's log"] = (
        "ok" if not bad and not tracebacks else f"5xx: {bad}, tracebacks/errors: {tracebacks}"
    )


def _check_store(found: DatabaseRun, url: str, assets: list[Asset], results: list[WorkerResult]) -> None:
    """Afterwards, on the database itself: the view equals the fold of the log; no counter lost an
    update; each feed follower saw every event of the load's assets (none of which is compacted)."""
    with open_store(url) as store:
        drift = store.verify_projections()
        found.checks["the view equals the fold of the log"] = "ok" if not drift else f"{len(drift)} drifts"
        lost = []
        positions: set[int] = set()
        for asset in assets:
            done = sum(r.increments.get(asset.name, 0) for r in results)
            unknown = sum(r.unknown_increments.get(asset.name, 0) for r in results)
            counter = store.asset(asset).get("counter", 0)
            if not done <= counter <= done + unknown:  # type: ignore[operator]
                lost.append(f"{asset.name}: {counter} after {done} updates (+{unknown} unknown)")
            positions.update(change.position for change in store.history(asset))
    found.checks["no update lost"] = "ok" if not lost else "; ".join(lost[:5])
    missed = [len(positions - set(r.positions)) for r in results if r.role == "feed"]
    found.checks["the feed followers missed no event"] = (
        "ok" if not any(missed) else f"missed {missed} of {len(positions)} events"
    )


def report(run: DatabaseRun, console: Console) -> None:
    table = Table(title=f"load on {run.db}: {run.seconds:.0f} s, clients {run.clients}")
    for column in ("route kind", "HTTP", "count", "per s", "p50 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column, justify="left" if column in ("route kind", "HTTP") else "right")
    for route, summary in run.routes.items():
        table.add_row(
            route,
            ROUTES.get(route, ""),
            str(summary.count),
            f"{summary.per_second:.1f}",
            f"{summary.p50_ms:.1f}",
            f"{summary.p99_ms:.1f}",
            f"{summary.max_ms:.0f}",
            str(sum(summary.errors.values())),
        )
    console.print(table)
    console.print(
        f"HTTP requests: {run.requests} ({run.requests_per_second:.0f}/s); 412 on conditional writes "
        f"(normal): {run.conflicts_412}; server statuses: {run.server_statuses}"
    )
    if run.memory:
        m = run.memory
        console.print(
            f"server RSS: start {m.start_mb:.1f} MB, warm-up {m.warmup_mb:.1f} MB, "
            f"final {m.final_mb:.1f} MB ({m.growth:+.1%}), peak {m.peak_mb:.1f} MB, "
            f"slope after warm-up {m.slope_mb_per_min:+.2f} MB/min "
            f"(limits {m.slope_limit} MB/min, {m.growth_limit:.0%})"
        )
    for error, count in run.errors.items():
        console.print(f"[red]error[/red] {count} × {error}")
    for name, verdict in run.checks.items():
        console.print(
            f"{'[green]ok[/green]  ' if verdict == 'ok' else '[red]FAIL[/red]'} {name}"
            + ("" if verdict == "ok" else f": {verdict}")
        )


def to_json(run: DatabaseRun) -> dict[str, Any]:
    body = asdict(run)
    body["errors"] = run.errors
    body["failures"] = run.failures
    return body


DEFAULTS = Options()


def parse(argv: list[str]) -> tuple[list[databases.DbName], Options]:
    parser = argparse.ArgumentParser(prog="python -m reliability.load", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", action="append", choices=databases.DATABASES, help="repeatable; default: all three"
    )
    parser.add_argument(
        "--seconds", type=float, default=DEFAULTS.seconds, help="load per database (default 300)"
    )
    parser.add_argument(
        "--clients", type=int, default=DEFAULTS.clients, help="writer and reader processes (default 8)"
    )
    parser.add_argument(
        "--assets", type=int, default=DEFAULTS.assets, help="assets the writers share (default 20)"
    )
    parser.add_argument(
        "--compact-every", type=float, default=DEFAULTS.compact_every, help="seconds (default 5)"
    )
    parser.add_argument(
        "--slope-limit", type=float, default=DEFAULTS.slope_limit, help="MB/min (default 1.0)"
    )
    parser.add_argument(
        "--growth-limit", type=float, default=DEFAULTS.growth_limit, help="fraction (default 0.10)"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.assets < 1:
        parser.error("--clients and --assets must be at least 1, --seconds above 0")
    options = Options(
        seconds=args.seconds,
        clients=args.clients,
        assets=args.assets,
        compact_every=args.compact_every,
        slope_limit=args.slope_limit,
        growth_limit=args.growth_limit,
    )
    return list(dict.fromkeys(args.db or databases.DATABASES)), options


def main(argv: list[str]) -> int:
    kinds, options = parse(argv)
    console = Console(width=max(120, Console().width))
    runs: list[DatabaseRun] = []
    unavailable: dict[str, str] = {}
    for kind in kinds:
        console.print(f"load on {kind}: {options.seconds:.0f} s, {options.clients} clients + a compactor")
        try:
            runs.append(run_database(kind, options))
        except databases.DatabaseUnavailable as error:
            unavailable[kind] = f"{error}; run `make databases`"
            console.print(f"[red]{unavailable[kind]}[/red]")
            continue
        report(runs[-1], console)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"load-{stamp}.json"
    body = {
        "run": "load",
        "date": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "databases": {run.db: to_json(run) for run in runs},
        "unavailable": unavailable,
    }
    path.write_text(json.dumps(body, indent=2))
    console.print(f"results: {path}")
    failed = [run.db for run in runs if run.failures] + list(unavailable)
    if failed:
        console.print(f"[red]load FAILED on {', '.join(failed)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
