"""Fixtures: `store` and `db_url` run every storage test on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore import Store, open_store
from tests import databases

# tests/airflow/ needs a real Airflow 3.3 (the Airflow venv: `make test-airflow`); the project venv has none.
collect_ignore = [] if importlib.util.find_spec("airflow") else ["airflow"]


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
def db_url(backend: str, sqlite_template: Path, server_databases: dict[str, str], tmp_path: Path) -> str:
    """The URL of a migrated, empty store on `backend`."""
    if backend == "sqlite":
        return databases.sqlite_copy(sqlite_template, tmp_path)
    if backend not in server_databases:
        name = f"eventstore_test_{os.getpid()}"
        server_databases[backend] = databases.create_database(backend, name)
    url = server_databases[backend]
    databases.empty_tables(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as opened:
        yield opened
