"""The schema is created by migrations, and a store refuses a schema that does not match its code."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from eventstore import Asset, SchemaVersionError, open_store, schema
from eventstore.cli import main as cli
from eventstore.migrate import VERSION_TABLE, alembic_config, current_revision, head_revision
from tests import databases


def test_a_missing_schema_is_refused_without_migrate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SchemaVersionError) as refused:
        open_store(url, migrate=False)
    assert f"`eventstore --url {url} db upgrade`" in str(refused.value)  # names the database to upgrade
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


def test_migrations_from_several_threads_at_once(tmp_path: Path) -> None:
    """Alembic keeps the running migration in module globals: without eventstore's in-process lock, one
    thread's revisions ran on another thread's connection (seen in CI as `KeyError: 'script'` and tables
    created in the wrong database)."""
    urls = [f"sqlite:///{tmp_path / f'fresh{i}.db'}" for i in range(6)]
    start = threading.Barrier(len(urls))

    def open_and_close(url: str) -> None:
        start.wait()
        open_store(url).close()

    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        for outcome in [pool.submit(open_and_close, url) for url in urls]:
            outcome.result()
    for url in urls:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert current_revision(conn) == head_revision()
                tables = set(sa.inspect(conn).get_table_names())
                assert tables >= {table.name for table in schema.metadata.sorted_tables}
        finally:
            engine.dispose()


def _downgrade(url: str, revision: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
            conn.commit()
    finally:
        engine.dispose()


def test_positions_go_on_across_migration_0003(db_url: str) -> None:
    """0003 moves PostgreSQL's positions from es_log_head to a sequence (and back on downgrade): no
    position is handed out twice either way. Elsewhere it changes nothing, and the same holds."""
    asset = Asset("a")
    with open_store(db_url) as store:
        store.activate(asset)
        store.asset(asset).set("k", 1)
        last = store.events()[-1].position
    _downgrade(db_url, "0002")
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.log_head.c.position)).scalar_one() == last
    engine.dispose()
    with open_store(db_url) as store:  # upgrades to the head again
        store.asset(asset).set("k", 2)
        assert [e.position for e in store.events(after=last)] == [last + 1]
