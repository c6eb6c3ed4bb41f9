"""The current key/value view (projections/current_state.py): its es_state rows after a sequence of
writes (value, version, time and writer of the event that wrote each), the same rows after a rebuild, and
its one-query lookup; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from eventstore import Asset, Op, Store, Writer, schema
from projections.current_state import CurrentStateView

ORDERS = Asset("orders", "s3://data/orders/")
OTHER = Asset("other")
ETL = Writer.task("etl", "run-1", "load", map_index=2, try_number=3, user="bot")


def view_rows(db_url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = sa.select(schema.state).order_by(schema.state.c.asset_id, schema.state.c.key)
            return [dict(row._mapping) for row in conn.execute(query)]
    finally:
        engine.dispose()


def test_the_rows_after_a_sequence_of_writes_and_after_a_rebuild(store: Store, db_url: str) -> None:
    store.activate(ORDERS)
    store.activate(OTHER)
    orders, other = store.asset(ORDERS, ETL), store.asset(OTHER)
    orders.set_many({"a": 1, "b": [2], "c": "three"})
    orders.set("a", 10)  # replaces a's row
    orders.delete("b")
    other.set("x", {"y": None})
    other.clear()  # removes every row of other
    other.set("z", True)
    orders.set_many({"c": "3", "d": 4.5})
    [orders_id] = [info.id for info in store.assets(name="orders")]
    [other_id] = [info.id for info in store.assets(name="other")]
    last_sets = {
        (asset_id, change.key): change
        for asset, asset_id in ((ORDERS, orders_id), (OTHER, other_id))
        for change in store.history(asset)
        if change.op is Op.SET
    }

    rows = view_rows(db_url)

    expected = {
        (orders_id, "a"): "10",
        (orders_id, "c"): '"3"',
        (orders_id, "d"): "4.5",
        (other_id, "z"): "true",
    }
    assert {(r["asset_id"], r["key"]): r["value"] for r in rows} == expected
    for row in rows:
        change = last_sets[(row["asset_id"], row["key"])]
        assert (row["version"], row["updated_at"]) == (change.version, change.recorded_at)
        assert (row["updated_by_kind"], row["updated_by_dag_id"], row["updated_by_user"]) == (
            change.writer.kind.value,
            change.writer.dag_id,
            change.writer.user,
        )
    assert {r["updated_by_map_index"] for r in rows if r["asset_id"] == orders_id} == {2}
    store.rebuild_projections()
    assert view_rows(db_url) == rows


def test_lookup_tells_an_inactive_asset_from_a_missing_key(store: Store) -> None:
    store.activate(ORDERS)
    store.asset(ORDERS).set("a", [1, "x"])
    store.activate(OTHER)
    store.asset(OTHER).set("a", 2)
    store.deactivate(OTHER)
    view = CurrentStateView(store._db.backend, store._db.dialect)

    def lookup(asset: Asset, key: str) -> tuple[bool, str | None]:
        return store._db.run(lambda conn: view.lookup(conn, asset.identity_hash, key))

    assert lookup(ORDERS, "a") == (True, '[1,"x"]')
    assert lookup(ORDERS, "missing") == (True, None)
    assert lookup(OTHER, "a") == (False, None)  # inactive: its hidden row is not read
    assert lookup(Asset("unknown"), "a") == (False, None)
    [orders_id] = [info.id for info in store.assets(name="orders")]
    assert store._db.run(lambda conn: view.read(conn, orders_id)) == {"a": '[1,"x"]'}
    assert store._db.run(lambda conn: view.read(conn, orders_id, ["a", "missing"])) == {"a": '[1,"x"]'}
