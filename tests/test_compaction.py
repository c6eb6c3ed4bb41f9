"""Compaction (garbage collection of inactive assets), on SQLite, PostgreSQL and MariaDB.

What it removes and keeps, batches, grace and its environment variable, dry runs, re-activation before
and after compaction, an interrupted compaction, a re-activating process and a second compactor running
at the same time as a compactor (separate processes), and compaction added to the hypothesis state
machine of the core invariants.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
import pytest
import sqlalchemy as sa
from hypothesis.stateful import invariant, rule

from eventstore import (
    Asset,
    AssetNotFoundError,
    CompactedAsset,
    CompactedError,
    CompactionReport,
    Op,
    Store,
    Writer,
    open_store,
    schema,
)
from eventstore.compaction import DEFAULT_BATCH_SIZE, GRACE_VARIABLE, grace_from_environment, parse_grace
from eventstore.database import Database
from projections import snapshots
from tests.logcheck import LogInspector, fold_log
from tests.test_invariants import ASSETS, KEYS, StoreMachine, assets, run_on, writers

NO_GRACE = timedelta(0)
ORDERS = Asset("orders", "s3://data/orders/")
GONE = Asset("gone")


@dataclass(frozen=True)
class Filled:
    """An asset `fill` wrote: its stream head and its state (keys to values) when deactivated."""

    asset: Asset
    version: int
    state: dict[str, Any]


def fill(store: Store, asset: Asset, width: int, rounds: int, *, deactivate: bool = True) -> Filled:
    """Activate `asset`, write `rounds` x `width` set events over `width` keys, deactivate it."""
    store.activate(asset)
    state: dict[str, Any] = {}
    for round_ in range(rounds):
        values: dict[str, Any] = {f"k{key}": [asset.name, round_] for key in range(width)}
        store.asset(asset).set_many(values)
        state.update(values)
    if deactivate:
        store.deactivate(asset)
    return Filled(asset, 1 + width * rounds + int(deactivate), state)


def fill_many(store: Store, count: int, prefix: str) -> list[Filled]:
    """`count` inactive assets of 3 to 14 events and 1 to 6 keys each."""
    return [fill(store, Asset(f"{prefix}-{i}"), 1 + i % 6, 1 + i % 2) for i in range(count)]


def snapshot_counts(url: str) -> dict[int, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            s = schema.snapshots
            query = sa.select(s.c.asset_id, sa.func.count()).group_by(s.c.asset_id)
            return {asset_id: count for asset_id, count in conn.execute(query)}
    finally:
        engine.dispose()


def log_head(url: str) -> int:
    """The last position handed out (es_log_head, or the position sequence on PostgreSQL)."""
    database = Database(url)
    try:
        return database.run(database.ordering.last_assigned)
    finally:
        database.dispose()


# --- What compaction removes and keeps --------------------------------------------------------------


def test_compaction_removes_the_events_view_rows_and_snapshots_of_inactive_assets_only(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 3)
    gone = fill(store, GONE, width=3, rounds=4)
    fill(store, ORDERS, width=2, rounds=3, deactivate=False)
    inspector = LogInspector(db_url)
    try:
        ids = inspector.asset_ids()
        gone_id, kept_id = ids[(GONE.name, GONE.uri)], ids[(ORDERS.name, ORDERS.uri)]
        assert snapshot_counts(db_url).get(gone_id, 0) > 0  # there is something to remove
        kept_history = store.history(ORDERS)
        kept_snapshots = snapshot_counts(db_url)[kept_id]

        report = store.compact(grace=NO_GRACE)

        assert report == CompactionReport(
            [CompactedAsset(GONE.name, GONE.uri, events=gone.version, keys=3)],
            events_deleted=gone.version,
            rows_deleted=3,
        )
        log = inspector.log()
        assert {row.asset_id for row in log} == {kept_id}
        assert set(inspector.view()) == {kept_id}
        assert inspector.view() == fold_log(log)
        assert snapshot_counts(db_url) == {kept_id: kept_snapshots}
        assert store.history(ORDERS) == kept_history
        assert store.asset(ORDERS).get("k1") == [ORDERS.name, 2]
        assert store.history(GONE) == []
    finally:
        inspector.close()


def test_each_compacted_asset_leaves_a_permanent_record(store: Store, db_url: str) -> None:
    gone = fill(store, GONE, width=2, rounds=2)
    fill(store, ORDERS, width=1, rounds=1, deactivate=False)
    deactivated = store.history(GONE)[-1]
    head = log_head(db_url)

    store.compact(grace=NO_GRACE)

    [record] = store.compactions()
    assert record.asset == GONE
    assert record.last_version == gone.version
    assert record.events == gone.version
    assert record.deactivated_at == deactivated.recorded_at
    assert record.position == head
    assert deactivated.recorded_at <= record.compacted_at
    assert store.compactions(GONE) == [record]
    assert store.compactions(ORDERS) == []
    with pytest.raises(AssetNotFoundError):
        store.compactions(Asset("never-seen"))


def test_a_second_run_reports_nothing(store: Store) -> None:
    fill_many(store, 5, "asset")
    first = store.compact(grace=NO_GRACE)
    assert len(first.assets) == 5
    assert store.compact(grace=NO_GRACE) == CompactionReport([], 0, 0)
    assert len(store.compactions()) == 5


def test_an_asset_that_was_never_written_is_compacted_too(store: Store) -> None:
    store.activate(GONE)
    store.deactivate(GONE)
    report = store.compact(grace=NO_GRACE)
    assert report.assets == [CompactedAsset(GONE.name, GONE.uri, events=2, keys=0)]
    assert store.history(GONE) == []


def test_a_compacted_asset_stays_known_and_starts_empty_with_versions_continuing(store: Store) -> None:
    gone = fill(store, GONE, width=2, rounds=2)
    store.compact(grace=NO_GRACE)

    [info] = store.assets()
    assert (info.name, info.active, info.version) == (GONE.name, False, gone.version)
    assert store.assets(active=False) == [info]
    store.deactivate(GONE)  # a no-op: no event
    assert store.history(GONE) == []
    assert store.assets()[0].version == gone.version

    store.activate(GONE)
    assert store.asset(GONE).get("k0") is None
    store.asset(GONE).set("k0", "new")
    history = store.history(GONE)
    assert [(c.op, c.version) for c in history] == [
        (Op.ACTIVATE, gone.version + 1),
        (Op.SET, gone.version + 2),
    ]
    assert history[1].previous is None  # the old value is gone, not "previous"
    assert store.assets()[0].version == gone.version + 2


def test_before_compaction_activating_again_brings_the_old_state_back(store: Store) -> None:
    gone = fill(store, GONE, width=3, rounds=2)
    store.activate(GONE)
    state = store.asset(GONE)
    assert {key: state.get(key) for key in gone.state} == gone.state
    assert store.compact(grace=NO_GRACE).assets == []
    assert [c.version for c in store.history(GONE)] == list(range(1, gone.version + 2))


def test_the_feed_keeps_its_positions_and_shows_holes(store: Store) -> None:
    store.activate(ORDERS)
    store.activate(GONE)
    for i in range(3):
        store.asset(ORDERS).set("n", i)
        store.asset(GONE).set("n", i)
    store.deactivate(GONE)  # the newest event belongs to the compacted asset
    before = store.events()
    head = before[-1].position

    store.compact(grace=NO_GRACE)

    after = store.events()
    assert after == [event for event in before if event.asset == ORDERS]
    store.asset(ORDERS).set("n", 3)
    assert [e.position for e in store.events(after=head)] == [head + 1]  # positions are never reused


def test_as_of_at_or_before_the_compaction_point_raises_compacted_error(store: Store) -> None:
    fill(store, GONE, width=1, rounds=2)
    store.compact(grace=NO_GRACE)
    [record] = store.compactions(GONE)
    with pytest.raises(CompactedError, match=f"{record.compacted_at:%Y-%m-%d}"):
        store.state_as_of(GONE, position=record.position)
    assert store.state_as_of(GONE, position=record.position + 1) == {}


# --- Batches ------------------------------------------------------------------------------------------


class StatementLog:
    """Records the DELETEs of es_events (with the rows each removed) and the COMMITs of an engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.steps: list[tuple[str, int]] = []
        sa.event.listen(engine, "after_cursor_execute", self._executed)
        sa.event.listen(engine, "commit", self._committed)

    def _executed(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM ES_EVENTS"):
            self.steps.append(("delete", cursor.rowcount))

    def _committed(self, conn: Any) -> None:
        self.steps.append(("commit", 0))

    def close(self) -> None:
        sa.event.remove(self.engine, "after_cursor_execute", self._executed)
        sa.event.remove(self.engine, "commit", self._committed)


def test_events_are_deleted_in_batches_that_each_commit(store: Store) -> None:
    small = fill_many(store, 6, "small")
    large = fill(store, GONE, width=4, rounds=10)  # 42 events
    statements = StatementLog(store._db.engine)
    try:
        report = store.compact(grace=NO_GRACE, batch_size=10)
    finally:
        statements.close()
    total = sum(f.version for f in small) + large.version
    assert report.events_deleted == total
    deletes = [rows for step, rows in statements.steps if step == "delete"]
    assert sum(deletes) == total
    assert max(deletes) <= 10
    assert len(deletes) >= total // 10
    # Never two deletes in one transaction: each batch commits on its own.
    steps = [step for step, _ in statements.steps]
    assert ("delete", "delete") not in itertools.pairwise(steps)


def test_batch_size_and_grace_are_checked(store: Store) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        store.compact(batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        store.compact(batch_size="10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grace"):
        store.compact(grace=timedelta(seconds=-1))
    with pytest.raises(TypeError, match="grace"):
        store.compact(grace=60)  # type: ignore[arg-type]
    assert DEFAULT_BATCH_SIZE >= 1


def test_an_interrupted_compaction_is_final_and_the_next_run_finishes_it(store: Store, db_url: str) -> None:
    gone = fill(store, GONE, width=3, rounds=10)  # 32 events: several batches of 5
    engine = store._db.engine
    deletes = 0

    def fail_on_second_delete(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal deletes
        if statement.lstrip().upper().startswith("DELETE FROM ES_EVENTS"):
            deletes += 1
            if deletes == 2:
                raise RuntimeError("the compactor died")

    sa.event.listen(engine, "before_cursor_execute", fail_on_second_delete)
    try:
        with pytest.raises(RuntimeError, match="died"):
            store.compact(grace=NO_GRACE, batch_size=5)
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_on_second_delete)

    # Decided: recorded, view emptied; some of its events are still there, all at or below last_version.
    [record] = store.compactions(GONE)
    assert record.last_version == gone.version
    inspector = LogInspector(db_url)
    try:
        left = [row.version for row in inspector.log()]
        assert left and max(left) <= gone.version
        assert inspector.view() == {}
        # Activated again meanwhile: it starts empty, and its new events are above last_version.
        store.activate(GONE)
        store.asset(GONE).set("k0", "new")
        assert store.asset(GONE).get("k1") is None
        assert store.state_as_of(GONE, position=log_head(db_url)) == {"k0": "new"}

        assert store.compact(grace=NO_GRACE, batch_size=5).assets == []  # reported once, by the decision
        assert [row.version for row in inspector.log()] == [gone.version + 1, gone.version + 2]
        assert inspector.view() == fold_log(inspector.log())
        assert [(c.op, c.key) for c in store.history(GONE)] == [(Op.ACTIVATE, None), (Op.SET, "k0")]
    finally:
        inspector.close()


def test_as_of_in_an_interrupted_compaction_is_compacted_while_its_dead_events_remain(
    store: Store, db_url: str
) -> None:
    """A compactor that died after its deciding transaction leaves some of the asset's events behind until
    the next run deletes them: as-of (by time and by position) at any of their points is CompactedError,
    never a fold of the survivors; after the compaction the state is empty, then the new events'."""
    gone = fill(store, GONE, width=3, rounds=10)  # 32 events: several batches of 5
    dead = store.history(GONE)
    engine = store._db.engine
    deletes = 0

    def fail_on_second_delete(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal deletes
        if statement.lstrip().upper().startswith("DELETE FROM ES_EVENTS"):
            deletes += 1
            if deletes == 2:
                raise RuntimeError("the compactor died")

    sa.event.listen(engine, "before_cursor_execute", fail_on_second_delete)
    try:
        with pytest.raises(RuntimeError, match="died"):
            store.compact(grace=NO_GRACE, batch_size=5)
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_on_second_delete)
    [record] = store.compactions(GONE)
    inspector = LogInspector(db_url)
    try:
        survivors = {row.version for row in inspector.log()}
    finally:
        inspector.close()
    assert survivors and max(survivors) == gone.version < len(dead) + 1  # some deleted, some left

    tick = timedelta(microseconds=1)
    for change in dead:
        for at in (change.recorded_at - tick, change.recorded_at, change.recorded_at + tick):
            with pytest.raises(CompactedError, match="compacted"):
                store.state_as_of(GONE, at=at)
        with pytest.raises(CompactedError, match="compacted"):
            store.state_as_of(GONE, position=change.position)
    with pytest.raises(CompactedError):
        store.state_as_of(GONE, at=record.compacted_at)
    assert store.state_as_of(GONE, at=record.compacted_at + tick) == {}
    assert store.state_as_of(GONE, position=record.position + 1) == {}

    store.activate(GONE)
    store.asset(GONE).set("k0", "new")
    [*_, new] = store.history(GONE)
    assert store.state_as_of(GONE, at=new.recorded_at - tick) == {}
    assert store.state_as_of(GONE, at=new.recorded_at) == {"k0": "new"}
    with pytest.raises(CompactedError):
        store.state_as_of(GONE, at=dead[-1].recorded_at)


# --- Grace ----------------------------------------------------------------------------------------------


def deactivated_ago(db_url: str, asset: Asset, age: timedelta) -> None:
    """Pretend the asset was deactivated `age` ago (es_assets.deactivated_at)."""
    engine = sa.create_engine(db_url)
    a = schema.assets
    this = a.c.identity_hash == asset.identity_hash
    try:
        with engine.begin() as conn:
            when = conn.execute(sa.select(a.c.deactivated_at).where(this)).scalar_one()
            conn.execute(a.update().where(this).values(deactivated_at=when - age))
    finally:
        engine.dispose()


def test_grace_spares_assets_deactivated_less_than_that_long_ago(store: Store, db_url: str) -> None:
    old, recent = Asset("old"), Asset("recent")
    fill(store, old, width=1, rounds=1)
    fill(store, recent, width=1, rounds=1)
    deactivated_ago(db_url, old, timedelta(hours=2))

    dry = store.compact(grace=timedelta(hours=1), dry_run=True)
    report = store.compact(grace=timedelta(hours=1))
    assert [a.name for a in report.assets] == ["old"]
    assert dry == report
    assert store.compact(grace=timedelta(hours=1)).assets == []
    assert [a.name for a in store.compact(grace=NO_GRACE).assets] == ["recent"]


def test_grace_defaults_to_the_environment_variable(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, recent = Asset("old"), Asset("recent")
    fill(store, old, width=1, rounds=1)
    fill(store, recent, width=1, rounds=1)
    deactivated_ago(db_url, old, timedelta(days=2))

    monkeypatch.setenv(GRACE_VARIABLE, "1d")
    assert [a.name for a in store.compact().assets] == ["old"]
    monkeypatch.setenv(GRACE_VARIABLE, "soon")
    with pytest.raises(ValueError, match=GRACE_VARIABLE):
        store.compact()
    assert [a.name for a in store.compact(grace=NO_GRACE).assets] == ["recent"]  # explicit wins


def test_without_the_variable_there_is_no_grace(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GRACE_VARIABLE, raising=False)
    fill(store, GONE, width=1, rounds=1)
    assert [a.name for a in store.compact().assets] == [GONE.name]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("3600", 3600),
        ("1.5", 1.5),
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("0.5h", 1800),
        (" 15m ", 900),
        ("15 m", 900),
    ],
)
def test_parse_grace_accepts_seconds_and_durations(text: str, seconds: float) -> None:
    assert parse_grace(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "soon", "-5", "-5m", "15 minutes", "1w", "h", "1e3", "10ms", "1h30m", "15M", "999999999999d"]
)
def test_parse_grace_refuses_anything_else_naming_the_variable_and_the_forms(text: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_grace(text)
    message = str(raised.value)
    assert GRACE_VARIABLE in message
    assert all(form in message for form in ("3600", "90s", "15m", "24h", "7d"))


def test_grace_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GRACE_VARIABLE, raising=False)
    assert grace_from_environment() == NO_GRACE
    monkeypatch.setenv(GRACE_VARIABLE, "  ")
    assert grace_from_environment() == NO_GRACE
    monkeypatch.setenv(GRACE_VARIABLE, "24h")
    assert grace_from_environment() == timedelta(hours=24)
    monkeypatch.setenv(GRACE_VARIABLE, "1 day")
    with pytest.raises(ValueError, match=GRACE_VARIABLE):
        grace_from_environment()


