"""`verify_projections` finds exactly the drift raw SQL put into the view or a snapshot, and
`rebuild_projections` repairs it; progress, large streams and concurrent writers. On all three databases."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from eventstore import Asset, Drift, RebuildReport, Store, Writer, schema
from projections import rebuild, snapshots
from tests.logcheck import LogInspector, fold_log

ORDERS = Asset("orders", "s3://data/orders/")
OTHER = Asset("other")
IDLE = Asset("idle")


@pytest.fixture
def raw(db_url: str) -> Iterator[sa.Engine]:
    """An engine for corrupting tables behind the store's back."""
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def filled(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Three assets, one deactivated with hidden state, one never written; snapshots every 4 versions."""
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 4)
    for asset in (ORDERS, OTHER, IDLE):
        store.activate(asset)
    orders = store.asset(ORDERS, Writer.task("dag", "run", "task"))
    orders.set("watermark", "2024-06-01")
    orders.set_many({"summary": {"rows": 10}, "big": 2**70, "gone": 1})
    orders.delete("gone")
    orders.set("watermark", "2024-06-02")
    other = store.asset(OTHER)
    other.set("cursor", 1)
    other.clear()
    other.set("cursor", [1, 2.5, None])
    store.deactivate(OTHER)
    return store


def asset_id(engine: sa.Engine, asset: Asset) -> int:
    with engine.connect() as conn:
        query = sa.select(schema.assets.c.id).where(schema.assets.c.identity_hash == asset.identity_hash)
        return int(conn.execute(query).scalar_one())


def view_rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(schema.state).order_by(schema.state.c.asset_id, schema.state.c.key)
        ).all()


def snapshot_rows(engine: sa.Engine) -> list[Any]:
    s = schema.snapshots
    with engine.connect() as conn:
        return conn.execute(sa.select(s).order_by(s.c.asset_id, s.c.version)).all()


def test_a_consistent_store_has_no_drift(filled: Store) -> None:
    assert filled.verify_projections() == []


def test_rebuild_reports_what_it_folded_and_changes_nothing_when_consistent(
    filled: Store, raw: sa.Engine
) -> None:
    rows_before = view_rows(raw)
    report = filled.rebuild_projections()
    assert isinstance(report, RebuildReport)
    # orders: activate + 1 + 3 + 1 + 1; other: activate + 3 + deactivate; idle: activate.
    assert (report.events, report.assets, report.keys) == (7 + 5 + 1, 3, 3 + 1)
    assert report.seconds >= 0
    assert view_rows(raw) == rows_before  # versions, times and writers of the view rows included
    assert filled.verify_projections() == []


def test_a_changed_value_is_reported_and_repaired(filled: Store, raw: sa.Engine) -> None:
    with raw.begin() as conn:
        conn.execute(
            schema.state.update()
            .where(schema.state.c.asset_id == asset_id(raw, ORDERS), schema.state.c.key == "watermark")
            .values(value='"1999-01-01"')
        )
    assert filled.verify_projections() == [Drift(ORDERS, "watermark", "2024-06-02", "1999-01-01")]
    filled.rebuild_projections()
    assert filled.verify_projections() == []
    assert filled.asset(ORDERS).get("watermark") == "2024-06-02"


def test_a_missing_row_is_reported_and_repaired(filled: Store, raw: sa.Engine) -> None:
    rows_before = view_rows(raw)
    with raw.begin() as conn:
        conn.execute(
            schema.state.delete().where(
                schema.state.c.asset_id == asset_id(raw, OTHER), schema.state.c.key == "cursor"
            )
        )
    assert filled.verify_projections() == [Drift(OTHER, "cursor", [1, 2.5, None], None)]
    filled.rebuild_projections()
    assert filled.verify_projections() == []
    assert view_rows(raw) == rows_before


def test_an_extra_row_is_reported_and_repaired(filled: Store, raw: sa.Engine) -> None:
    rows_before = view_rows(raw)
    with raw.begin() as conn:
        conn.execute(
            schema.state.insert().values(
                asset_id=asset_id(raw, IDLE),
                key="ghost",
                value="true",
                version=1,
                updated_at=datetime.now(UTC),
                updated_by_kind="api",
            )
        )
    assert filled.verify_projections() == [Drift(IDLE, "ghost", None, True)]
    filled.rebuild_projections()
    assert filled.verify_projections() == []
    assert view_rows(raw) == rows_before


def test_every_drift_is_reported_in_asset_and_key_order(filled: Store, raw: sa.Engine) -> None:
    orders = asset_id(raw, ORDERS)
    with raw.begin() as conn:
        conn.execute(schema.state.delete().where(schema.state.c.asset_id == orders))
        conn.execute(schema.state.update().where(schema.state.c.key == "cursor").values(value="not json"))
    assert filled.verify_projections() == [
        Drift(ORDERS, "big", 2**70, None),
        Drift(ORDERS, "summary", {"rows": 10}, None),
        Drift(ORDERS, "watermark", "2024-06-02", None),
        Drift(OTHER, "cursor", [1, 2.5, None], "not json"),
    ]
    filled.rebuild_projections()
    assert filled.verify_projections() == []


def test_a_corrupted_snapshot_is_reported_and_rebuilt(filled: Store, raw: sa.Engine) -> None:
    orders, other = asset_id(raw, ORDERS), asset_id(raw, OTHER)
    s = schema.snapshots
    # Inline, a batch that crosses a multiple of 4 leaves a snapshot at its last version.
    assert [(row.asset_id, row.version) for row in snapshot_rows(raw)] == [(orders, 5), (other, 4)]
    version = 5
    with raw.begin() as conn:
        where = (s.c.asset_id == orders, s.c.version == version)
        state = conn.execute(sa.select(s.c.state).where(*where)).scalar()
        assert '"watermark":"\\"2024-06-01\\""' in state
        conn.execute(s.update().where(*where).values(state=state.replace("2024-06-01", "1999-01-01")))
    assert filled.verify_projections() == [Drift(ORDERS, "watermark", "2024-06-01", "1999-01-01", version)]
    filled.rebuild_projections()
    assert filled.verify_projections() == []
    # Rebuild takes them at the multiples of the interval.
    assert [(row.asset_id, row.version) for row in snapshot_rows(raw)] == [(orders, 4), (other, 4)]


def test_unreadable_and_impossible_snapshots_are_reported(filled: Store, raw: sa.Engine) -> None:
    idle, orders = asset_id(raw, IDLE), asset_id(raw, ORDERS)
    with raw.begin() as conn:
        conn.execute(schema.snapshots.delete())
        conn.execute(
            schema.snapshots.insert(),
            [
                {"asset_id": orders, "version": 2, "state": "{not json"},
                {"asset_id": idle, "version": 99, "state": '{"k":"1"}'},
            ],
        )
    assert filled.verify_projections() == [
        Drift(ORDERS, None, {"watermark": "2024-06-01"}, "{not json", 2),
        Drift(IDLE, None, None, {"k": 1}, 99),
    ]
    # As-of steps over the unreadable snapshot rather than failing.
    assert filled.state_as_of(ORDERS, position=10**9)["watermark"] == "2024-06-02"
    filled.rebuild_projections()
    assert filled.verify_projections() == []


def test_progress_gets_the_running_total_at_least_once_per_batch(
    filled: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebuild, "BATCH_ASSETS", 1)
    seen: list[int] = []
    report = filled.rebuild_projections(progress=seen.append)
    assert len(seen) >= 3  # one batch per asset
    assert seen == sorted(seen)
    assert seen[-1] == report.events == 13


def test_an_empty_store_reports_zero_once(store: Store) -> None:
    seen: list[int] = []
    report = store.rebuild_projections(progress=seen.append)
    assert (report.events, report.assets, report.keys) == (0, 0, 0)
    assert seen == [0]
    assert store.verify_projections() == []


def test_large_streams_are_caught_up_in_pages(
    store: Store, raw: sa.Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams larger than a batch are folded a page at a time before the locked step."""
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 10)
    monkeypatch.setattr(rebuild, "BATCH_EVENTS", 25)
    monkeypatch.setattr(rebuild, "PAGE_EVENTS", 7)
    store.activate(ORDERS)
    store.activate(OTHER)
    for n in range(12):
        store.asset(ORDERS).set_many({f"k{n % 5}": n, "n": n})
        if n % 4 == 3:
            store.asset(ORDERS).delete(f"k{n % 5}")
        store.asset(OTHER).set("cursor", n)
    rows_before = view_rows(raw)
    orders = asset_id(raw, ORDERS)
    inline = {row.version for row in snapshot_rows(raw) if row.asset_id == orders}
    assert len(inline) >= 2
    with raw.begin() as conn:
        conn.execute(schema.state.delete().where(schema.state.c.key == "n"))
        conn.execute(schema.snapshots.update().values(state="{}"))
        conn.execute(schema.snapshots.insert().values(asset_id=orders, version=3, state="{}"))
    drifts = store.verify_projections()
    assert Drift(ORDERS, "n", 11, None) in drifts
    assert {d.snapshot_version for d in drifts if d.asset == ORDERS and d.snapshot_version} == inline | {3}
    seen: list[int] = []
    report = store.rebuild_projections(progress=seen.append)
    assert report.events == 1 + 12 * 2 + 3 + 1 + 12
    assert len(seen) >= 5 and seen == sorted(seen) and seen[-1] == report.events
    assert store.verify_projections() == []
    assert view_rows(raw) == rows_before
    inspector = LogInspector(db_url)
    try:
        assert inspector.view() == fold_log(inspector.log())
    finally:
        inspector.close()
    versions = [row.version for row in snapshot_rows(raw) if row.asset_id == orders]
    assert versions == [10, 20]


