"""The schema is created by migrations, and a store refuses a schema that does not match its code."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from eventstore import SchemaVersionError, open_store
from eventstore.cli import main as cli
from eventstore.migrate import VERSION_TABLE, head_revision
from tests import databases


def test_a_missing_schema_is_refused_without_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SchemaVersionError, match="eventstore db upgrade"):
        open_store(url, migrate=False)
    assert cli(["--url", url, "db", "upgrade"]) == 0
    open_store(url, migrate=False).close()


def test_open_store_migrates_once_and_is_idempotent(db_url: str) -> None:
    open_store(db_url).close()
    with open_store(db_url, migrate=False) as store:
        assert store.assets() == []
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == head_revision()
    engine.dispose()


def _stamp(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_a_newer_schema_is_refused_even_with_migrate(db_url: str) -> None:
    _stamp(db_url, "9999_from_the_future")
    try:
        for migrate in (True, False):
            with pytest.raises(SchemaVersionError, match="Upgrade the eventstore package"):
                open_store(db_url, migrate=migrate)
    finally:
        _stamp(db_url, head_revision())


def test_migrations_from_several_processes_at_once(backend: str, tmp_path: Path) -> None:
    from tests import workers

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = databases.create_empty_database(backend, f"eventstore_migrate_{abs(hash(tmp_path)) % 10**8}")
    try:
        workers.run_processes(workers.open_and_close, [(url,)] * 4)
        with open_store(url, migrate=False) as store:
            assert store.assets() == []
    finally:
        if backend != "sqlite":
            databases.drop_database(backend, url)
