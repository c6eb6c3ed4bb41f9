"""The HTTP client (CONTRACT §10) beyond the shared suite (tests/conftest.py runs the accessor, context,
task, replay and restore tests through it too): atomic updates from several processes, writers and
tokens, what is retried and what never is, keys that look like paths, refusals before sending.
Everything talks HTTP on loopback to a real server on a real database."""

from __future__ import annotations

import logging
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from eventstore import (
    Asset,
    AssetNotActiveError,
    Op,
    OutcomeUnknownError,
    StateStore,
    StoreUnavailableError,
    Writer,
    open_store,
    schema,
    task,
)
from eventstore.client import AuthError, RemoteStore, connect
from eventstore.tokens import create_token
from tests import databases, workers
from tests.remote import ServeProcess, ServerThread, free_port

ORDERS = Asset("orders", "s3://data/orders/")
postgres_only = pytest.mark.parametrize("backend", ["postgres"], indirect=True)
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def store_kind() -> str:
    """`db_url` here is the database of the session's REST server (`remote_store`)."""
    return "remote"


@sqlite_only
def test_the_client_is_a_state_store_and_a_context_manager(remote_store: RemoteStore) -> None:
    assert isinstance(remote_store, StateStore)
    with connect(remote_store.url) as other:
        assert other.assets() == []
    with pytest.raises(RuntimeError):  # closed
        other.assets()


# --- update is atomic over HTTP ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_eight_processes_updating_one_key_through_serve_lose_nothing(db_url: str) -> None:
    processes, times = 8, 100
    with ServeProcess(db_url) as server, connect(server.url) as remote:
        remote.activate(workers.COUNTER)
        # How fast is for `make bench` (retries per op, section client); here only that nothing is lost.
        workers.run_processes(workers.remote_increment, [(server.url, times)] * processes)
        assert remote.asset(workers.COUNTER).get("n") == processes * times
        history = remote.history(workers.COUNTER, "n")
    assert [change.value for change in history] == list(range(1, processes * times + 1))
    assert all(later.previous == earlier.value for earlier, later in pairwise(history))
    assert {change.writer for change in history} == {Writer.task("dag", "run", "increment")}


# --- writers and tokens ------------------------------------------------------------------------------


@pytest.fixture
def guarded(sqlite_template: Path, tmp_path: Path) -> Any:
    """A server of its own (tokens close a server for good) with an admin, a write and a read token."""
    url = databases.sqlite_copy(sqlite_template, tmp_path)
    with open_store(url) as store:
        tokens = {scope: create_token(store, f"{scope}-bot", scope) for scope in ("admin", "write", "read")}
    server = ServerThread(url)
    yield server, tokens
    server.stop()


def test_tokens_name_the_user_and_task_writers_travel_in_a_header(guarded: Any) -> None:
    server, tokens = guarded
    with connect(server.url, tokens["admin"]) as admin, connect(server.url, tokens["write"]) as worker:
        admin.activate(ORDERS, Writer.cli(user="alice"))  # not a task: recorded as the token's api write
        worker.asset(ORDERS, Writer.task("d", "r", "t", 2, 3, user="ignored")).set("a", 1)
        worker.asset(ORDERS, Writer.watcher()).set_many({"a": 2, "b": 3})
        worker.asset(ORDERS, Writer.cli(user="bob")).delete("b")
        worker.asset(ORDERS).update("a", lambda n: n + 1)

        @task(inlets=[ORDERS], outlets=[Asset("customers")])
        def load(**context: Any) -> Any:
            context["asset_state_store"][ORDERS].set("watermark", "w")
            return context["run_id"]

        assert admin.run_task(load, dag_id="dag", run_id="run", task_id="load") == "run"
        restored = worker.restore(ORDERS, position=0, writer=Writer.task("d", "r", "rewind"))
        rewinder = Writer.task("d", "r", "rewind", user="write-bot")
        assert restored and {c.writer for c in restored} == {rewinder}

        history = admin.history(ORDERS)
    assert [(c.op, c.writer) for c in history][:7] == [
        (Op.ACTIVATE, Writer.api(user="admin-bot")),
        (Op.SET, Writer.task("d", "r", "t", 2, 3, user="write-bot")),
        (Op.SET, Writer.watcher(user="write-bot")),
        (Op.SET, Writer.watcher(user="write-bot")),
        (Op.DELETE, Writer.api(user="write-bot")),
        (Op.SET, Writer.api(user="write-bot")),
        (Op.SET, Writer.task("dag", "run", "load", user="admin-bot")),
    ]
    assert history[-len(restored) :] == restored


