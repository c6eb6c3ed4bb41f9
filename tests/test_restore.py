"""`restore`: rewinding an asset's state to a past point, audited as ordinary events; and the
hypothesis invariant `restore(p)` makes `get` equal `state_as_of(p)`. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import rule

from eventstore import (
    Asset,
    AssetNotActiveError,
    CompactedError,
    Op,
    Store,
    Writer,
)
from projections import snapshots
from tests.test_invariants import ASSETS, KEYS, StoreMachine, run_on

pytestmark = pytest.mark.both_stores

ORDERS = Asset("orders", "s3://data/orders/")


@pytest.mark.local_only  # a REST write records the token's name, not a cli writer (tests/test_client.py)
def test_restore_appends_the_sets_and_deletes_that_rewind_the_state(store: Store) -> None:
    store.activate(ORDERS)
    state = store.asset(ORDERS)
    state.set_many({"watermark": "2024-06-01", "cursor": 1})
    point = store.history(ORDERS)[-1].position
    state.set("watermark", "2024-06-02")
    state.set("extra", [1, 2])
    state.delete("cursor")

    changes = store.restore(ORDERS, position=point, writer=Writer.cli(user="ops"))

    assert [(c.op, c.key, c.value, c.previous) for c in changes] == [
        (Op.SET, "watermark", "2024-06-01", "2024-06-02"),
        (Op.SET, "cursor", 1, None),
        (Op.DELETE, "extra", None, [1, 2]),
    ]
    assert {c.writer for c in changes} == {Writer.cli(user="ops")}
    assert store.history(ORDERS)[-3:] == changes  # the restore is itself in the log, exactly as returned
    assert {k: state.get(k) for k in ("watermark", "cursor", "extra")} == {
        "watermark": "2024-06-01",
        "cursor": 1,
        "extra": None,
    }
    assert store.state_as_of(ORDERS, position=changes[-1].position) == store.state_as_of(
        ORDERS, position=point
    )


def test_restore_to_the_current_state_appends_nothing(store: Store) -> None:
    store.activate(ORDERS)
    store.asset(ORDERS).set("watermark", 1)
    last = store.history(ORDERS)[-1]
    assert store.restore(ORDERS, position=last.position) == []
    assert store.restore(ORDERS, at=last.recorded_at) == []
    assert store.history(ORDERS)[-1] == last


def test_restore_before_the_first_event_empties_the_state_and_can_be_undone(store: Store) -> None:
    store.activate(ORDERS)
    state = store.asset(ORDERS)
    state.set_many({"a": 1, "b": 2})
    before = store.history(ORDERS)[-1].position
    emptied = store.restore(ORDERS, position=0)
    assert [(c.op, c.key) for c in emptied] == [(Op.DELETE, "a"), (Op.DELETE, "b")]
    assert state.get("a") is None
    undone = store.restore(ORDERS, position=before)
    assert [(c.op, c.key, c.value) for c in undone] == [(Op.SET, "a", 1), (Op.SET, "b", 2)]
    assert (state.get("a"), state.get("b")) == (1, 2)


def test_a_dry_run_returns_the_changes_and_appends_nothing(store: Store) -> None:
    store.activate(ORDERS)
    state = store.asset(ORDERS)
    state.set("watermark", "old")
    point = store.history(ORDERS)[-1].position
    state.set("watermark", "new")
    head = store.history(ORDERS)

    planned = store.restore(ORDERS, position=point, dry_run=True)

    assert [(c.op, c.key, c.value, c.previous) for c in planned] == [(Op.SET, "watermark", "old", "new")]
    assert store.history(ORDERS) == head
    assert state.get("watermark") == "new"


def test_restore_refuses_inactive_unknown_assets_bad_points_and_compacted_points(store: Store) -> None:
    with pytest.raises(AssetNotActiveError, match="not known"):
        store.restore(ORDERS, position=0)
    store.activate(ORDERS)
    store.asset(ORDERS).set("watermark", 1)
    with pytest.raises(ValueError, match="exactly one"):
        store.restore(ORDERS)
    with pytest.raises(ValueError, match="exactly one"):
        store.restore(ORDERS, position=1, at=store.history(ORDERS)[0].recorded_at)
    store.deactivate(ORDERS)
    with pytest.raises(AssetNotActiveError, match="not active"):
        store.restore(ORDERS, position=0)
    store.compact()
    store.activate(ORDERS)
    with pytest.raises(CompactedError, match="compacted on"):
        store.restore(ORDERS, position=1)


class RestoreMachine(StoreMachine):
    """The core machine plus a `restore` rule: afterwards `get` equals `state_as_of` the chosen point."""

    @rule(asset=st.sampled_from(ASSETS), pick=st.integers(min_value=0, max_value=10**6))
    def restore(self, asset: Asset, pick: int) -> None:
        feed = self.store.events(limit=100_000)
        position = pick % ((feed[-1].position if feed else 0) + 2)
        if asset not in self.active:
            with pytest.raises(AssetNotActiveError):
                self.store.restore(asset, position=position)
            return
        expected = self.store.state_as_of(asset, position=position)
        changes = self.store.restore(asset, position=position, writer=Writer.cli(user="hypothesis"))
        accessor = self.store.asset(asset)
        assert {key: accessor.get(key, "<absent>") for key in KEYS} == {
            key: expected.get(key, "<absent>") for key in KEYS
        }
        self.model[asset] = dict(expected)
        self.events_per_asset[asset] += len(changes)


EXAMPLES = {"sqlite": 25, "postgres": 12, "mysql": 12}


def test_restore_makes_get_equal_state_as_of(db_url: str, backend: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 3)
    run_on(RestoreMachine, db_url, backend, EXAMPLES)
