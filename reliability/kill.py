"""kill -9, on each database: writers and the REST server SIGKILLed at random moments, hundreds of times,
then every invariant checked (`python -m reliability kill -- --db postgres --kills 200`).

Per database, two phases on one store:

1. local: `--writers` processes (reliability.kill_worker) write through `open_store(url)`; `--kills` times
   the parent waits until a random writer is running, sleeps a random time (seeded), SIGKILLs it, then at
   once times one write on each asset (a lock left behind would make it wait) and restarts the writer;
2. REST (unless `--no-rest`): an `eventstore serve` process and `--clients` processes writing through
   `eventstore.client.connect`; `--kills` times the victim is the server (every other kill: killed
   mid-request and restarted on the same port) or a client (in between).

Every `--check-every` kills, and at the end of each phase, every writer is killed and the checks of
reliability.kill_checks run against the journals. Exit status 0 only when every check held.
Results: reliability/results/kill-<time>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from eventstore import Writer, open_store
from eventstore.store import Store
from reliability.kill_checks import Check, check_store
from reliability.kill_journal import DAG_ID, Journal, read_journals
from reliability.kill_processes import Server, Writers
from reliability.kill_worker import COUNTER, MANY, perform

DATABASES = ("sqlite", "postgres", "mysql")
SERVERS = {
    "postgres": os.environ.get("EVENTSTORE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mysql": os.environ.get("EVENTSTORE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306"),
}
RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Options:
    kills: int = 150
    seed: int = 17
    rest: bool = True
    writers: int = 3
    clients: int = 2
    max_delay: float = 0.5
    check_every: int = 50
    think: float = 0.02
    """Seconds (at most) a writer pauses between two operations."""
    lock_limit: float = 2.0
    """Seconds a write on an asset may take right after a kill; more means a lock was left behind."""
    hang_limit: float = 30.0
    """Seconds after which a probe write is declared stuck (and the run goes on without it)."""


@dataclass
class DatabaseReport:
    database: str
    kills_local: int = 0
    kills_server: int = 0
    kills_client: int = 0
    kills_mid_call: int = 0
    """Kills that landed inside a call: the writer's, or for a server kill, some client's."""
    attempted: int = 0
    acknowledged: int = 0
    outcome_unknown: int = 0
    unavailable: int = 0
    probes: int = 0
    probe_max_seconds: float = 0.0
    server_start_max_seconds: float = 0.0
    checks_passed: int = 0
    checks_failed: int = 0
    failures: list[str] = field(default_factory=list)
    last_checks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.checks_failed == 0 and not self.failures


class Run:
    """One database's run: its store, journals, processes and what was measured."""

    def __init__(self, database: str, url: str, options: Options, directory: Path) -> None:
        self.url, self.options, self.directory = url, options, directory
        self.rng = random.Random(f"{options.seed}-{database}")
        self.report = DatabaseReport(database)
        self.store: Store = open_store(url)
        self.journal = Journal(directory / "parent.journal")
        self.sequence = 0
        self._probes: list[threading.Thread] = []

    def close(self) -> None:
        for thread in self._probes:  # a stuck probe released since: let it finish before the store closes
            thread.join(self.options.hang_limit)
        self.journal.close()
        self.store.close()

    # --- writes of the parent: set-up and the lock probes ---------------------------------------------

    def _perform(self, store: Any, kind: str) -> str:
        self.sequence += 1
        return perform(store, self.journal, f"parent.{self.sequence}", kind, self.rng)

    def _perform_into(self, store: Any, kind: str, outcome: list[str]) -> None:
        outcome.append(self._perform(store, kind))

    def set_up(self) -> None:
        for asset in (COUNTER, MANY):
            self.store.activate(asset, Writer.task(DAG_ID, "set-up", "activate"))
        if self._perform(self.store, "set_many") != "A":
            raise RuntimeError("the first write of the run failed")

    def probe(self, store: Any, where: str) -> None:
        """One write on each asset, timed: it must be acknowledged within `lock_limit` seconds."""
        for kind in ("update", "set_many"):
            outcome: list[str] = []
            thread = threading.Thread(target=self._perform_into, args=(store, kind, outcome), daemon=True)
            began = time.monotonic()
            thread.start()
            self._probes.append(thread)
            thread.join(self.options.hang_limit)
            seconds = time.monotonic() - began
            self.report.probes += 1
            self.report.probe_max_seconds = max(self.report.probe_max_seconds, seconds)
            if thread.is_alive():
                self.report.failures.append(
                    f"{where}: a {kind} hung for {self.options.hang_limit:.0f} s (a lock left behind)"
                )
            elif outcome != ["A"]:
                self.report.failures.append(
                    f"{where}: a {kind} right after a kill was not applied ({outcome})"
                )
            elif seconds > self.options.lock_limit:
                self.report.failures.append(f"{where}: a {kind} took {seconds:.2f} s (a lock left behind?)")

    # --- the checks ---------------------------------------------------------------------------------

    def check(self, where: str) -> None:
        outcomes = read_journals(sorted(self.directory.glob("*.journal")))
        checks: list[Check] = check_store(self.store, self.url, outcomes)
        self.report.checks_passed += sum(c.ok for c in checks)
        self.report.checks_failed += sum(not c.ok for c in checks)
        self.report.failures += [f"{where}: {c.name}: {c.detail}" for c in checks if not c.ok]
        self.report.last_checks = [asdict(c) for c in checks]
        self.report.attempted = len(outcomes.begun)
        self.report.acknowledged = len(outcomes.acked)
        self.report.outcome_unknown = len(outcomes.unknown)
        self.report.unavailable = len(outcomes.failed)

    def _kill_loop(self, writers: Writers, phase: str, victim: Callable[[int], None]) -> None:
        writers.start_all()
        for number in range(1, self.options.kills + 1):
            victim(number)
            if number % self.options.check_every == 0 and number < self.options.kills:
                writers.kill_all()
                self.check(f"{phase}, after {number} kills")
                writers.start_all()
        writers.kill_all()
        self.report.failures += writers.crashes

    # --- the two phases -----------------------------------------------------------------------------

    def local_phase(self) -> None:
        writers = Writers(
            "local",
            self.url,
            self.directory,
            "w",
            self.options.writers,
            self.options.seed,
            self.options.think,
        )

        def victim(number: int) -> None:
            slot = writers.any_ready(self.rng)
            time.sleep(self.rng.uniform(0, self.options.max_delay))
            self.report.kills_mid_call += writers.kill(slot)
            self.report.kills_local += 1
            self.probe(self.store, f"local kill {number}")
            writers.start(slot)

        self._kill_loop(writers, "local", victim)
        self.check("after the local kills")

    def rest_phase(self) -> None:
        from eventstore.client import connect

        server = Server(self.url, self.directory)
        self._started(server)
        writers = Writers(
            "remote",
            server.url,
            self.directory,
            "c",
            self.options.clients,
            self.options.seed,
            self.options.think,
        )

        def victim(number: int) -> None:
            slot = writers.any_ready(self.rng)
            time.sleep(self.rng.uniform(0, self.options.max_delay))
            if number % 2:  # the server every other kill, a client in between
                self.report.kills_mid_call += writers.in_flight() > 0
                server.kill()
                self.report.kills_server += 1
                self.probe(self.store, f"server kill {number}")
                self._started(server)
            else:
                self.report.kills_mid_call += writers.kill(slot)
                self.report.kills_client += 1
                writers.start(slot)

        try:
            self._kill_loop(writers, "REST", victim)
            with connect(server.url, timeout=self.options.hang_limit) as remote:
                self.probe(remote, "through the restarted server")
        finally:
            writers.kill_all()
            server.kill()
        self.check("after the REST kills")

    def _started(self, server: Server) -> None:
        seconds = server.start()
        self.report.server_start_max_seconds = max(self.report.server_start_max_seconds, seconds)


