"""Several processes at once: no lost update, no lost or duplicated event, the view still the fold."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from eventstore import Store
from tests import workers
from tests.logcheck import LogInspector, fold_log

pytestmark = pytest.mark.slow

PROCESSES = 8


def test_eight_processes_updating_one_key_lose_nothing(store: Store, db_url: str) -> None:
    store.activate(workers.COUNTER)
    workers.run_processes(workers.increment, [(db_url, 200)] * PROCESSES)
    assert store.asset(workers.COUNTER).get("n") == PROCESSES * 200
    history = store.history(workers.COUNTER, "n")
    assert [change.value for change in history] == list(range(1, PROCESSES * 200 + 1))
    assert all(change.previous == change.value - 1 for change in history[1:])  # type: ignore[operator]


def test_concurrent_writers_lose_no_event(store: Store, db_url: str) -> None:
    store.activate(workers.SHARED)
    times = 40
    workers.run_processes(workers.write_own_and_shared, [(db_url, w, times) for w in range(PROCESSES)])
    inspector = LogInspector(db_url)
    try:
        log = inspector.log()
        assert inspector.view() == fold_log(log)
        positions = [row.position for row in log]
        assert positions == list(range(1, len(log) + 1))  # dense: no position lost or repeated
        per_asset = Counter(row.asset_id for row in log)
        ids = inspector.asset_ids()
        shared_id = ids[(workers.SHARED.name, workers.SHARED.uri)]
        assert per_asset[shared_id] == 1 + PROCESSES * times * 2  # activate + two sets per set_many
        for asset_id in per_asset:
            versions = [row.version for row in log if row.asset_id == asset_id]
            assert versions == list(range(1, len(versions) + 1))
    finally:
        inspector.close()
    state = store.asset(workers.SHARED)
    assert {state.get(f"w{w}") for w in range(PROCESSES)} == {times - 1}


def test_concurrent_sets_of_one_key_record_the_value_each_replaced(store: Store, db_url: str) -> None:
    # On PostgreSQL these race through the one-statement set and its fallback (eventstore.single_set):
    # a stale read of the old value would break the chain of previous values.
    store.activate(workers.SHARED)
    times = 50
    workers.run_processes(workers.set_one_key, [(db_url, w, times) for w in range(PROCESSES)])
    history = store.history(workers.SHARED, "k")
    assert len(history) == PROCESSES * times
    assert history[0].previous is None
    assert all(later.previous == earlier.value for earlier, later in pairwise(history))
    assert store.asset(workers.SHARED).get("k") == history[-1].value
