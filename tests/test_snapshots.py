"""Snapshots (projections/snapshots.py): inline, a snapshot of the view's rows at every version that
crosses a multiple of the interval, the same rows after a rebuild; `latest_snapshot` skips unreadable
and compacted ones; the snapshot text and when one is due; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from eventstore import Asset, Store, schema
from projections import snapshots

ORDERS = Asset("orders")
_snapshots = schema.snapshots


def snapshot_rows(db_url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = sa.select(_snapshots.c.asset_id, _snapshots.c.version, _snapshots.c.state)
            return [
                tuple(row)
                for row in conn.execute(query.order_by(_snapshots.c.asset_id, _snapshots.c.version))
            ]
    finally:
        engine.dispose()


def test_the_rows_after_a_sequence_of_writes_and_after_a_rebuild(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 3)
    store.activate(ORDERS)  # version 1
    state = store.asset(ORDERS)
    state.set("a", 1)  # 2
    state.set("b", "x")  # 3: a snapshot
    state.delete("a")  # 4
    state.set("c", [1])  # 5
    state.clear()  # 6: a snapshot of nothing
    state.set("d", 2)  # 7
    state.set_many({"e": 3, "f": 4})  # 8, 9: one batch crossing 9
    state.set_many({"g": 5, "h": 6})  # 10, 11
    [asset_id] = [info.id for info in store.assets()]

    rows = snapshot_rows(db_url)

    assert rows == [
        (asset_id, 3, '{"a":"1","b":"\\"x\\""}'),
        (asset_id, 6, "{}"),
        (asset_id, 9, '{"d":"2","e":"3","f":"4"}'),
    ]
    store.rebuild_projections()
    assert snapshot_rows(db_url) == rows


def test_a_batch_crossing_a_multiple_is_snapshotted_at_its_last_version(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 4)
    store.activate(ORDERS)  # version 1
    store.asset(ORDERS).set_many({"a": 1, "b": 2, "c": 3, "d": 4})  # 2 to 5: crosses 4
    [asset_id] = [info.id for info in store.assets()]
    assert snapshot_rows(db_url) == [(asset_id, 5, '{"a":"1","b":"2","c":"3","d":"4"}')]


def test_latest_snapshot_skips_unreadable_and_compacted_snapshots(store: Store, db_url: str) -> None:
    store.activate(ORDERS)
    [asset_id] = [info.id for info in store.assets()]
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                _snapshots.insert(),
                [
                    {"asset_id": asset_id, "version": 2, "state": '{"a":"1"}'},
                    {"asset_id": asset_id, "version": 4, "state": '{"a":"2"}'},
                    {"asset_id": asset_id, "version": 6, "state": "{not json"},
                    {"asset_id": asset_id, "version": 8, "state": '{"a":3}'},  # not JSON texts
                ],
            )
        with engine.connect() as conn:

            def latest(at_or_before: int, after: int = 0) -> snapshots.Snapshot | None:
                return snapshots.latest_snapshot(conn, asset_id, at_or_before=at_or_before, after=after)

            assert latest(9) == snapshots.Snapshot(4, {"a": "2"})
            assert latest(3) == snapshots.Snapshot(2, {"a": "1"})
            assert latest(1) is None
            assert latest(9, after=4) is None  # at or before the compacted version: never used
            assert latest(9, after=3) == snapshots.Snapshot(4, {"a": "2"})
    finally:
        engine.dispose()


def test_the_snapshot_text_and_when_one_is_due() -> None:
    text = snapshots.encode_state({"b": "2", "a": '"x"'})
    assert text == '{"a":"\\"x\\"","b":"2"}'
    assert snapshots.decode_state(text) == {"a": '"x"', "b": "2"}
    for unreadable in ("{not json", "[]", '{"a":1}', "null"):
        assert snapshots.decode_state(unreadable) is None
    assert [v for v in range(1, 12) if snapshots.snapshot_due(v, v, 4)] == [4, 8]
    assert snapshots.snapshot_due(3, 5, 4) and snapshots.snapshot_due(4, 4, 4)
    assert not snapshots.snapshot_due(5, 7, 4) and not snapshots.snapshot_due(1, 3, 4)
