"""The store (eventstore/store.py): `open_store` and its URL, and the `Store` facade's own reads and
writes (`entry`, `asset_info`, `active_asset`, the conditional `write`, the feed's bounds); on SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventstore import Asset, Store, VersionConflictError, Writer, open_store
from eventstore.errors import AssetNotFoundError
from eventstore.protocol import VersionedState

ORDERS = Asset("orders", "s3://data/orders/")


# --- open_store --------------------------------------------------------------------------------------


def test_open_store_uses_eventstore_url_then_the_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTSTORE_URL", raising=False)
    with open_store() as store:
        store.activate(Asset("local"))
    assert (tmp_path / "eventstore.db").exists()
    monkeypatch.setenv("EVENTSTORE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with open_store() as store:
        assert store.assets() == []
    assert (tmp_path / "other.db").exists()


# --- reads by asset id and by name or uri --------------------------------------------------------


def test_store_entry_is_the_row_entries_reads(store: Store) -> None:
    """`Store.entry` (one prepared statement, what GET of a key runs) answers exactly as `entries`."""
    asset = Asset("a")
    store.activate(asset)
    store.asset(asset, Writer.task("d", "r", "t", 2, 3, user="bot")).set("k/1", {"v": [1, "é"]})
    asset_id = store.assets()[0].id
    page = store.entries(asset_id, ["k/1"])
    assert store.entry(asset_id, "k/1") == (page.entries[0], page.version)
    assert store.asset_info(asset_id) == store.assets(asset_id=asset_id)[0]  # prepared too
    assert store.entry(asset_id, "k/1")[0].updated_at.tzinfo is not None  # type: ignore[union-attr]
    assert store.entry(asset_id, "absent") == (None, page.version)
    store.deactivate(asset)
    assert store.entry(asset_id, "k/1")[0] == page.entries[0]  # inactive: still readable
    assert store.asset_info(asset_id) == store.assets(asset_id=asset_id)[0]
    assert not store.asset_info(asset_id).active
    with pytest.raises(AssetNotFoundError):
        store.entry(asset_id + 1, "k/1")


def test_active_asset_by_name_or_uri(store: Store) -> None:
    """What the /execution routes resolve with: the es_asset_active index, exact, active only."""
    store.activate(Asset("orders", "s3://o"))
    store.activate(Asset("old", "s3://old"))
    store.deactivate(Asset("old", "s3://old"))
    assert store.active_asset(name="orders") == Asset("orders", "s3://o")
    assert store.active_asset(uri="s3://o") == Asset("orders", "s3://o")
    for missing in ({"name": "old"}, {"uri": "s3://old"}, {"name": "Orders"}, {"name": "orders "}):
        assert store.active_asset(**missing) is None, missing
    assert store.active_asset(name="s3://o") is None and store.active_asset(uri="orders") is None
    assert store.active_asset(name="\ud800") is None
    with pytest.raises(ValueError):
        store.active_asset()


# --- writes and the feed, with the local store and the HTTP client ------------------------------


@pytest.mark.both_stores
def test_a_conditional_write_lands_only_at_the_expected_version(store: Store) -> None:
    store.activate(ORDERS)
    version = store.read_state(ORDERS).version
    after = store.write(ORDERS, Writer.api(), sets={"a": "1", "b": "2"}, expected_version=version)
    assert after == version + 2
    with pytest.raises(VersionConflictError, match=f"version {after}, not {version}"):
        store.write(ORDERS, Writer.api(), deletes=["a"], expected_version=version)
    assert store.read_state(ORDERS).values == {"a": "1", "b": "2"}
    assert store.write(ORDERS, Writer.api(), deletes=["a", "missing"], expected_version=after) == after + 1
    assert store.write(ORDERS, Writer.api(), clear=True) == after + 2
    assert store.read_state(ORDERS) == VersionedState({}, after + 2)
    assert store.write(ORDERS, Writer.api(), deletes=["gone"]) == after + 2  # nothing to record


@pytest.mark.both_stores
def test_feed_bounds_beyond_bigint_are_a_clear_value_error(store: Store) -> None:
    # Found by tests/test_fuzz_cli.py's run: on SQLite the driver raised OverflowError.
    for bounds in ({"after": 2**64}, {"limit": 2**64}, {"after": -1}):
        with pytest.raises(ValueError, match="must be from 0 to"):
            store.events(**bounds)
    assert store.events(after=2**63 - 1) == []