def test_a_missing_bad_or_too_weak_token_is_an_auth_error(guarded: Any) -> None:
    server, tokens = guarded
    for token in (None, "es_not-a-token"):
        with connect(server.url, token) as anonymous, pytest.raises(AuthError, match="401"):
            anonymous.is_active(ORDERS)
    with connect(server.url, tokens["read"]) as reader:
        with pytest.raises(AuthError, match="403"):
            reader.activate(ORDERS)
        assert reader.assets() == []
        assert reader.stats.retries == 0  # refusals are final: never retried
    with connect(server.url, tokens["admin"]) as admin:
        admin.activate(ORDERS)
    with connect(server.url, tokens["read"]) as reader, pytest.raises(AuthError, match="403"):
        reader.asset(ORDERS).set("k", 1)
    assert issubclass(AuthError, Exception) and AuthError.__mro__[1].__name__ == "StateStoreError"


# --- what is retried, and what never is ------------------------------------------------------------


def test_an_unreachable_server_is_unavailable_and_safe_to_retry() -> None:
    remote = connect(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    context = remote.task_context(inlets=[ORDERS], writer=Writer.task("d", "r", "t"))  # no I/O
    with pytest.raises(StoreUnavailableError, match="Cannot reach") as caught:
        context["asset_state_store"].get("watermark")
    assert not isinstance(caught.value, OutcomeUnknownError)
    with pytest.raises(StoreUnavailableError, match="nothing was sent") as caught:
        remote.asset(ORDERS).set("k", 1)  # nothing was sent: safe to retry even a write
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert remote.stats.retries == 4 and remote.stats.requests == 6
    remote.close()


@postgres_only
def test_a_write_without_an_answer_is_never_repeated(remote_store: RemoteStore, db_url: str) -> None:
    """A row lock held by another connection makes the server's writes wait past the client's read
    timeout: the unconditional PUT raises OutcomeUnknownError at once, the conditional PATCH is sent
    again (it cannot land twice) and then raises it too. Once the lock goes, each lands at most once."""
    remote_store.activate(ORDERS)
    remote_store.asset(ORDERS).set("k", 0)
    impatient = connect(remote_store.url, timeout=httpx.Timeout(10, read=0.5), retries=2, backoff=0.01)
    state = impatient.asset(ORDERS)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as locker:
            locker.execute(
                sa.select(schema.assets.c.id)
                .where(schema.assets.c.identity_hash == ORDERS.identity_hash)
                .with_for_update()
            )
            assert state.get("k") == 0  # reads do not wait
            with pytest.raises(OutcomeUnknownError, match=r"PUT .* may or may not have been applied"):
                state.set("k", "sent once")
            assert impatient.stats.retries == 0
            with pytest.raises(OutcomeUnknownError, match="may or may not have been applied"):
                state.update("n", lambda n: n + 1, default=0)
            assert impatient.stats.retries == 2
            locker.rollback()
        deadline = time.monotonic() + 20
        while [c.value for c in remote_store.history(ORDERS, "k")] != [0, "sent once"]:
            assert time.monotonic() < deadline, remote_store.history(ORDERS, "k")
            time.sleep(0.1)
        time.sleep(0.5)  # the PATCHes waiting behind the lock finish too
        assert [c.value for c in remote_store.history(ORDERS, "k")] == [0, "sent once"]
        assert [c.value for c in remote_store.history(ORDERS, "n")] in ([], [1])
    finally:
        impatient.close()
        engine.dispose()


def _allow_connections(db_url: str, allowed: bool) -> None:
    name = sa.make_url(db_url).database
    admin = sa.create_engine(f"{databases.SERVERS['postgres']}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
    finally:
        admin.dispose()


@postgres_only
def test_a_503_not_applied_is_retried_until_the_database_returns(
    remote_store: RemoteStore, db_url: str
) -> None:
    remote_store.activate(ORDERS)
    remote_store.asset(ORDERS).set("k", 1)
    _allow_connections(db_url, False)
    try:
        with connect(remote_store.url, retries=0) as hasty:
            with pytest.raises(StoreUnavailableError, match="cannot use its database") as caught:
                hasty.asset(ORDERS).get("k")
            assert not isinstance(caught.value, OutcomeUnknownError)
        reopen = threading.Timer(1.0, _allow_connections, (db_url, True))
        reopen.start()
        with connect(remote_store.url, retries=10, backoff=0.5) as patient:
            patient.asset(ORDERS).set("k", 2)  # 503 not_applied: nothing written, so sent again
            assert patient.stats.retries >= 1
            assert patient.asset(ORDERS).get("k") == 2
        reopen.join()
    finally:
        _allow_connections(db_url, True)
    assert [c.value for c in remote_store.history(ORDERS, "k")] == [1, 2]


# --- keys, refusals and limits --------------------------------------------------------------------

PATHLIKE_KEYS = [".", "..", "a/../b", "./x", "%2F", "%", "a?b#c", " ", "a//b", "a/", "/lead", "ü/%20", "\\"]


@sqlite_only
def test_keys_that_look_like_paths_stay_keys(remote_store: RemoteStore) -> None:
    remote_store.activate(ORDERS)
    state = remote_store.asset(ORDERS)
    for index, key in enumerate(PATHLIKE_KEYS):
        state.set(key, index)
    assert [state.get(key) for key in PATHLIKE_KEYS] == list(range(len(PATHLIKE_KEYS)))
    assert state.update("..", lambda n: n + 100) == 101
    state.delete("a/../b")
    assert state.get("a/../b") is None and state.get("a//b") == PATHLIKE_KEYS.index("a//b")
    assert [c.op for c in remote_store.history(ORDERS, "a/../b")] == [Op.SET, Op.DELETE]


@sqlite_only
def test_bad_arguments_are_refused_before_anything_is_sent(remote_store: RemoteStore) -> None:
    calls: list[tuple[Any, type[Exception]]] = [
        (lambda: remote_store.history(ORDERS, ""), ValueError),
        (lambda: remote_store.history(ORDERS, 5), TypeError),
        (lambda: remote_store.history(ORDERS, since=time.time()), ValueError),
        (lambda: remote_store.state_as_of(ORDERS), ValueError),
        (lambda: remote_store.state_as_of(ORDERS, position=-1), ValueError),
        (lambda: remote_store.restore(ORDERS, position=True), ValueError),
        (lambda: remote_store.events(after=-1), ValueError),
        (lambda: remote_store.read_state(ORDERS, ["a\x00"]), ValueError),
        (lambda: remote_store.write(ORDERS, Writer.api(), sets={"": "1"}), ValueError),
        (lambda: remote_store.write(ORDERS, Writer.api(), deletes=["k" * 513]), ValueError),
        (lambda: remote_store.set_value(ORDERS, Writer.api(), "\udc80", "1"), ValueError),
        (lambda: remote_store.activate("orders"), TypeError),  # type: ignore[arg-type]
    ]
    for call, error in calls:
        with pytest.raises(error):
            call()
    assert remote_store.stats.requests == 0


@sqlite_only
def test_a_value_over_the_servers_limit_is_refused_and_nothing_is_written(
    remote_store: RemoteStore, caplog: pytest.LogCaptureFixture
) -> None:
    remote_store.activate(ORDERS)
    state = remote_store.asset(ORDERS)
    before = remote_store.history(ORDERS)
    with caplog.at_level(logging.WARNING, "eventstore"), pytest.raises(ValueError, match="refused"):
        state.set("big", "x" * 70_000)
    assert "over EVENTSTORE_MAX_VALUE_BYTES=65535" in caplog.text
    with pytest.raises(ValueError, match="refused"):
        state.set_many({"small": 1, "big": "x" * 70_000})
    assert remote_store.history(ORDERS) == before


@sqlite_only
def test_writes_to_an_asset_deactivated_by_someone_else_are_refused(remote_store: RemoteStore) -> None:
    remote_store.activate(ORDERS)
    state = remote_store.asset(ORDERS)
    state.set_many({"a": 1, "b": 2})
    assert state.get("a") == 1  # the client now knows ORDERS active at this version
    with connect(remote_store.url) as other:
        other.deactivate(ORDERS)
    calls = [
        lambda: state.get("a"),
        lambda: state.delete("a"),
        state.clear,
        lambda: state.set("a", 3),
        lambda: state.update("a", lambda n: n + 1),
        lambda: state.set_many({"a": 4}),
    ]
    for call in calls:
        with pytest.raises(AssetNotActiveError, match="deactivated"):
            call()
    assert remote_store.state_as_of(ORDERS, position=10**6) == {"a": 1, "b": 2}
