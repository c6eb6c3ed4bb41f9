"""The single-statement `set` (PostgreSQL's one statement, MariaDB's one packet): it records exactly what
the log's transaction would, or nothing.

The store runs it before the log's transaction (which every other test exercises through `set`); these
tests drive it directly to check each case where it must decline and leave the write to the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from eventstore import Asset, Store, Writer, open_store, schema
from eventstore.database import Database
from projections import snapshots
from tests.logcheck import LogInspector, fold_log

pytestmark = pytest.mark.parametrize("backend", ["postgres", "mysql"], indirect=True)

ASSET = Asset("orders")
WRITER = Writer.task("dag", "run", "load", 2, 3)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()


def _try_set(database: Database, key: str, text: str, asset: Asset = ASSET) -> bool:
    fast = Store(database)._single_set  # as the store wires it: every projection takes part
    assert fast is not None
    return database.run_direct(lambda conn: fast.try_set(conn, asset.identity_hash, key, text, WRITER))


def _events(db_url: str) -> int:
    inspector = LogInspector(db_url)
    try:
        log = inspector.log()
        assert inspector.view() == fold_log(log)
        return len(log)
    finally:
        inspector.close()


def test_it_records_the_event_and_the_view_row_of_a_set(
    store: Store, database: Database, db_url: str
) -> None:
    store.activate(ASSET)
    store.asset(ASSET).set("watermark", 1)
    assert _try_set(database, "watermark", "2")
    assert _try_set(database, "other", '"x"')
    [first, second] = store.history(ASSET, "watermark")
    assert (second.value, second.previous, second.version) == (2, 1, first.version + 1)
    assert second.writer == WRITER and second.recorded_at >= first.recorded_at
    assert store.asset(ASSET).get("watermark") == 2
    assert _events(db_url) == 4  # activate, set, and the two one-statement sets
    assert store.verify_projections() == []


def test_it_declines_an_unknown_or_inactive_asset(store: Store, database: Database, db_url: str) -> None:
    assert not _try_set(database, "k", "1")
    store.activate(ASSET)
    store.deactivate(ASSET)
    assert not _try_set(database, "k", "1")
    assert _events(db_url) == 2


def test_it_declines_a_version_due_for_a_snapshot(
    store: Store, database: Database, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 3)
    store.activate(ASSET)  # version 1
    assert _try_set(database, "k", "2")  # version 2
    assert not _try_set(database, "k", "3")  # version 3 needs a snapshot: the log's transaction takes it
    store.asset(ASSET).set("k", 3)
    with database.engine.connect() as conn:
        taken = conn.execute(sa.select(schema.snapshots.c.version)).scalars().all()
    assert taken == [3]
    assert store.verify_projections() == []


def test_it_never_records_a_stale_previous_when_another_writer_changed_the_asset_meanwhile(
    store: Store, database: Database, db_url: str, backend: str
) -> None:
    store.activate(ASSET)
    store.asset(ASSET).set("k", "old")
    other = open_store(db_url)
    holding = threading.Event()
    release = threading.Event()

    def concurrent_update() -> None:
        def slow(value: object) -> object:
            holding.set()  # the asset's row is locked now, and stays locked until commit
            release.wait(10)
            return "theirs"

        other.asset(ASSET).update("k", slow)

    writer = threading.Thread(target=concurrent_update)
    writer.start()
    assert holding.wait(10)
    result: list[bool] = []
    fast = threading.Thread(target=lambda: result.append(_try_set(database, "k", '"mine"')))
    fast.start()

    _wait_for_a_lock_wait(database, backend)  # the set has claimed, or read its snapshot, and waits
    release.set()
    writer.join(10)
    fast.join(10)
    other.close()
    if backend == "postgres":
        # Its snapshot saw "old": recording `previous: "old"` would be wrong, so it declines.
        assert result == [False]
        assert [c.value for c in store.history(ASSET, "k")] == ["old", "theirs"]
        store.asset(ASSET).set("k", "mine")
    else:
        # MariaDB's packet reads the old value after the asset's lock is granted (READ COMMITTED), as the
        # log's transaction does: it records, after the writer it waited for.
        assert result == [True]
    history = store.history(ASSET, "k")
    assert [(c.value, c.previous) for c in history] == [("old", None), ("theirs", "old"), ("mine", "theirs")]
    assert [c.version for c in history] == [2, 3, 4]
    assert _events(db_url) == 4
    assert store.verify_projections() == []


_LOCK_WAITS = {
    # This database's lock waits only: other test sessions (xdist workers) share the server.
    "postgres": "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'",
    # The packet's claim still running: it lasts microseconds unless it waits for the row lock.
    # (information_schema.innodb_trx does not always list a transaction begun with BEGIN that waits.)
    "mysql": "SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() "
    "AND info LIKE 'UPDATE es_assets SET version=(@eventstore_version :=%'",
}


def _wait_for_a_lock_wait(database: Database, backend: str) -> None:
    waiting = sa.text(_LOCK_WAITS[backend])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with database.autocommit_engine.connect() as conn:
            if conn.execute(waiting).scalar():
                return
        time.sleep(0.01)
    raise AssertionError("the single-statement set never waited for the asset's row lock")