def test_rebuild_is_safe_while_writers_write(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 3)
    monkeypatch.setattr(rebuild, "BATCH_EVENTS", 10)
    monkeypatch.setattr(rebuild, "PAGE_EVENTS", 4)
    assets = [Asset(f"asset-{i}") for i in range(4)]
    for asset in assets:
        store.activate(asset)
        store.asset(asset).set("n", 0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(asset: Asset) -> None:
        try:
            n = 0
            while not stop.is_set() or n < 20:
                n += 1
                store.asset(asset).set_many({"n": n, f"k{n % 3}": n})
                if n % 7 == 0:
                    store.asset(asset).clear()
                time.sleep(0.001)  # SQLite's busy handler would let back-to-back writers starve rebuild
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=write, args=(asset,)) for asset in assets]
    for thread in writers:
        thread.start()
    try:
        for _ in range(3):
            store.rebuild_projections()
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert errors == []
    assert store.verify_projections() == []
    store.rebuild_projections()
    assert store.verify_projections() == []


class RetryEveryWrite:
    """Runs each write transaction twice, the first attempt rolled back: what Database.run does after a
    deadlock or serialization failure."""

    class Rollback(Exception):
        pass

    def __init__(self, db: Any) -> None:
        self.db = db
        self.backend = db.backend
        self.dialect = db.dialect

    def run(self, work: Any, *, write: bool = False) -> Any:
        if write:

            def first_attempt(conn: Any) -> None:
                work(conn)
                raise self.Rollback

            with contextlib.suppress(self.Rollback):
                self.db.run(first_attempt, write=True)
        return self.db.run(work, write=write)


