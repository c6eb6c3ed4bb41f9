"""What is retried and how failures reach the user (eventstore.retries): an unreachable database, a
dropped pooled connection, a connection lost while opening, and a commit whose outcome is unknown."""

from __future__ import annotations

import pymysql
import pytest
import sqlalchemy as sa

from eventstore import Asset, OutcomeUnknownError, StoreUnavailableError, open_store
from eventstore.dialects import backend_for
from eventstore.retries import Attempt, unavailable, with_retries


@pytest.mark.parametrize(
    "url",
    ["postgresql+psycopg://postgres@127.0.0.1:9/none", "mysql+pymysql://root@127.0.0.1:9/none"],
    ids=["postgres", "mysql"],
)
def test_an_unreachable_database_raises_store_unavailable(url: str) -> None:
    with pytest.raises(StoreUnavailableError, match=r"Cannot use the database at .*127\.0\.0\.1:9.*running"):
        open_store(url)


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


def _lost(code: int, message: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(code, message))


def test_a_mariadb_connection_lost_while_opening_is_tried_again() -> None:
    tries: list[int] = []

    def attempt(state: Attempt) -> str:
        tries.append(1)
        if len(tries) < 3:
            raise _lost(
                2013, "Lost connection to MySQL server at 'handshake: reading initial communication packet'"
            )
        return "done"

    assert with_retries(backend_for("mysql"), "mysql://db", attempt) == "done"
    assert len(tries) == 3


def test_a_server_that_refuses_connections_is_reported_at_once() -> None:
    tries: list[int] = []

    def attempt(state: Attempt) -> None:
        tries.append(1)
        raise _lost(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)")

    with pytest.raises(StoreUnavailableError, match="nothing of this call was applied") as raised:
        with_retries(backend_for("mysql"), "mysql://db", attempt)
    assert not isinstance(raised.value, OutcomeUnknownError)
    assert len(tries) == 1


def test_a_connection_lost_while_committing_is_an_unknown_outcome_and_never_retried() -> None:
    tries: list[int] = []

    def attempt(state: Attempt) -> None:
        tries.append(1)
        state.committing = True
        raise _lost(2013, "Lost connection to MySQL server during query")

    with pytest.raises(OutcomeUnknownError, match="may or may not have been applied"):
        with_retries(backend_for("mysql"), "mysql://db", attempt)
    assert len(tries) == 1
    error = unavailable("sqlite:///x.db", _lost(2013, "gone"), during_commit=True)
    assert isinstance(error, OutcomeUnknownError) and isinstance(error, StoreUnavailableError)
