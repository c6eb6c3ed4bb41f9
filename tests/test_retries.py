"""What is retried and how failures reach the user (eventstore.retries): an unreachable database, a
dropped pooled connection, a connection lost while opening, and a commit whose outcome is unknown."""

from __future__ import annotations

import concurrent.futures
import time

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


_KILL = {"postgres": "SELECT pg_terminate_backend({})", "mysql": "KILL {}"}
_OTHER_SESSIONS = {
    "postgres": (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ),
    "mysql": "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()",
}


def _kill_other_connections(url: str, backend: str) -> None:
    """Kill every other session on the store's database, as a restart does, and wait until they are gone
    (pg_terminate_backend only signals: the session closes its socket a moment later)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        killed = set(conn.execute(sa.text(_OTHER_SESSIONS[backend])).scalars())
        for session in killed:
            conn.execute(sa.text(_KILL[backend].format(int(session))))
        deadline = time.monotonic() + 10
        while killed & set(conn.execute(sa.text(_OTHER_SESSIONS[backend])).scalars()):
            assert time.monotonic() < deadline, "the killed sessions did not go away"
            time.sleep(0.01)
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


_WAITING_ON_A_LOCK = {
    "postgres": (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ),
    # The only session of the database running a statement: the set, waiting (the others are idle).
    "mysql": (
        "SELECT id FROM information_schema.processlist "
        "WHERE db = DATABASE() AND command = 'Query' AND id <> CONNECTION_ID()"
    ),
}


@pytest.mark.parametrize("backend", ["postgres", "mysql"], indirect=True)
def test_a_set_whose_connection_is_killed_in_flight_is_an_unknown_outcome_never_repeated(
    db_url: str, backend: str
) -> None:
    """The single-statement `set` is sent, then its server session is killed before it answers (while it
    waits for a lock another transaction holds). It may have committed as far as the caller can know:
    OutcomeUnknownError, and the statement is not sent again on another connection (before the fix, it
    was: the set returned as if nothing had happened, and after a commit whose answer was lost the log
    held it twice)."""
    asset = Asset("orders")
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    with open_store(db_url) as store, admin.connect() as killer, admin.connect() as locker:
        store.activate(asset)
        state = store.asset(asset)
        state.set("watermark", 1)
        locker.execute(sa.text("BEGIN"))
        locker.execute(sa.text("SELECT id FROM es_assets WHERE name = 'orders' FOR UPDATE"))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            setting = pool.submit(state.set, "watermark", 2)
            deadline = time.monotonic() + 20
            waiting: list[int] = []
            while not waiting and time.monotonic() < deadline:
                waiting = list(killer.execute(sa.text(_WAITING_ON_A_LOCK[backend])).scalars())
                time.sleep(0.02)
            try:
                assert len(waiting) == 1, f"the set never waited for the lock: {waiting}"
                killer.execute(sa.text(_KILL[backend].format(int(waiting[0]))))
                time.sleep(0.3)  # a repeated statement would now wait for the lock in its turn
            finally:
                locker.execute(sa.text("ROLLBACK"))
            with pytest.raises(OutcomeUnknownError, match="may or may not have been applied"):
                setting.result(timeout=30)
        # The store recovers by itself; the killed statement did not commit, and nothing repeated it.
        assert [change.value for change in store.history(asset, "watermark")] == [1]
        state.set("watermark", 3)
        assert [change.value for change in store.history(asset, "watermark")] == [1, 3]
    admin.dispose()
