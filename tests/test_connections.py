"""Connections kept between calls, given back on close, never reused after an interrupt, and let go of in
a forked child (eventstore.connections), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from eventstore import Asset, Store, open_store
from eventstore.database import DIRECT_CONNECTIONS_KEPT
from eventstore.prepared import Prepared


def test_the_direct_paths_keep_a_few_connections_and_give_them_back_on_close(store: Store) -> None:
    asset = Asset("orders")
    store.activate(asset)
    state = store.asset(asset)
    with ThreadPoolExecutor(max_workers=12) as threads:
        list(threads.map(lambda i: state.set(f"k{i % 3}", i), range(120)))
        values = list(threads.map(lambda k: state.get(f"k{k}"), range(3)))
    assert [value % 3 for value in values] == [0, 1, 2]
    assert [len(store.history(asset, f"k{k}")) for k in range(3)] == [40, 40, 40]
    pool = store._db.autocommit_engine.pool
    assert isinstance(pool, QueuePool)
    assert 1 <= pool.checkedout() <= DIRECT_CONNECTIONS_KEPT
    store.close()
    assert pool.checkedout() == 0


def _set_and_read_back(store: Store, asset: Asset, key: str, rounds: int) -> None:
    state = store.asset(asset)
    for value in range(rounds):
        state.set(key, value)
        assert state.get(key) == value
        if value % 20 == 0:  # also through the engine's pool, not only the direct paths
            assert store.history(asset, key, newest_first=True, limit=1)[0].value == value


def _start_forked_child(store: Store, asset: Asset, rounds: int) -> multiprocessing.Process:
    """A forked child that sets and reads back the key "child" `rounds` times on the parent's `store`."""
    child = multiprocessing.get_context("fork").Process(
        target=_set_and_read_back, args=(store, asset, "child", rounds)
    )
    child.start()
    return child


def _exit_code(child: multiprocessing.Process) -> int | None:
    """The child's exit code once it ends; None if it hung (it is then killed)."""
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return child.exitcode


def test_a_store_opened_before_a_fork_works_in_parent_and_child_at_once(store: Store) -> None:
    asset = Asset("orders")
    store.activate(asset)
    state = store.asset(asset)
    state.set("parent", -1)  # the parent now has connections open, kept and pooled
    assert len(store.history(asset, "parent")) == 1
    child = _start_forked_child(store, asset, 300)
    _set_and_read_back(store, asset, "parent", 300)
    assert _exit_code(child) == 0
    assert (state.get("parent"), state.get("child")) == (299, 299)
    assert [len(store.history(asset, key)) for key in ("parent", "child")] == [301, 300]


def test_a_fork_while_another_thread_holds_the_pool_does_not_hang_the_child(store: Store) -> None:
    asset = Asset("orders")
    store.activate(asset)
    store.asset(asset).set("parent", 1)  # a connection is now kept, checked out of the pool
    pool = store._db.autocommit_engine.pool
    assert isinstance(pool, QueuePool)
    held, release = threading.Event(), threading.Event()

    def hold_the_pool() -> None:  # as a thread of the parent checking a connection in at the fork
        with pool._pool.mutex:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold_the_pool)
    holder.start()
    held.wait()
    child = _start_forked_child(store, asset, 5)
    release.set()
    holder.join()
    assert _exit_code(child) == 0
    assert store.asset(asset).get("child") == 4


class _TaskTimeout(Exception):
    """What a signal handler raises in the middle of a call (Airflow's task timeout does)."""


class _RaiseOnce:
    """A prepared statement that raises `error` instead of running, once: as if it struck right then."""

    def __init__(self, statement: Prepared, error: BaseException) -> None:
        self._statement, self._error, self._armed = statement, error, True

    def run(self, connection: PoolProxiedConnection, parameters: dict[str, object]) -> None:
        if self._armed:
            self._armed = False
            raise self._error
        self._statement.run(connection, parameters)


@pytest.mark.parametrize("error", [KeyboardInterrupt(), _TaskTimeout("timed out")], ids=type)
def test_an_interrupt_before_commit_applies_nothing_and_leaves_no_transaction_open(
    store: Store, db_url: str, error: BaseException
) -> None:
    asset = Asset("orders")
    store.activate(asset)
    state = store.asset(asset)
    state.set("watermark", 1)
    commit = store._db._commit
    store._db._commit = _RaiseOnce(commit, error)  # type: ignore[assignment]
    with pytest.raises(type(error)):
        state.update("watermark", lambda value: value + 1)
    state.set("other", 2)  # on the same store: no transaction of the interrupted call goes on
    with open_store(db_url) as another:
        assert (another.asset(asset).get("watermark"), another.asset(asset).get("other")) == (1, 2)
    assert [change.value for change in store.history(asset, "watermark")] == [1]
