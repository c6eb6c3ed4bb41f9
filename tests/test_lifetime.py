"""Asset lifetime (eventstore/lifetime.py): activation, deactivation, conflicts, identity; on SQLite,
PostgreSQL and MariaDB, with the local store and the HTTP client."""

from __future__ import annotations

import pytest

from eventstore import (
    Asset,
    AssetConflictError,
    AssetNotActiveError,
    AssetNotFoundError,
    Op,
    Store,
)

pytestmark = pytest.mark.both_stores

orders = Asset("orders", uri="s3://data/orders/")


# --- asset lifetime ------------------------------------------------------------------------------


def test_activate_registers_once_and_records_one_event(store: Store) -> None:
    assert not store.is_active(orders)
    store.activate(orders)
    store.activate(orders)
    assert store.is_active(orders)
    [info] = store.assets()
    assert (info.name, info.uri, info.active, info.version) == ("orders", "s3://data/orders/", True, 1)
    assert [change.op for change in store.history(orders)] == [Op.ACTIVATE]


def test_deactivate_hides_state_and_reactivation_restores_it(store: Store) -> None:
    store.activate(orders)
    store.asset(orders).set("watermark", "2024-06-01")
    store.deactivate(orders)
    store.deactivate(orders)  # a no-op for an inactive asset
    assert not store.is_active(orders)
    with pytest.raises(AssetNotActiveError, match="deactivated"):
        store.asset(orders).get("watermark")
    assert store.assets(active=False)[0].name == "orders"
    assert store.assets(active=True) == []
    store.activate(orders)
    assert store.asset(orders).get("watermark") == "2024-06-01"
    ops = [change.op for change in store.history(orders)]
    assert ops == [Op.ACTIVATE, Op.SET, Op.DEACTIVATE, Op.ACTIVATE]


def test_deactivating_an_unknown_asset_is_an_error(store: Store) -> None:
    with pytest.raises(AssetNotFoundError, match="not known"):
        store.deactivate(Asset("never-seen"))


@pytest.mark.parametrize("rival", [Asset("orders", "s3://elsewhere"), Asset("other", "s3://data/orders/")])
def test_an_active_name_or_uri_cannot_be_taken_by_another_asset(store: Store, rival: Asset) -> None:
    store.activate(orders)
    with pytest.raises(AssetConflictError, match="already used"):
        store.activate(rival)
    assert not store.is_active(rival)
    store.deactivate(orders)
    store.activate(rival)
    assert store.is_active(rival)


def test_names_uris_and_keys_compare_exactly(store: Store) -> None:
    variants = [Asset("orders"), Asset("Orders"), Asset("orders ")]
    for asset in variants:
        store.activate(asset)
    for index, asset in enumerate(variants):
        state = store.asset(asset)
        for key in ("k", "K", "k "):
            state.set(key, f"{index}{key}")
    for index, asset in enumerate(variants):
        state = store.asset(asset)
        assert [state.get(key) for key in ("k", "K", "k ")] == [f"{index}k", f"{index}K", f"{index}k "]
    assert len(store.assets(active=True)) == 3
