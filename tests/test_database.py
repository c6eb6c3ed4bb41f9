"""A database that cannot be reached, or a connection that breaks, gets a clear error or a clean retry."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from eventstore import Asset, StoreUnavailableError, open_store


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://postgres@127.0.0.1:9/none", "mysql+pymysql://root@127.0.0.1:9/none"],
    ids=["postgres", "mysql"],
)
def test_an_unreachable_database_raises_store_unavailable(url: str) -> None:
    with pytest.raises(StoreUnavailableError, match=r"Cannot use the database at .*127\.0\.0\.1:9.*running"):
        open_store(url)


def test_an_unsupported_database_is_named(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="does not support the 'oracle' database"):
        open_store("oracle://scott@127.0.0.1/x")


def _kill_other_connections(url: str, backend: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if backend == "postgres":
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        else:
            ids = conn.execute(
                sa.text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                )
            ).scalars()
            for connection_id in ids:
                conn.execute(sa.text(f"KILL {int(connection_id)}"))
    engine.dispose()


@pytest.mark.parametrize("backend", ["postgres", "mysql"], indirect=True)
def test_a_dropped_pooled_connection_is_replaced_transparently(db_url: str, backend: str) -> None:
    asset = Asset("orders")
    with open_store(db_url) as store:
        store.activate(asset)
        state = store.asset(asset)
        state.set("watermark", 1)
        _kill_other_connections(db_url, backend)  # the pool now holds dead connections
        state.set("watermark", 2)
        _kill_other_connections(db_url, backend)
        assert state.get("watermark") == 2
        assert [change.value for change in store.history(asset, "watermark")] == [1, 2]
