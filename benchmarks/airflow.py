"""Inside Airflow (issue 13): an Execution API PUT and GET with `EventStoreBackend` against the same call
with Airflow's own `MetastoreBackend`, in one process, interleaved.

Run it in the Airflow venv, from the repository's root (`make bench` does, after the other sections):

    py=$(bash scripts/airflow-venv) && $py -m benchmarks.airflow [--quick] [--db sqlite|postgres ...]

`python -m benchmarks` (the project venv, which has no Airflow) never imports this module.

Two metadata databases per run, identical but for eventstore: one is `airflow db migrate`d and gets a
task instance (a one-task DAG, `dag.test()`, whose outlet activates the asset), then it is copied (SQLite:
the file; PostgreSQL: `CREATE DATABASE ... TEMPLATE`) and only the original gets `eventstore airflow
install`. Once installed, the triggers record every change whoever makes it, so the baseline must run on
the plain copy to be a baseline at all.

In this one process, one FastAPI `TestClient` of Airflow's execution app (`create_app(apps="execution")`)
calls `PUT /execution/store/asset/by-name/value` and `GET` of the same route with a task's JWT (the
route looks the task up and writes its dag, run, task and map index in the row). A variant is selected
before each batch, between requests, by swapping what Airflow resolved once per process: the ORM's
`settings.engine` / `NonScopedSession` / `Session` (each built by Airflow's own `configure_orm`, so both
databases get Airflow's exact engine options) and the cached backend instance
`airflow.state._backend_instance` (what `get_state_backend()` returns: Airflow reads `[state_store]
backend` once and caches the instance there). Same asset name, same keys, same value sequence in both.

Per repetition, in rotating order (`stats.interleave`): a batch of PUTs with each variant, then a batch
of GETs; the sample is µs per request; the ratio is paired (same repetition). To say where the time
goes, it also counts the SQL statements a PUT sends (SQLAlchemy's `before_cursor_execute`: the
triggers' own statements run inside the database and are not counted) and times a raw UPDATE of one
`asset_state_store` row in its own transaction on each database: the difference is the triggers' work.

Prints a table like the other sections and writes benchmarks/results/airflow-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import sqlalchemy as sa
from rich.console import Console

from benchmarks.databases import DEFAULT_WORKDIR, SERVERS
from benchmarks.report import DatabaseReport, TargetResult, machine, render
from benchmarks.stats import Stats, interleave, paired_ratio

RESULTS = Path(__file__).parent / "results"
ASSET = "afbench"  # the asset's name (and the DAG's id)
KEYS = tuple(f"key-{i}" for i in range(10))
API_VERSION = "2026-06-30"
PUT_LIMIT = 1.3  # EventStoreBackend PUT / MetastoreBackend PUT
GET_NOISE = 0.10  # GET ratio within 1 ± this: "equal within noise"
VARIANTS = ("eventstore", "metastore")

DAG_SOURCE = f"""
from airflow.sdk import DAG, Asset, task

with DAG({ASSET!r}, schedule=None, catchup=False) as dag:

    @task(outlets=[Asset({ASSET!r}, uri="bench://{ASSET}")])
    def produce():
        pass

    produce()
"""


@dataclass(frozen=True, slots=True)
class Sizes:
    reps: int
    put_ops: int  # requests per variant per repetition
    get_ops: int
    raw_ops: int  # raw UPDATEs per database per repetition
    warmup: int


FULL = Sizes(reps=9, put_ops=300, get_ops=500, raw_ops=300, warmup=50)
QUICK = Sizes(reps=5, put_ops=100, get_ops=200, raw_ops=100, warmup=20)
TINY = Sizes(reps=2, put_ops=5, get_ops=5, raw_ops=5, warmup=2)  # the smoke test (tests/airflow)


def value_for(i: int) -> dict[str, Any]:
    return {"watermark": "2024-06-01T00:00:00+00:00", "rows": i, "ok": True}


# --- the two databases ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Databases:
    kind: str
    installed: str  # URL: eventstore installed (EventStoreBackend)
    plain: str  # URL: Airflow only (MetastoreBackend)


def _pg_admin() -> sa.Engine:
    return sa.create_engine(f"{SERVERS['postgres']}/postgres", isolation_level="AUTOCOMMIT")


def _databases(kind: str, workdir: Path) -> Databases:
    tag = f"{os.getpid()}"
    if kind == "sqlite":
        return Databases(
            kind,
            f"sqlite:///{workdir}/airflow-installed-{tag}.db",
            f"sqlite:///{workdir}/airflow-plain-{tag}.db",
        )
    server = SERVERS["postgres"]
    return Databases(
        kind,
        f"{server}/eventstore_bench_airflow_installed_{tag}",
        f"{server}/eventstore_bench_airflow_plain_{tag}",
    )


def _drop(dbs: Databases) -> None:
    if dbs.kind == "sqlite":
        for url in (dbs.installed, dbs.plain):
            path = sa.make_url(url).database
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    engine = _pg_admin()
    with engine.connect() as conn:
        for url in (dbs.installed, dbs.plain):
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


@dataclass
class Orm:
    """What Airflow's `settings.configure_orm()` built for one database, to swap in and out."""

    url: str
    engine: Any
    non_scoped: Any
    scoped: Any
    async_engine: Any
    async_session: Any
    statements: int = 0


