"""Inside a task: the context, the shorthand and Airflow's errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from eventstore import Asset, AssetNotActiveError, Store, StoreUnavailableError, Writer
from eventstore.database import Database

pytestmark = pytest.mark.both_stores

orders = Asset("orders", uri="s3://data/orders/")
customers = Asset("customers")
SHORTHAND = "concrete inlets and outlets — use context['asset_state_store'][MY_ASSET] to specify which"


@pytest.fixture
def offline_store() -> Store:
    """A store whose database does not exist: anything that did I/O would fail."""
    return Store(Database("postgresql+psycopg://nobody@127.0.0.1:9/none"))


def test_building_a_context_does_no_io_and_an_operation_reports_the_broken_database(
    offline_store: Store,
) -> None:
    context = offline_store.task_context(inlets=[orders], outlets=[orders, customers])
    accessors = context["asset_state_store"]
    assert len(accessors) == 2
    with pytest.raises(StoreUnavailableError, match="Cannot use the database at postgresql"):
        accessors[orders].get("watermark")


def test_a_task_without_concrete_assets_gets_an_empty_mapping(offline_store: Store) -> None:
    accessors = offline_store.task_context(inlets=["not an asset", 42])["asset_state_store"]
    assert len(accessors) == 0
    assert list(accessors) == []
    with pytest.raises(ValueError, match=re.escape(f"Task has 0 {SHORTHAND}")):
        accessors.get("watermark")


def test_subscript_errors_follow_airflow(offline_store: Store) -> None:
    accessors = offline_store.task_context(inlets=[orders])["asset_state_store"]
    assert accessors[Asset("orders", uri="s3://data/orders/")].asset == orders
    with pytest.raises(KeyError, match="not in this task's inlets or outlets"):
        accessors[customers]
    with pytest.raises(KeyError):
        accessors[Asset("orders")]  # same name, other uri: another asset
    with pytest.raises(TypeError, match="Expected Asset; got str"):
        accessors["orders"]


def test_shorthand_needs_exactly_one_concrete_asset(offline_store: Store) -> None:
    two = offline_store.task_context(inlets=[orders], outlets=[customers])["asset_state_store"]
    for call in (lambda: two.get("k"), lambda: two.set("k", 1), lambda: two.delete("k"), two.clear):
        with pytest.raises(ValueError, match=re.escape(f"Task has 2 {SHORTHAND}")):
            call()
    same_twice = offline_store.task_context(inlets=[orders], outlets=[orders])["asset_state_store"]
    assert len(same_twice) == 1


def test_shorthand_and_subscript_read_and_write_the_same_state(store: Store) -> None:
    store.activate(orders)
    writer = Writer.task("d", "r", "t")
    accessors = store.task_context(inlets=[orders], writer=writer)["asset_state_store"]
    accessors.set("watermark", "w1")
    accessors.set_many({"a": 1})
    assert accessors.update("a", lambda v: v + 1) == 2
    assert accessors[orders].get("watermark") == accessors.get("watermark") == "w1"
    accessors.delete("a")
    assert accessors.get("a", "gone") == "gone"
    accessors.clear()
    assert accessors.get("watermark") is None
    assert {change.writer for change in store.history(orders)[1:]} == {writer}


def test_shorthand_async_twins(store: Store) -> None:
    import asyncio

    store.activate(orders)
    accessors = store.task_context(outlets=[orders])["asset_state_store"]

    async def scenario() -> Any:
        await accessors.aset("w", 1)
        await accessors.aset_many({"x": 2})
        await accessors.aupdate("w", lambda v: v + 10)
        await accessors.adelete("x")
        value = await accessors.aget("w")
        await accessors.aclear()
        return value, await accessors.aget("w")

    assert asyncio.run(scenario()) == (11, None)


def test_inactive_assets_fail_on_use_not_on_context(store: Store) -> None:
    accessors = store.task_context(inlets=[orders])["asset_state_store"]
    with pytest.raises(AssetNotActiveError, match="orders"):
        accessors.get("watermark")
