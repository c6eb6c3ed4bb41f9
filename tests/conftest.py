"""Fixtures: `store` and `db_url` run every storage test on SQLite, PostgreSQL and MariaDB.

One suite, two stores: a module marked `pytest.mark.both_stores` runs each test that uses `store` twice
per database, with the local `Store` and with the HTTP client (`eventstore.client.connect`) talking to a
real REST server on that same database (one uvicorn server per database per session, in a background
thread, on 127.0.0.1). A test of such a module that needs the local store's internals is marked
`pytest.mark.local_only`. `remote_store` is the remote one alone.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventstore import Asset, open_store
from tests import databases
from tests.logcheck import LogInspector

# tests/airflow/ needs a real Airflow 3.3 (the Airflow venv: `make test-airflow`); the project venv has none.
collect_ignore = [] if importlib.util.find_spec("airflow") else ["airflow"]
STORE_KINDS = ("local", "remote")
ORDERS = Asset("orders", uri="s3://data/orders/")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    definition = metafunc.definition
    if (
        "store" in metafunc.fixturenames
        and definition.get_closest_marker("both_stores")
        and not definition.get_closest_marker("local_only")
    ):
        metafunc.parametrize("store_kind", STORE_KINDS)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.create_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, str]]:
    """Per-session databases on the PostgreSQL and MariaDB servers, created on first use, then dropped."""
    created: dict[str, str] = {}
    yield created
    for backend, url in created.items():
        databases.drop_database(backend, url)


@pytest.fixture(params=databases.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_kind() -> str:
    """ "local" unless the module is marked both_stores (then each test runs with "local" and "remote")."""
    return "local"


@pytest.fixture(scope="session")
def remote_sqlite_url(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SQLite database the session's remote server uses (emptied before each test)."""
    return databases.sqlite_copy(sqlite_template, tmp_path_factory.mktemp("remote-sqlite"))


@pytest.fixture(scope="session")
def remote_servers() -> Iterator[dict[str, Any]]:
    """One REST server per database URL, started on first use, stopped at the end of the session."""
    servers: dict[str, Any] = {}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def db_url(
    request: pytest.FixtureRequest,
    backend: str,
    store_kind: str,
    sqlite_template: Path,
    server_databases: dict[str, str],
    tmp_path: Path,
) -> str:
    """The URL of a migrated, empty store on `backend`."""
    if backend == "sqlite":
        if store_kind == "remote":  # the session server's database, emptied
            url: str = request.getfixturevalue("remote_sqlite_url")
            databases.empty_tables(url)
            return url
        return databases.sqlite_copy(sqlite_template, tmp_path)
    if backend not in server_databases:
        name = f"eventstore_test_{os.getpid()}"
        server_databases[backend] = databases.create_database(backend, name)
    url = server_databases[backend]
    databases.empty_tables(url)
    return url


@pytest.fixture
def store(request: pytest.FixtureRequest, store_kind: str, db_url: str) -> Iterator[Any]:
    """The local `Store` on `db_url`, or (store_kind "remote") a client of a REST server on it."""
    if store_kind == "remote":
        yield request.getfixturevalue("remote_store")
        return
    with open_store(db_url) as opened:
        yield opened


@pytest.fixture
def state(store: Any) -> Any:
    """The accessor of the asset `orders` (uri s3://data/orders/), activated in `store`."""
    store.activate(ORDERS)
    return store.asset(ORDERS)


@pytest.fixture
def inspector(db_url: str) -> Iterator[LogInspector]:
    """The log and the view of `db_url`, read directly with SQL (tests/logcheck.py)."""
    inspector = LogInspector(db_url)
    yield inspector
    inspector.close()


@pytest.fixture
def remote_store(db_url: str, remote_servers: dict[str, Any]) -> Iterator[Any]:
    """`eventstore.client.connect(...)` to the session's REST server on `db_url` (an empty store)."""
    from eventstore.client import connect
    from tests.remote import ServerThread

    if db_url not in remote_servers:
        remote_servers[db_url] = ServerThread(db_url)
    with connect(remote_servers[db_url].url) as client:
        yield client
