"""`state_as_of`: by position and by time, before the first event, errors, deactivated and compacted assets,
and long streams that go through snapshots. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from eventstore import Asset, AssetNotFoundError, CompactedError, Op, Store, schema
from eventstore.ordering import ordering_for
from projections import snapshots

pytestmark = pytest.mark.both_stores

ORDERS = Asset("orders", "s3://data/orders/")
OTHER = Asset("other")


def fold_changes(changes: list[Any]) -> dict[str, Any]:
    """The state a list of `Change`s implies (the test's own fold of decoded values)."""
    state: dict[str, Any] = {}
    for change in changes:
        if change.op is Op.SET:
            state[change.key] = change.value
        elif change.op is Op.DELETE:
            del state[change.key]
        elif change.op is Op.CLEAR:
            state.clear()
    return state


@pytest.fixture
def history(store: Store) -> list[dict[str, Any]]:
    """A small interleaved history of two assets; returns ORDERS' state after each of its events."""
    store.activate(ORDERS)
    store.activate(OTHER)
    orders, other = store.asset(ORDERS), store.asset(OTHER)
    orders.set("watermark", "2024-06-01")
    other.set("cursor", 1)
    orders.set_many({"watermark": "2024-06-02", "summary": {"rows": 10}})
    other.set("cursor", 2)
    orders.delete("summary")
    orders.set("big", 2**70)
    orders.clear()
    orders.set("watermark", 1.5)
    return [fold_changes(store.history(ORDERS)[:n]) for n in range(len(store.history(ORDERS)) + 1)]


def test_as_of_every_position_is_the_state_after_the_last_event_at_or_before_it(
    store: Store, history: list[dict[str, Any]]
) -> None:
    changes = store.history(ORDERS)
    last = store.events()[-1].position
    for position in range(last + 3):
        seen = [c for c in changes if c.position <= position]
        assert store.state_as_of(ORDERS, position=position) == history[len(seen)], position


def test_as_of_keeps_json_types_exactly(store: Store, history: list[dict[str, Any]]) -> None:
    big = next(c for c in store.history(ORDERS) if c.key == "big")
    state = store.state_as_of(ORDERS, position=big.position)
    assert state["big"] == 2**70 and type(state["big"]) is int
    assert type(store.state_as_of(ORDERS, position=10**9)["watermark"]) is float


def test_as_of_by_time_includes_events_recorded_at_that_instant(
    store: Store, history: list[dict[str, Any]]
) -> None:
    changes = store.history(ORDERS)
    for change in changes:
        expected = fold_changes([c for c in changes if c.recorded_at <= change.recorded_at])
        assert store.state_as_of(ORDERS, at=change.recorded_at) == expected
        before = change.recorded_at - timedelta(microseconds=1)
        assert store.state_as_of(ORDERS, at=before) == fold_changes(
            [c for c in changes if c.recorded_at <= before]
        )


def test_as_of_by_time_accepts_any_timezone(store: Store, history: list[dict[str, Any]]) -> None:
    last = store.history(ORDERS)[-1].recorded_at
    in_new_york = last.astimezone(timezone(timedelta(hours=-5)))
    assert store.state_as_of(ORDERS, at=in_new_york) == history[-1]
    assert store.state_as_of(ORDERS, at=datetime.now(UTC) + timedelta(days=1)) == history[-1]


def test_as_of_before_the_first_event_is_empty(store: Store, history: list[dict[str, Any]]) -> None:
    first = store.history(ORDERS)[0]
    assert store.state_as_of(ORDERS, position=0) == {}
    assert store.state_as_of(ORDERS, position=first.position - 1) == {}
    assert store.state_as_of(ORDERS, at=first.recorded_at - timedelta(microseconds=1)) == {}
    assert store.state_as_of(ORDERS, at=datetime(2000, 1, 1, tzinfo=UTC)) == {}


def test_as_of_an_unknown_asset_raises(store: Store) -> None:
    with pytest.raises(AssetNotFoundError, match="nowhere"):
        store.state_as_of(Asset("nowhere"), position=1)
    with pytest.raises(AssetNotFoundError):
        store.state_as_of(Asset("nowhere"), at=datetime.now(UTC))


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"at": datetime.now(UTC), "position": 3},
        {"at": datetime(2024, 6, 1)},  # naive
        {"at": "2024-06-01T00:00:00Z"},
        {"position": -1},
        {"position": True},
        {"position": 2.0},
    ],
    ids=["neither", "both", "naive", "string", "negative", "bool", "float"],
)
def test_as_of_refuses_bad_arguments(store: Store, arguments: dict[str, Any]) -> None:
    store.activate(ORDERS)
    with pytest.raises(ValueError):
        store.state_as_of(ORDERS, **arguments)