_ORM_NAMES = ("engine", "NonScopedSession", "Session", "async_engine", "AsyncSession")


def _configure(url: str) -> Orm:
    from airflow import settings

    settings.SQL_ALCHEMY_CONN = url
    settings.configure_orm()
    orm = Orm(url, *(getattr(settings, name, None) for name in _ORM_NAMES))

    def count(*_: Any) -> None:
        orm.statements += 1

    sa.event.listen(orm.engine, "before_cursor_execute", count)
    return orm


def _use(orm: Orm) -> None:
    from airflow import settings

    settings.SQL_ALCHEMY_CONN = orm.url
    for name, value in zip(
        _ORM_NAMES, (orm.engine, orm.non_scoped, orm.scoped, orm.async_engine, orm.async_session), strict=True
    ):
        setattr(settings, name, value)


@contextmanager
def _airflow_state() -> Iterator[None]:
    """Restore Airflow's ORM globals and cached backend afterwards (the smoke test's process goes on)."""
    import airflow.state
    from airflow import settings

    saved = {name: getattr(settings, name, None) for name in (*_ORM_NAMES, "SQL_ALCHEMY_CONN")}
    backend = airflow.state._backend_instance
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        airflow.state._backend_instance = backend


def _prepare(dbs: Databases) -> str:
    """Migrate the installed database, run the DAG once there (a task instance, an active asset), copy it
    to the plain one, install eventstore into the first only. Returns the task instance's id."""
    import importlib.util

    from airflow import settings
    from airflow.configuration import conf
    from airflow.utils import db as airflow_db

    from eventstore.airflow import install

    _drop(dbs)
    if dbs.kind == "postgres":
        with _pg_admin().connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{sa.make_url(dbs.installed).database}"'))
    settings.SQL_ALCHEMY_CONN = dbs.installed
    settings.configure_orm()
    airflow_db.upgradedb()
    dags = Path(conf.get("core", "dags_folder"))
    dags.mkdir(parents=True, exist_ok=True)
    (dags / f"{ASSET}.py").write_text(DAG_SOURCE)
    spec = importlib.util.spec_from_file_location(ASSET, dags / f"{ASSET}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.dag.test()
    if str(run.state) != "success":
        raise RuntimeError(f"the benchmark's DAG run ended {run.state}")
    with settings.engine.connect() as conn:
        ti = conn.execute(
            sa.text("SELECT id FROM task_instance WHERE dag_id = :d"), {"d": ASSET}
        ).scalar_one()
    settings.dispose_orm()
    if dbs.kind == "sqlite":
        shutil.copyfile(sa.make_url(dbs.installed).database or "", sa.make_url(dbs.plain).database or "")
    else:
        with _pg_admin().connect() as conn:
            conn.execute(
                sa.text(
                    f'CREATE DATABASE "{sa.make_url(dbs.plain).database}" '
                    f'TEMPLATE "{sa.make_url(dbs.installed).database}"'
                )
            )
    message = install(dbs.installed)
    if not message.startswith("eventstore installed"):
        raise RuntimeError(message)
    return str(ti)


# --- measuring --------------------------------------------------------------------------------------


@dataclass
class Measured:
    put: dict[str, list[float]]
    get: dict[str, list[float]]
    raw: dict[str, list[float]]
    statements_per_put: dict[str, float]
    puts: dict[str, int]  # PUTs answered per variant (warm-up included)
    raw_updates: int  # raw UPDATEs on each database
    problems: list[str]


def _measure(dbs: Databases, ti_id: str, sizes: Sizes) -> Measured:
    import airflow.state
    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.execution_api.app import _jwt_generator
    from airflow.state.metastore import MetastoreBackend
    from fastapi.testclient import TestClient

    from eventstore.airflow import EventStoreBackend

    orms = {"metastore": _configure(dbs.plain), "eventstore": _configure(dbs.installed)}
    backends = {"metastore": MetastoreBackend(), "eventstore": EventStoreBackend()}
    problems: list[str] = []
    puts = dict.fromkeys(VARIANTS, 0)
    counters = dict.fromkeys(VARIANTS, 0)  # each variant writes the same sequence of values

    def select(variant: str) -> None:
        _use(orms[variant])
        airflow.state._backend_instance = backends[variant]

    route = "/execution/store/asset/by-name/value"
    with TestClient(create_app(apps="execution")) as client:
        token = _jwt_generator().generate({"sub": ti_id})
        headers = {"Authorization": f"Bearer {token}", "Airflow-API-Version": API_VERSION}

        def put(variant: str, i: int) -> None:
            response = client.put(
                route,
                params={"name": ASSET, "key": KEYS[i % len(KEYS)]},
                json={"value": value_for(i)},
                headers=headers,
            )
            if response.status_code != 204:
                problems.append(f"{variant} PUT: {response.status_code} {response.text[:200]}")
            puts[variant] += 1

        def get(variant: str, i: int) -> None:
            response = client.get(route, params={"name": ASSET, "key": KEYS[i % len(KEYS)]}, headers=headers)
            if response.status_code != 200 or not isinstance(response.json().get("value"), dict):
                problems.append(f"{variant} GET: {response.status_code} {response.text[:200]}")

        def batch(variant: str, op: Callable[[str, int], None], ops: int) -> Callable[[], float]:
            def run() -> float:
                select(variant)
                start = counters[variant]
                counters[variant] += ops
                started = perf_counter()
                for i in range(start, start + ops):
                    op(variant, i)
                return (perf_counter() - started) / ops * 1e6

            return run

        for variant in VARIANTS:  # warm up: every key exists, every cache is filled
            batch(variant, put, max(sizes.warmup, len(KEYS)))()
            batch(variant, get, sizes.warmup)()
        put_samples = interleave({v: batch(v, put, sizes.put_ops) for v in VARIANTS}, sizes.reps)
        get_samples = interleave({v: batch(v, get, sizes.get_ops) for v in VARIANTS}, sizes.reps)

        statements: dict[str, float] = {}
        for variant in VARIANTS:
            before = orms[variant].statements
            batch(variant, put, len(KEYS))()
            statements[variant] = (orms[variant].statements - before) / len(KEYS)
    raw = interleave({v: _raw_update(orms[v].engine, sizes.raw_ops) for v in VARIANTS}, sizes.reps)
    for orm in orms.values():
        orm.engine.dispose()
        if orm.async_engine is not None:
            orm.async_engine.sync_engine.dispose()
    return Measured(put_samples, get_samples, raw, statements, puts, sizes.reps * sizes.raw_ops, problems)


def _raw_update(engine: sa.Engine, ops: int) -> Callable[[], float]:
    """A repetition: `ops` UPDATEs of one asset_state_store row, each its own transaction; µs per op."""
    counter = iter(range(10**9))
    update = sa.text(
        "UPDATE asset_state_store SET value = :v WHERE key = :k "
        "AND asset_id = (SELECT id FROM asset WHERE name = :a)"
    )

    def run() -> float:
        started = perf_counter()
        for _ in range(ops):
            i = next(counter)
            with engine.begin() as conn:
                conn.execute(update, {"v": json.dumps(value_for(i)), "k": KEYS[0], "a": ASSET})
        return (perf_counter() - started) / ops * 1e6

    return run


# --- checking what each variant wrote ---------------------------------------------------------------


def _check(report: DatabaseReport, dbs: Databases, measured: Measured) -> None:
    report.check(
        "every request answered as expected", not measured.problems, "; ".join(measured.problems[:3])
    )
    rows = {}
    for variant, url in (("eventstore", dbs.installed), ("metastore", dbs.plain)):
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            rows[variant] = conn.execute(
                sa.text(
                    "SELECT s.key, s.value, s.last_updated_by_kind, s.last_updated_by_dag_id "
                    "FROM asset_state_store s JOIN asset a ON a.id = s.asset_id "
                    "WHERE a.name = :a ORDER BY s.key"
                ),
                {"a": ASSET},
            ).all()
            tables = set(sa.inspect(conn).get_table_names())
            if variant == "eventstore":
                log = conn.execute(
                    sa.text(
                        "SELECT e.op, e.key, e.value, e.writer_kind, e.writer_dag_id FROM es_events e "
                        "JOIN asset a ON a.id = e.asset_id WHERE a.name = :a ORDER BY e.version"
                    ),
                    {"a": ASSET},
                ).all()
            else:
                log = []
        engine.dispose()
        keys_ok = [r.key for r in rows[variant]] == sorted(KEYS)
        writer_ok = {(r.last_updated_by_kind, r.last_updated_by_dag_id) for r in rows[variant]} == {
            ("task", ASSET)
        }
        if variant == "eventstore":
            sets = [e for e in log if e.op == "set" and e.writer_kind == "task" and e.writer_dag_id == ASSET]
            folded = {e.key: e.value for e in sets}
            # Raw UPDATEs are recorded too (writer: the row's): every PUT and every UPDATE is an event.
            expected = measured.puts[variant] + measured.raw_updates
            report.check(
                "EventStoreBackend: every PUT is an event of the log, the fold is Airflow's table",
                keys_ok
                and writer_ok
                and len(sets) == expected
                and folded == {r.key: r.value for r in rows[variant]},
                f"{len(sets)} task set events for {measured.puts[variant]} PUTs and "
                f"{expected - measured.puts[variant]} raw UPDATEs; {len(rows[variant])} rows",
            )
        else:
            report.check(
                "MetastoreBackend: Airflow's rows written by the task, no eventstore in that database",
                keys_ok and writer_ok and not any(t.startswith("es_") for t in tables),
                f"{len(rows[variant])} rows; es_* tables: {sorted(t for t in tables if t.startswith('es_'))}",
            )
    same = [(r.key, r.value) for r in rows["eventstore"]] == [(r.key, r.value) for r in rows["metastore"]]
    report.check("both variants left the same rows", same, f"{len(rows['eventstore'])} keys")


# --- the report ---------------------------------------------------------------------------------------


def _report(kind: str, measured: Measured, sizes: Sizes) -> DatabaseReport:
    report = DatabaseReport(db=f"Airflow 3.3 on {kind}")
    section = "execution API"
    for op, samples, unit_ops in (("PUT", measured.put, sizes.put_ops), ("GET", measured.get, sizes.get_ops)):
        for variant, label in (("eventstore", "EventStoreBackend"), ("metastore", "MetastoreBackend")):
            report.add(
                f"{op.lower()}.{variant}",
                section,
                f"{op} /execution/store/asset/by-name/value, {label}",
                "µs/req",
                Stats(tuple(samples[variant])),
                f"{unit_ops} requests per sample",
            )
        report.add(
            f"{op.lower()}.ratio",
            section,
            f"{op}: EventStoreBackend / MetastoreBackend (paired)",
            "×",
            paired_ratio(samples["eventstore"], samples["metastore"]),
        )
    where = "where the time goes"
    report.add(
        "raw_update.installed",
        where,
        "raw UPDATE of one row, own transaction, with eventstore's triggers",
        "µs/op",
        Stats(tuple(measured.raw["eventstore"])),
    )
    report.add(
        "raw_update.plain",
        where,
        "raw UPDATE of one row, own transaction, no triggers",
        "µs/op",
        Stats(tuple(measured.raw["metastore"])),
    )
    report.add(
        "raw_update.ratio",
        where,
        "raw UPDATE: with triggers / without (paired)",
        "×",
        paired_ratio(measured.raw["eventstore"], measured.raw["metastore"]),
    )
    for variant, label in (("eventstore", "EventStoreBackend"), ("metastore", "MetastoreBackend")):
        report.add(
            f"statements.{variant}",
            where,
            f"SQL statements a PUT sends, {label}",
            "stmts",
            Stats((measured.statements_per_put[variant],)),
            "counted client-side: the triggers' statements run inside the database",
        )
    put = report.stats("put.ratio")
    get = report.stats("get.ratio")
    report.targets.append(
        TargetResult(
            "PUT: EventStoreBackend / MetastoreBackend",
            "put.ratio",
            "<=",
            PUT_LIMIT,
            "×",
            put.median if put else None,
            "not measured" if put is None else "met" if put.median <= PUT_LIMIT else "missed",
        )
    )
    within = get is not None and abs(get.median - 1) <= GET_NOISE
    report.targets.append(
        TargetResult(
            "GET: EventStoreBackend / MetastoreBackend, equal within noise",
            "get.ratio",
            "≈",
            1.0,
            "×",
            get.median if get else None,
            "not measured" if get is None else "met" if within else "missed",
            f"met within 1 ± {GET_NOISE}",
        )
    )
    return report


def run_one(kind: str, sizes: Sizes, workdir: Path, console: Console) -> DatabaseReport:
    started = perf_counter()
    dbs = _databases(kind, workdir)
    try:
        with _airflow_state():
            console.log(f"[cyan]{kind}[/cyan]: migrating, running the DAG, copying, installing ...")
            ti_id = _prepare(dbs)
            console.log(f"[cyan]{kind}[/cyan]: measuring ...")
            measured = _measure(dbs, ti_id, sizes)
        report = _report(kind, measured, sizes)
        _check(report, dbs, measured)
        report.settings = {
            "client": "fastapi TestClient of create_app(apps='execution'), a task's JWT, in process",
            "installed": _safe(dbs.installed),
            "plain": _safe(dbs.plain),
        }
        report.notes.append(
            "Two databases, identical but for eventstore: the plain one is a copy made before "
            "`airflow install`, so the MetastoreBackend baseline runs with no trigger."
        )
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        report = DatabaseReport(db=f"Airflow 3.3 on {kind}")
        report.check(
            "the benchmark ran", False, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        )
    finally:
        _drop(dbs)
    report.sizes = dict(asdict(sizes))
    report.seconds = perf_counter() - started
    return report


def _safe(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


def write_json(
    reports: list[DatabaseReport], options: dict[str, Any], directory: Path, started: datetime
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    import airflow

    document = {
        "started": started.isoformat(timespec="seconds"),
        "finished": now.isoformat(timespec="seconds"),
        "machine": {**machine(), "airflow": airflow.__version__},
        "options": options,
        "databases": [r.to_json() for r in reports],
    }
    path = directory / f"airflow-{now:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False))
    return path


def _environment(home: Path) -> None:
    """Airflow's settings for this process, before anything imports Airflow."""
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/unused.db",
        AIRFLOW__STATE_STORE__BACKEND="airflow.state.metastore.MetastoreBackend",
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),  # signs and checks the task's JWT
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.airflow", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db",
        action="append",
        choices=("sqlite", "postgres", "mysql"),
        help="repeatable; default sqlite and postgres (mysql: Airflow mode does not support it, skipped)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests and repetitions")
    parser.add_argument("--tiny", action="store_true", help="a few requests: the smoke test")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="SQLite files and AIRFLOW_HOME")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where airflow-<time>.json goes")
    # `make bench` passes BENCH_ARGS, the main runner's options, by default: what is not ours is ignored.
    args, others = parser.parse_known_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a log file or a pipe: room for the tables
    if others:
        console.print(
            f"[dim]benchmarks.airflow: ignoring {' '.join(others)} (options of python -m benchmarks)[/dim]"
        )
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    kinds = [kind for kind in args.db or ["sqlite", "postgres"] if kind != "mysql"]
    if args.db and "mysql" in args.db:
        console.print(
            "[yellow]benchmarks.airflow: MariaDB skipped (`airflow install` supports SQLite and PostgreSQL)"
        )
    if not kinds:
        return 0
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if "airflow" not in sys.modules:
        _environment(workdir / f"airflow-home-{os.getpid()}")
    started = datetime.now(UTC)
    reports = []
    for kind in kinds:
        report = run_one(kind, sizes, workdir, console)
        render(report, console)
        reports.append(report)
    options = {"db": kinds, "quick": args.quick, "tiny": args.tiny}
    path = write_json(reports, options, args.results, started)
    console.print(f"results: {path}")
    shutil.rmtree(workdir / f"airflow-home-{os.getpid()}", ignore_errors=True)
    return 0 if all(c.ok for r in reports for c in r.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