@pytest.mark.parametrize("large", [False, True], ids=["grouped", "caught-up"])
def test_verify_and_rebuild_are_exact_when_transactions_are_retried(
    filled: Store, raw: sa.Engine, monkeypatch: pytest.MonkeyPatch, large: bool
) -> None:
    if large:
        monkeypatch.setattr(rebuild, "BATCH_EVENTS", 2)
        monkeypatch.setattr(rebuild, "PAGE_EVENTS", 2)
    orders = asset_id(raw, ORDERS)
    s = schema.snapshots
    rows_before = view_rows(raw)
    with raw.begin() as conn:
        conn.execute(schema.state.update().where(schema.state.c.key == "big").values(value="0"))
        conn.execute(s.update().where(s.c.asset_id == orders).values(state='{"watermark":"0"}'))
    retrying = RetryEveryWrite(filled._db)
    drifts = rebuild.verify_projections(retrying, filled._log)
    # Per asset: the view's drifts by key, then the snapshots' by version and key.
    assert drifts == [
        Drift(ORDERS, "big", 2**70, 0),
        Drift(ORDERS, "big", 2**70, None, 5),
        Drift(ORDERS, "gone", 1, None, 5),
        Drift(ORDERS, "summary", {"rows": 10}, None, 5),
        Drift(ORDERS, "watermark", "2024-06-01", 0, 5),
    ]
    assert filled.verify_projections() == drifts
    report = rebuild.rebuild_projections(retrying, filled._log)
    assert (report.events, report.assets, report.keys) == (13, 3, 4)
    assert filled.verify_projections() == []
    assert view_rows(raw) == rows_before