# --- Dry run ------------------------------------------------------------------------------------------


def test_a_dry_run_changes_nothing_and_reports_the_same_figures(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 4)
    fill_many(store, 7, "asset")
    fill(store, ORDERS, width=2, rounds=2, deactivate=False)
    store.activate(GONE)
    store.deactivate(GONE)
    inspector = LogInspector(db_url)
    try:
        before = (inspector.log(), inspector.view(), snapshot_counts(db_url), store.assets())
        dry = store.compact(grace=NO_GRACE, dry_run=True, batch_size=3)
        assert (inspector.log(), inspector.view(), snapshot_counts(db_url), store.assets()) == before
        assert store.compactions() == []
        assert len(dry.assets) == 8
        assert store.compact(grace=NO_GRACE, dry_run=True) == dry
        assert store.compact(grace=NO_GRACE, batch_size=3) == dry
        assert store.compact(grace=NO_GRACE, dry_run=True) == CompactionReport([], 0, 0)
    finally:
        inspector.close()


# --- Other processes at the same time ---------------------------------------------------------------

Job = tuple[Callable[..., Any], tuple[Any, ...]]


def _child(
    url: str,
    job: Job,
    ready: Any,
    go: Any,
    results: Any,
    index: int,
) -> None:
    """A spawned process: open the store, say ready, wait for the start signal, run the job, report."""
    try:
        with open_store(url) as store:
            ready.set()
            if not go.wait(60):
                raise TimeoutError("never told to start")
            function, args = job
            results.put((index, "ok", function(store, *args)))
    except BaseException:
        results.put((index, "error", traceback.format_exc()))
        raise


