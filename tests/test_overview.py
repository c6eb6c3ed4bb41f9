"""The web page's reads (eventstore/overview.py): `asset_overview` counts keys and filters and pages
assets, `key_timeline` buckets a key's history, `key_changes` pages it newest first; clears count only
where they removed the key. On SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from eventstore import Asset, AssetNotFoundError, Store, Writer
from eventstore.overview import asset_overview, key_changes, key_timeline

ORDERS = Asset("orders", "s3://data/orders/")
ETL = Writer.task("etl", "run-1", "load")


def test_asset_overview_counts_filters_and_pages(store: Store) -> None:
    store.activate(ORDERS)
    store.asset(ORDERS).set_many({"a": 1, "b": 2, "c": 3})
    store.asset(ORDERS).delete("b")
    for name in ("Users", "logs"):
        store.activate(Asset(name, f"db://{name.lower()}"))
    store.deactivate(Asset("logs", "db://logs"))

    everything = asset_overview(store)

    assert [(a.name, a.active, a.keys, a.version) for a in everything.assets] == [
        ("orders", True, 2, 5),
        ("Users", True, 0, 1),
        ("logs", False, 0, 2),
    ]
    assert everything.total == 3 and everything.last_position == store.events()[-1].position
    assert everything.assets[0].last_change_at == store.history(ORDERS)[-1].recorded_at
    assert [a.name for a in asset_overview(store, name_contains="USER").assets] == ["Users"]
    assert [a.name for a in asset_overview(store, name_contains="DB://").assets] == ["Users", "logs"]
    assert [a.name for a in asset_overview(store, active=False).assets] == ["logs"]
    paged = asset_overview(store, limit=1, offset=1)
    assert ([a.name for a in paged.assets], paged.total) == (["Users"], 3)
    orders_id = everything.assets[0].id
    assert [a.name for a in asset_overview(store, asset_id=orders_id).assets] == ["orders"]


def test_key_timeline_buckets_counts_and_kinds(store: Store) -> None:
    store.activate(ORDERS)
    orders = store.asset(ORDERS, ETL)
    for n in (5, 1, 9, 3):
        orders.set("rows", n)
    orders.clear()  # removed rows: counts
    orders.set("note", 1)
    orders.clear()  # removed only note: does not count for rows
    orders.set("rows", 7)
    orders.set("when", "2024-06-01T00:00:00Z")
    orders.set("name", "x")
    orders_id = store.assets(name="orders")[0].id

    one = key_timeline(store, orders_id, "rows", buckets=1)

    assert (one.kind, one.total) == ("number", 6)
    [bucket] = one.buckets
    assert (bucket.count, bucket.low, bucket.high) == (6, 1, 9)
    assert (bucket.last.value, bucket.last.op, bucket.last.writer) == (7, "set", ETL)
    assert sum(b.count for b in key_timeline(store, orders_id, "rows").buckets) == 6
    assert key_timeline(store, orders_id, "when").kind == "time"
    assert key_timeline(store, orders_id, "name").kind == "other"
    assert key_timeline(store, orders_id, "never").buckets == []
    with pytest.raises(AssetNotFoundError):
        key_timeline(store, orders_id + 1000, "rows")


def test_key_changes_pages_newest_first_skipping_clears_that_did_not_remove_it(store: Store) -> None:
    store.activate(ORDERS)
    orders = store.asset(ORDERS)
    for n in range(4):
        orders.set("rows", n)
        orders.set("other", n)
    orders.clear()  # removed rows
    orders.set("other", 4)
    orders.clear()  # removed only other
    orders.set("rows", 99)
    orders_id = store.assets(name="orders")[0].id
    expected = [c.position for c in store.history(ORDERS, "rows", newest_first=True)]
    assert len(expected) == 6

    seen: list[int] = []
    before = None
    while page := key_changes(store, orders_id, "rows", before=before, limit=2):
        assert len(page) <= 2
        seen += [c.position for c in page]
        before = page[-1].position
    assert seen == expected
    assert [c.op.value for c in key_changes(store, orders_id, "rows", limit=2)] == ["set", "clear"]