def run_database(database: str, url: str, options: Options, directory: Path) -> DatabaseReport:
    """The kill -9 run on one store (migrated and empty) at `url`; `directory` receives the journals."""
    directory.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    run = Run(database, url, options, directory)
    try:
        run.set_up()
        run.local_phase()
        if options.rest:
            run.rest_phase()
    finally:
        run.close()
    run.report.seconds = round(time.monotonic() - began, 1)
    return run.report


# --- scratch databases ----------------------------------------------------------------------------------


def create_database(database: str, directory: Path) -> str:
    """A new, migrated store for the run: a file in `directory`, or a database on the local server."""
    if database == "sqlite":
        url = f"sqlite:///{directory / 'kill.db'}"
    else:
        name = f"eventstore_kill_{os.getpid()}"
        _admin(database, f"DROP DATABASE IF EXISTS {_quoted(database, name)}")
        _admin(database, f"CREATE DATABASE {_quoted(database, name)}")
        url = f"{SERVERS[database]}/{name}"
    open_store(url).close()
    return url


def drop_database(database: str, url: str) -> None:
    if database != "sqlite":
        _admin(database, f"DROP DATABASE IF EXISTS {_quoted(database, sa.make_url(url).database or '')}")


def _quoted(database: str, name: str) -> str:
    return f'"{name}"' if database == "postgres" else f"`{name}`"