def run_together(url: str, *jobs: Job) -> list[Any]:
    """Run each job (a function taking the store first) in its own spawned process, started at once;
    return their results in order, failing if any of them failed."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ready = [context.Event() for _ in jobs]
    go = context.Event()
    processes = [
        context.Process(target=_child, args=(url, job, ready[i], go, results, i))
        for i, job in enumerate(jobs)
    ]
    for process in processes:
        process.start()
    try:
        deadline = time.monotonic() + 120
        for event, process in zip(ready, processes, strict=True):
            while not event.wait(0.05):
                assert process.is_alive(), f"a worker process exited with {process.exitcode} before starting"
                assert time.monotonic() < deadline, "a worker process did not start"
        go.set()
        outcomes = dict((index, (status, value)) for index, status, value in iter_results(results, len(jobs)))
    finally:
        for process in processes:
            process.join(timeout=120)
    failures = [value for status, value in outcomes.values() if status != "ok"]
    assert not failures, "\n".join(failures)
    assert [process.exitcode for process in processes] == [0] * len(jobs)
    return [outcomes[i][1] for i in range(len(jobs))]


def iter_results(results: Any, count: int) -> Iterator[tuple[int, str, Any]]:
    for _ in range(count):
        yield results.get(timeout=300)


def compact_job(store: Store, batch_size: int) -> list[tuple[str, int, int]]:
    report = store.compact(grace=NO_GRACE, batch_size=batch_size)
    assert report.events_deleted == sum(asset.events for asset in report.assets)
    return [(asset.name, asset.events, asset.keys) for asset in report.assets]


AFTER_ACTIVATION = {"after": "yes", "k0": "new"}


def reactivate_job(store: Store, names: list[str], after_compactions: int) -> None:
    """Once `after_compactions` assets are compacted, activate the named ones and write to them."""
    deadline = time.monotonic() + 60
    while len(store.compactions()) < after_compactions and time.monotonic() < deadline:
        time.sleep(0.001)
    for name in names:
        asset = Asset(name)
        store.activate(asset, Writer.watcher())
        state = store.asset(asset, Writer.watcher())
        state.set("after", AFTER_ACTIVATION["after"])
        state.set("k0", AFTER_ACTIVATION["k0"])


def test_an_asset_activated_again_during_compaction_keeps_every_event_since(
    store: Store, db_url: str
) -> None:
    filled = fill_many(store, 30, "asset")
    reactivated = [f for i, f in enumerate(filled) if i % 2 == 1]
    # The compactor goes by id, upwards; activating in a scrambled order meets it on both sides.
    names = [reactivated[(i * 7) % len(reactivated)].asset.name for i in range(len(reactivated))]

    compacted, _ = run_together(db_url, (compact_job, (4,)), (reactivate_job, (names, len(filled) // 3)))

    reported = {name: (events, keys) for name, events, keys in compacted}
    assert len(reported) == len(compacted)  # each asset at most once
    for f in filled:
        records = store.compactions(f.asset)
        assert len(records) == (f.asset.name in reported)
        if f.asset.name in reported:
            assert reported[f.asset.name] == (f.version, len(f.state))
            assert records[0].last_version == f.version
    inspector = LogInspector(db_url)
    try:
        assert inspector.view() == fold_log(inspector.log())
    finally:
        inspector.close()
    for f in filled:
        history = store.history(f.asset)
        if f not in reactivated:
            assert f.asset.name in reported and history == []
            continue
        # Its activation and everything after it survive, whichever committed first.
        tail = [(c.op, c.key, c.value, c.version) for c in history[-3:]]
        assert tail == [
            (Op.ACTIVATE, None, None, f.version + 1),
            (Op.SET, "after", "yes", f.version + 2),
            (Op.SET, "k0", "new", f.version + 3),
        ]
        state = store.asset(f.asset)
        seen = {key: state.get(key) for key in [*f.state, *AFTER_ACTIVATION]}
        if f.asset.name in reported:  # compacted first: only the new events, from empty
            assert [c.version for c in history] == [f.version + 1, f.version + 2, f.version + 3]
            expected = {key: None for key in f.state} | AFTER_ACTIVATION
        else:  # activated first: nothing was removed
            assert [c.version for c in history] == list(range(1, f.version + 4))
            expected = f.state | AFTER_ACTIVATION
        assert seen == expected, f.asset


def test_two_compactors_at_once_report_each_asset_exactly_once(store: Store, db_url: str) -> None:
    filled = fill_many(store, 40, "asset")
    fill(store, ORDERS, width=2, rounds=2, deactivate=False)

    first, second = run_together(db_url, (compact_job, (5,)), (compact_job, (5,)))

    names = [name for name, _, _ in first + second]
    assert sorted(names) == sorted(f.asset.name for f in filled)
    expected = {f.asset.name: (f.version, len(f.state)) for f in filled}
    assert {name: (events, keys) for name, events, keys in first + second} == expected
    assert len(store.compactions()) == len(filled)
    inspector = LogInspector(db_url)
    try:
        ids = inspector.asset_ids()
        assert {row.asset_id for row in inspector.log()} == {ids[(ORDERS.name, ORDERS.uri)]}
    finally:
        inspector.close()


# --- Compaction in the state machine of the core invariants -------------------------------------------


class CompactingStoreMachine(StoreMachine):
    """StoreMachine plus compaction: it empties the model of every inactive asset (activating one again
    starts empty) and must leave the state and history of every active asset exactly as they were."""

    def __init__(self) -> None:
        super().__init__()
        self.registered: set[Asset] = set()
        self.compacted_version: dict[Asset, int] = {asset: 0 for asset in ASSETS}
        self.before_compaction: dict[Asset, tuple[Any, dict[str, Any]]] | None = None

    def _visible(self, asset: Asset) -> dict[str, Any]:
        state = self.store.asset(asset)
        return {key: state.get(key, "<absent>") for key in KEYS}

    @rule(asset=assets, writer=writers)
    def activate(self, asset: Asset, writer: Writer) -> None:
        super().activate(asset, writer)
        self.registered.add(asset)

    @rule(asset=assets)
    def deactivate(self, asset: Asset) -> None:
        if asset not in self.registered:
            with pytest.raises(AssetNotFoundError):
                self.store.deactivate(asset)
            return
        self.store.deactivate(asset)  # a no-op for an inactive asset, compacted or not
        if asset in self.active:
            self.active.remove(asset)
            self.events_per_asset[asset] += 1

    @rule(batch_size=st.integers(min_value=1, max_value=6), dry_run=st.booleans())
    def compact(self, batch_size: int, dry_run: bool) -> None:
        due = [a for a in ASSETS if a not in self.active and self.events_per_asset[a] > 0]
        self.before_compaction = {a: (self.store.history(a), self._visible(a)) for a in self.active}
        report = self.store.compact(grace=NO_GRACE, batch_size=batch_size, dry_run=dry_run)
        expected = [CompactedAsset(a.name, a.uri, self.events_per_asset[a], len(self.model[a])) for a in due]
        assert sorted(report.assets, key=repr) == sorted(expected, key=repr)
        assert report.events_deleted == sum(a.events for a in expected)
        assert report.rows_deleted == sum(a.keys for a in expected)
        if not dry_run:
            for asset in due:
                self.compacted_version[asset] += self.events_per_asset[asset]
                self.events_per_asset[asset] = 0
                self.model[asset] = {}
        # History shows exactly the surviving events; the records the last compacted version.
        for asset in self.registered:
            base, count = self.compacted_version[asset], self.events_per_asset[asset]
            assert [c.version for c in self.store.history(asset)] == list(range(base + 1, base + count + 1))
            records = self.store.compactions(asset)
            assert (records[-1].last_version if records else 0) == base

    @invariant()
    def compaction_leaves_active_assets_alone(self) -> None:
        if self.before_compaction is None:
            return
        for asset, (history, visible) in self.before_compaction.items():
            assert self.store.history(asset) == history, asset
            assert self._visible(asset) == visible, asset
        self.before_compaction = None

    @invariant()
    def versions_are_consecutive_and_positions_increase(self) -> None:
        """Overrides the core invariant: after a compaction a stream goes on after its compacted version."""
        log = self.inspector.log()
        positions = [row.position for row in log]
        assert positions == sorted(set(positions))
        ids = self.inspector.asset_ids()
        heads = self.inspector.stream_heads()
        for asset in self.registered:
            asset_id = ids[(asset.name, asset.uri)]
            base = self.compacted_version[asset]
            count = self.events_per_asset[asset]
            assert [row.version for row in log if row.asset_id == asset_id] == list(
                range(base + 1, base + count + 1)
            )
            assert heads[asset_id] == base + count


def test_compaction_never_changes_active_assets_in_the_core_state_machine(db_url: str, backend: str) -> None:
    run_on(CompactingStoreMachine, db_url, backend)


def test_history_hides_events_a_compaction_decided_but_has_not_deleted_yet(store: Store, db_url: str) -> None:
    """Compaction records its decision first and deletes large streams in later batches; in between
    (or after an interrupted run) those events are dead and history must not show them."""
    half = Asset("half-compacted")
    store.activate(half)
    store.asset(half).set("k", 1)
    store.deactivate(half)
    [info] = [a for a in store.assets() if a.name == "half-compacted"]
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            schema.compactions.insert().values(
                asset_id=info.id,
                last_version=info.version,
                events=info.version,
                keys=1,
                deactivated_at=None,
                position=store.events()[-1].position,
                compacted_at=datetime.now(UTC),
            )
        )
    engine.dispose()
    assert len(store.events()) == 3  # the rows are still there
    assert store.history(half) == []
    assert store.history(half, "k") == []
    store.activate(half)
    assert [c.op for c in store.history(half)] == [Op.ACTIVATE]