def test_a_deactivated_assets_hidden_state_is_still_its_state(store: Store) -> None:
    store.activate(ORDERS)
    store.asset(ORDERS).set("watermark", "w1")
    store.deactivate(ORDERS)
    last = store.events()[-1]
    assert last.op is Op.DEACTIVATE
    assert store.state_as_of(ORDERS, position=last.position) == {"watermark": "w1"}
    assert store.state_as_of(ORDERS, at=last.recorded_at) == {"watermark": "w1"}


def _compact_by_hand(db_url: str, asset: Asset, compacted_at: datetime) -> int:
    """What compaction leaves behind for an inactive asset: no events, no view rows, no snapshots, and a
    record with the last version and the highest position assigned. Returns that position."""
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            asset_id, version = conn.execute(
                sa.select(schema.assets.c.id, schema.assets.c.version).where(
                    schema.assets.c.identity_hash == asset.identity_hash
                )
            ).one()
            position = ordering_for(conn.dialect).last_assigned(conn)
            count = conn.execute(schema.events.delete().where(schema.events.c.asset_id == asset_id)).rowcount
            keys = conn.execute(schema.state.delete().where(schema.state.c.asset_id == asset_id)).rowcount
            conn.execute(schema.snapshots.delete().where(schema.snapshots.c.asset_id == asset_id))
            conn.execute(
                schema.compactions.insert().values(
                    asset_id=asset_id,
                    last_version=version,
                    events=count,
                    keys=keys,
                    deactivated_at=compacted_at,
                    position=position,
                    compacted_at=compacted_at,
                )
            )
    finally:
        engine.dispose()
    return int(position)


def test_as_of_at_or_before_a_compaction_raises_with_its_date(store: Store, db_url: str) -> None:
    store.activate(ORDERS)
    store.asset(ORDERS).set("watermark", "old")
    store.deactivate(ORDERS)
    compacted_at = datetime.now(UTC)
    compacted = _compact_by_hand(db_url, ORDERS, compacted_at)
    store.activate(OTHER)  # other assets' events move the log on
    store.asset(OTHER).set("cursor", 1)

    for position in (0, 1, compacted):
        with pytest.raises(CompactedError, match=compacted_at.strftime("%Y-%m-%d")):
            store.state_as_of(ORDERS, position=position)
    with pytest.raises(CompactedError, match=compacted_at.strftime("%Y-%m-%d")):
        store.state_as_of(ORDERS, at=compacted_at)
    # After the compaction and before any new event: the empty state compaction left.
    assert store.state_as_of(ORDERS, position=compacted + 1) == {}
    assert store.state_as_of(ORDERS, at=compacted_at + timedelta(microseconds=1)) == {}

    store.activate(ORDERS)  # starts empty, versions continue
    store.asset(ORDERS).set("watermark", "new")
    last = store.events()[-1]
    assert last.version == 5  # activate, set, deactivate, then (compacted) activate, set
    assert store.state_as_of(ORDERS, position=last.position) == {"watermark": "new"}
    assert store.state_as_of(ORDERS, position=last.position - 1) == {}
    assert store.state_as_of(ORDERS, at=last.recorded_at) == {"watermark": "new"}


def test_as_of_ignores_snapshots_from_before_a_compaction(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 2)
    store.activate(ORDERS)
    store.asset(ORDERS).set_many({"a": 1, "b": 2, "c": 3})
    store.deactivate(ORDERS)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        kept = conn.execute(sa.select(schema.snapshots)).all()
    engine.dispose()
    _compact_by_hand(db_url, ORDERS, datetime.now(UTC))
    # A compactor that left the snapshots behind must not resurrect the old state, even when they are the
    # newest snapshots at or before the version asked for.
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 1000)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(schema.snapshots.insert(), [row._asdict() for row in kept])
    engine.dispose()
    store.activate(ORDERS)
    store.asset(ORDERS).set("d", 4)
    assert store.state_as_of(ORDERS, position=store.events()[-1].position) == {"d": 4}


@pytest.mark.parametrize("batch", [1, 7])
def test_long_streams_go_through_snapshots_and_stay_exact(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 5)
    store.activate(ORDERS)
    state = store.asset(ORDERS)
    for step in range(12):
        state.set_many({f"k{(step * batch + i) % 9}": step * batch + i for i in range(batch)})
        if step % 5 == 4:
            state.delete(f"k{step % 9}")
        if step == 8:
            state.clear()
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        taken = conn.execute(sa.select(sa.func.count()).select_from(schema.snapshots)).scalar_one()
    engine.dispose()
    assert taken >= 2
    changes = store.history(ORDERS)
    for n, change in enumerate(changes, start=1):
        assert store.state_as_of(ORDERS, position=change.position) == fold_changes(changes[:n])