def _admin(database: str, statement: str) -> None:
    engine = sa.create_engine(
        f"{SERVERS[database]}/{'postgres' if database == 'postgres' else ''}", isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


# --- the command ------------------------------------------------------------------------------------


def parse(argv: list[str]) -> tuple[list[str], Options]:
    parser = argparse.ArgumentParser(prog="python -m reliability.kill", description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="append", choices=DATABASES, help="repeatable; default: all three")
    parser.add_argument("--kills", type=int, default=Options.kills, help="kills per phase per database")
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--rest", action=argparse.BooleanOptionalAction, default=True, help="the REST phase")
    parser.add_argument("--writers", type=int, default=Options.writers, help="local writer processes")
    parser.add_argument("--clients", type=int, default=Options.clients, help="HTTP client processes")
    parser.add_argument("--max-delay", type=float, default=Options.max_delay, help="seconds, kill delay")
    parser.add_argument("--think", type=float, default=Options.think, help="seconds, pause between ops")
    parser.add_argument("--check-every", type=int, default=Options.check_every, help="kills between checks")
    args = parser.parse_args(argv)
    options = Options(
        kills=args.kills,
        seed=args.seed,
        rest=args.rest,
        writers=args.writers,
        clients=args.clients,
        max_delay=args.max_delay,
        check_every=args.check_every,
        think=args.think,
    )
    return args.db or list(DATABASES), options


def print_table(reports: list[DatabaseReport]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="kill -9")
    columns: dict[str, Callable[[DatabaseReport], object]] = {
        "database": lambda r: r.database,
        "kills local": lambda r: r.kills_local,
        "kills server": lambda r: r.kills_server,
        "kills client": lambda r: r.kills_client,
        "mid-call": lambda r: r.kills_mid_call,
        "attempted": lambda r: r.attempted,
        "acknowledged": lambda r: r.acknowledged,
        "outcome unknown": lambda r: r.outcome_unknown,
        "unavailable": lambda r: r.unavailable,
        "probe max s": lambda r: f"{r.probe_max_seconds:.3f}",
        "checks ok": lambda r: r.checks_passed,
        "checks failed": lambda r: r.checks_failed,
        "seconds": lambda r: r.seconds,
    }
    for column in columns:
        table.add_column(column, justify="left" if column == "database" else "right")
    for report in reports:
        table.add_row(*(str(cell(report)) for cell in columns.values()))
    Console(width=150).print(table)
    for r in reports:
        for failure in r.failures:
            Console(stderr=True).print(f"[red]{r.database}: {failure}[/red]")


def main(argv: list[str]) -> int:
    databases, options = parse(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = RESULTS / f"kill-{stamp}-{os.getpid()}"  # runs started in the same second stay apart
    reports: list[DatabaseReport] = []
    for database in databases:
        directory = work / database
        directory.mkdir(parents=True)
        url = create_database(database, directory)
        print(f"kill -9 on {database}: {options.kills} kills per phase", flush=True)
        try:
            report = run_database(database, url, options, directory)
        finally:
            drop_database(database, url)
        reports.append(report)
        print(f"{database}: {'ok' if report.ok else 'FAILED'} in {report.seconds} s", flush=True)
        _write_results(stamp, options, reports)  # after each database: a long run interrupted keeps them
        if report.ok:
            shutil.rmtree(directory)  # the journals are kept only when a check failed
    print_table(reports)
    if all(r.ok for r in reports):
        shutil.rmtree(work, ignore_errors=True)
        return 0
    return 1


def _write_results(stamp: str, options: Options, reports: list[DatabaseReport]) -> None:
    result = {
        "run": "kill",
        "date": stamp,
        "cores": os.cpu_count(),
        "options": asdict(options),
        "databases": [asdict(r) for r in reports],
    }
    (RESULTS / f"kill-{stamp}-{os.getpid()}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
