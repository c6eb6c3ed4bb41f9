"""One database (eventstore/database.py): the units of work `Database.run` and
`Database.run_direct_transaction` commit or apply nothing, a stale connection is replaced before a write
that cannot be retried, and an unusable database is reported without its password; on SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from eventstore import Asset, AssetNotActiveError, StoreUnavailableError, open_store, schema
from eventstore.database import Database
from eventstore.prepared import Prepared
from tests.test_retries import _kill_other_connections

_assets = schema.assets
_INSERT = _assets.insert().values(
    identity_hash=sa.bindparam("name"),
    name=sa.bindparam("name"),
    uri=sa.bindparam("name"),
    version=0,
    created_at=sa.bindparam("now"),
)
_NAMES = sa.select(_assets.c.name).order_by(_assets.c.name)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    opened = Database(db_url)
    yield opened
    opened.dispose()


def committed_names(db_url: str) -> list[str]:
    """The names in es_assets, as another connection sees them."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(_NAMES).scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize("error", [AssetNotActiveError("refused"), RuntimeError("boom")], ids=type)
def test_run_commits_what_returns_and_applies_nothing_of_what_raises(
    database: Database, db_url: str, error: Exception
) -> None:
    now = datetime.now(UTC)
    database.run(lambda conn: conn.execute(_INSERT, {"name": "kept", "now": now}), write=True)

    def fails(conn: sa.Connection) -> None:
        conn.execute(_INSERT, {"name": "dropped", "now": now})
        raise error

    with pytest.raises(type(error)):
        database.run(fails, write=True)
    assert committed_names(db_url) == ["kept"]
    assert database.run(lambda conn: list(conn.execute(_NAMES).scalars())) == ["kept"]


def test_run_direct_transaction_rolls_back_before_its_connection_serves_again(
    database: Database, db_url: str
) -> None:
    insert = Prepared(_INSERT, database.dialect)
    now = datetime.now(UTC)

    def fails(connection: object) -> None:
        insert.run(connection, {"name": "dropped", "now": now})  # type: ignore[arg-type]
        raise AssetNotActiveError("refused")  # an error of eventstore's own: the connection is kept

    with pytest.raises(AssetNotActiveError):
        database.run_direct_transaction(fails)
    # The same kept connection serves the next transaction: nothing of the failed one may come along.
    database.run_direct_transaction(lambda connection: insert.run(connection, {"name": "kept", "now": now}))
    assert committed_names(db_url) == ["kept"]


def test_an_unusable_database_is_store_unavailable_naming_it_without_its_password() -> None:
    database = Database("postgresql+psycopg://nobody:secret@127.0.0.1:9/none")
    try:
        for call in (
            lambda: database.run_admin(lambda engine: engine.connect().close()),
            lambda: database.run(lambda conn: conn.execute(sa.text("SELECT 1"))),
            lambda: database.run_direct(lambda connection: None),
        ):
            with pytest.raises(StoreUnavailableError, match=r"Cannot use the database at ") as raised:
                call()
            assert "nobody:***@127.0.0.1:9/none" in str(raised.value)
            assert "secret" not in str(raised.value)
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["postgres", "mysql"], indirect=True)
def test_every_stale_connection_is_replaced_before_a_set_is_sent(db_url: str, backend: str) -> None:
    """After every session of the store was closed by the server (as a restart does), the next sets
    neither fail nor become unknown outcomes: the closed connections are seen and discarded first."""
    asset = Asset("orders")
    with open_store(db_url) as store:
        store.activate(asset)
        states = [store.asset(asset) for _ in range(4)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # several held connections
            list(pool.map(lambda n: states[n].set(f"k{n}", n), range(4)))
        _kill_other_connections(db_url, backend)
        for n in range(8):
            states[0].set("watermark", n)
        assert [change.value for change in store.history(asset, "watermark")] == list(range(8))
