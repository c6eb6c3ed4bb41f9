"""A real Airflow 3.3 per test session: one AIRFLOW_HOME and one metadata database (SQLite file, or a
fresh PostgreSQL database), `airflow db migrate`d, with eventstore installed.

Airflow reads its configuration once per process, so one run covers one database:
EVENTSTORE_AIRFLOW_TEST_DB=sqlite|postgres (`make test-airflow` runs both). This module sets Airflow's
environment before anything imports Airflow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

DB = os.environ.get("EVENTSTORE_AIRFLOW_TEST_DB", "sqlite")
# The demo makes its own Airflow home on SQLite, whatever the session's database: it runs in the SQLite
# pass only (left out of the PostgreSQL pass rather than skipped, so that CI=true shows no skip).
collect_ignore = [] if DB == "sqlite" else ["test_demo.py"]
if DB not in ("sqlite", "postgres"):
    raise RuntimeError(f"EVENTSTORE_AIRFLOW_TEST_DB must be sqlite or postgres, not {DB!r}")

HOME = Path(tempfile.mkdtemp(prefix=f"eventstore-airflow-{DB}-"))
# The dags folder: the seed's watermark DAG from examples/airflow/ (the one copy, which `make airflow-demo`
# runs too) and the tests' own DAGs.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "airflow"
DAGS = HOME / "dags"
shutil.copytree(Path(__file__).with_name("dags"), DAGS)
shutil.copy(EXAMPLES / "incremental_orders.py", DAGS)
PG_SERVER = os.environ.get("EVENTSTORE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_NAME = f"eventstore_airflow_test_{os.getpid()}"
URL = f"sqlite:///{HOME}/airflow.db" if DB == "sqlite" else f"{PG_SERVER}/{PG_NAME}"

os.environ.update(
    AIRFLOW_HOME=str(HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=URL,
    AIRFLOW__STATE_STORE__BACKEND="eventstore.airflow.EventStoreBackend",
)


def _pg_admin() -> sa.Engine:
    return sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def airflow_url() -> Iterator[str]:
    """Airflow's migrated metadata database with eventstore installed; its URL."""
    if DB == "postgres":
        try:
            with _pg_admin().connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{PG_NAME}"'))
        except sa.exc.OperationalError as error:
            from tests.databases import unavailable  # fails under CI=true, skips elsewhere

            unavailable("postgres", str(error.orig).strip().splitlines()[0])
    from airflow.utils import db as airflow_db  # what `airflow db migrate` runs

    started = time.perf_counter()
    airflow_db.upgradedb()
    print(f"airflow db migrate: {time.perf_counter() - started:.1f}s")

    from eventstore.airflow import install

    message = install(URL)
    assert message.startswith("eventstore installed"), message
    yield URL
    from airflow import settings

    settings.dispose_orm()
    if DB == "postgres":
        with _pg_admin().connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_NAME}" WITH (FORCE)'))
    shutil.rmtree(HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def db(airflow_url: str) -> Iterator[sa.Engine]:
    """A plain engine on Airflow's database, for raw SQL and for reading the log."""
    engine = sa.create_engine(airflow_url)
    yield engine
    engine.dispose()


def asset_id(db: sa.Engine, name: str) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.text("SELECT id FROM asset WHERE name = :n"), {"n": name}).scalar_one())


def events(db: sa.Engine, asset: int, *, after_version: int = 0) -> list[Any]:
    """The asset's events in version order (rows of es_events)."""
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT * FROM es_events WHERE asset_id = :a AND version > :v ORDER BY version"),
                {"a": asset, "v": after_version},
            )
        )


def last_version(db: sa.Engine, asset: int) -> int:
    with db.connect() as conn:
        found = conn.execute(sa.text("SELECT version FROM es_assets WHERE id = :a"), {"a": asset}).scalar()
        return int(found or 0)


def check_log_matches_airflow(db: sa.Engine, asset: int) -> dict[str, str]:
    """The fold of the asset's events equals Airflow's asset_state_store rows; versions run 1, 2, ... up
    to es_assets.version with no hole; positions increase with versions; eventstore's active mark is
    Airflow's. Returns the state."""
    log = events(db, asset)
    assert [e.version for e in log] == list(range(1, len(log) + 1))
    assert last_version(db, asset) == len(log)
    positions = [e.position for e in log]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    times = [e.recorded_at for e in log]
    assert times == sorted(times)
    folded: dict[str, str] = {}
    for e in log:
        assert e.writer_kind in ("task", "watcher", "api", "scheduler", "cli")
        if e.op == "set":
            folded[e.key] = e.value
        elif e.op == "delete":
            assert folded.pop(e.key) == e.previous
        elif e.op == "clear":
            folded.clear()
    with db.connect() as conn:
        table = dict(
            conn.execute(
                sa.text("SELECT key, value FROM asset_state_store WHERE asset_id = :a"), {"a": asset}
            ).all()
        )
        airflow_active = conn.execute(
            sa.text(
                "SELECT count(*) FROM asset a JOIN asset_active aa ON aa.name = a.name AND aa.uri = a.uri "
                "WHERE a.id = :a"
            ),
            {"a": asset},
        ).scalar_one()
        es_active = conn.execute(
            sa.text("SELECT count(*) FROM es_asset_active WHERE asset_id = :a"), {"a": asset}
        ).scalar_one()
    assert folded == table
    assert es_active == airflow_active
    return table
