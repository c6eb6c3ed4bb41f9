"""The accessor (eventstore/accessor.py): values round-trip, set/delete/clear/set_many/update and their
atomicity, the async twins, refusals that change nothing; on the three databases, both stores."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from eventstore import (
    Asset,
    AssetNotActiveError,
    Op,
    Store,
    open_store,
)
from tests.logcheck import LogInspector

pytestmark = pytest.mark.both_stores

orders = Asset("orders", uri="s3://data/orders/")


# --- values round-trip exactly -------------------------------------------------------------------

ROUND_TRIPS = [
    0,
    -7,
    2**63 - 1,
    2**80,
    -(2**100),
    0.1,
    1e300,
    -2.5e-308,
    1.0,
    True,
    False,
    "",
    "x\x00y",
    "Ω ∑ 🙂",
    "\udc80 lone surrogate",
    [],
    {},
    [1, "a", None, [None], {"k": None}],
    {"nested": {"deep": [1.5, {"x": [True, False]}]}, "": "empty key"},
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_values_round_trip_with_their_json_type(state: Any, value: Any) -> None:
    state.set("v", value)
    got = state.get("v")
    assert got == value
    assert type(got) is type(value)
    if isinstance(value, float):
        assert got.hex() == value.hex()


def test_tuples_come_back_as_lists(state: Any) -> None:
    state.set("t", (1, (2, 3)))
    assert state.get("t") == [1, [2, 3]]


def test_get_returns_default_only_for_missing_keys(state: Any) -> None:
    assert state.get("missing") is None
    assert state.get("missing", default="epoch") == "epoch"
    state.set("zero", 0)
    assert state.get("zero", default=99) == 0


def test_long_keys_and_keys_with_slashes(state: Any) -> None:
    long_key = "ä" * 512
    state.set(long_key, 1)
    state.set("a/b/c", 2)
    assert state.get(long_key) == 1
    assert state.get("a/b/c") == 2


# --- writes: events, the view and atomicity ------------------------------------------------------


def test_set_records_old_and_new_value(store: Store, state: Any) -> None:
    state.set("watermark", "2024-06-01")
    state.set("watermark", "2024-06-02")
    changes = store.history(orders, "watermark")
    assert [(c.op, c.previous, c.value) for c in changes] == [
        (Op.SET, None, "2024-06-01"),
        (Op.SET, "2024-06-01", "2024-06-02"),
    ]
    assert [c.version for c in changes] == [2, 3]


def test_delete_removes_a_key_and_is_silent_for_a_missing_one(store: Store, state: Any) -> None:
    state.set("a", 1)
    state.delete("a")
    state.delete("a")
    state.delete("never")
    assert state.get("a") is None
    changes = store.history(orders)
    assert [(c.op, c.key, c.previous) for c in changes[1:]] == [(Op.SET, "a", None), (Op.DELETE, "a", 1)]


def test_clear_removes_everything_in_one_event(store: Store, state: Any) -> None:
    state.clear()  # nothing to clear: no event
    state.set_many({"a": 1, "b": [2]})
    state.clear()
    state.clear()
    assert state.get("a") is None and state.get("b") is None
    last = store.history(orders)[-1]
    assert (last.op, last.key, last.previous) == (Op.CLEAR, None, {"a": 1, "b": [2]})
    assert [c.op for c in store.history(orders, "b")] == [Op.SET, Op.CLEAR]


def test_set_many_is_one_event_per_key_in_one_transaction(store: Store, state: Any) -> None:
    state.set_many({"watermark": "w1", "summary": {"rows": 3}})
    state.set_many({})
    changes = store.history(orders)[1:]
    assert [(c.key, c.value) for c in changes] == [("watermark", "w1"), ("summary", {"rows": 3})]
    assert changes[0].recorded_at == changes[1].recorded_at


def test_set_many_with_one_bad_value_writes_nothing(state: Any, inspector: LogInspector) -> None:
    before = inspector.log(), inspector.view()
    with pytest.raises(TypeError, match="set"):
        state.set_many({"good": 1, "bad": {1, 2}})
    assert (inspector.log(), inspector.view()) == before


def test_update_applies_the_function_atomically(state: Any) -> None:
    assert state.update("runs", lambda n: n + 1, default=0) == 1
    assert state.update("runs", lambda n: n + 1, default=0) == 2
    assert state.update("t", lambda old: (old, "x")) == [None, "x"]
    assert state.get("runs") == 2


def test_update_whose_function_fails_changes_nothing(state: Any, inspector: LogInspector) -> None:
    state.set("runs", 1)
    before = inspector.log(), inspector.view()

    def explode(_: Any) -> Any:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        state.update("runs", explode)
    with pytest.raises(ValueError, match="None"):
        state.update("runs", lambda _: None)
    with pytest.raises(TypeError, match="set"):
        state.update("runs", lambda _: {1})
    assert (inspector.log(), inspector.view()) == before


def test_large_values_are_written_with_a_warning(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("EVENTSTORE_MAX_VALUE_BYTES", "10")
    with open_store(db_url) as store:
        store.activate(orders)
        state = store.asset(orders)
        state.set("small", "x" * 8)  # 10 bytes of JSON text: at the limit, not over it
        assert caplog.text == ""
        state.set("big", "é" * 5)  # 5 characters, 12 bytes
        assert state.get("big") == "é" * 5
        assert "over EVENTSTORE_MAX_VALUE_BYTES=10" in caplog.text
    caplog.clear()
    monkeypatch.setenv("EVENTSTORE_MAX_VALUE_BYTES", "0")
    with open_store(db_url) as store:
        store.asset(orders).set("big", "x" * 100_000)
    assert caplog.text == ""


@pytest.mark.parametrize("setting", ["64k", "-1", "1e6"])
def test_a_malformed_max_value_bytes_is_named_when_the_store_opens(
    db_url: str, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv("EVENTSTORE_MAX_VALUE_BYTES", setting)
    with pytest.raises(ValueError, match=f"EVENTSTORE_MAX_VALUE_BYTES must be a whole number.*'{setting}'"):
        open_store(db_url)


# --- the async twins ------------------------------------------------------------------------------


def test_async_twins_work_off_the_event_loop_thread(state: Any) -> None:
    async def scenario() -> list[Any]:
        loop_thread = threading.get_ident()
        threads: list[int] = []

        def bump(n: Any) -> Any:
            threads.append(threading.get_ident())
            return n + 1

        await state.aset("a", 1)
        await state.aset_many({"b": 2, "c": 3})
        await state.adelete("b")
        got = [await state.aget("a"), await state.aget("b", "gone"), await state.aupdate("c", bump)]
        await state.aclear()
        got.append(await state.aget("c"))
        assert threads and loop_thread not in threads
        return got

    assert asyncio.run(scenario()) == [1, "gone", 4, None]


# --- refusals change nothing ----------------------------------------------------------------------


class Opaque:
    pass


def _bad_values() -> list[tuple[Any, type[Exception], str]]:
    import dataclasses
    import datetime
    import decimal
    import functools
    import uuid

    @dataclasses.dataclass
    class Point:
        x: int

    return [
        (None, ValueError, "Cannot set value as None"),
        (float("nan"), ValueError, "NaN"),
        (float("inf"), ValueError, "infinity"),
        (-float("inf"), ValueError, "infinity"),
        ([1, float("nan")], ValueError, "NaN"),
        ({"deep": [float("inf")]}, ValueError, "infinity"),
        (b"bytes", TypeError, "bytes"),
        ({1, 2}, TypeError, "set"),
        (frozenset(), TypeError, "frozenset"),
        (datetime.datetime(2024, 6, 1), TypeError, "datetime"),
        (datetime.date(2024, 6, 1), TypeError, "date"),
        (uuid.uuid4(), TypeError, "UUID"),
        (decimal.Decimal("1.5"), TypeError, "Decimal"),
        (Point(1), TypeError, "Point"),
        (Opaque(), TypeError, "Opaque"),
        ({1: "a"}, TypeError, "dict keys must be str"),
        ([{"ok": {2: "a"}}], TypeError, "dict keys must be str"),
        # Found by tests/test_fuzz_codec.py: this raised RecursionError.
        (functools.reduce(lambda inner, _: [inner], range(5000), 1), ValueError, "nested too deeply"),
    ]


@pytest.mark.parametrize(("value", "error", "message"), _bad_values(), ids=lambda v: type(v).__name__)
def test_bad_values_are_refused_and_change_nothing(
    state: Any, inspector: LogInspector, value: Any, error: type[Exception], message: str
) -> None:
    state.set("k", "before")
    before = inspector.log(), inspector.view()
    with pytest.raises(error, match=message):
        state.set("k", value)
    with pytest.raises(error, match=message):
        state.set_many({"other": 1, "k": value})
    with pytest.raises(error, match=message):
        state.update("k", lambda _: value)
    assert (inspector.log(), inspector.view()) == before
    assert state.get("k") == "before"


BAD_KEYS: list[tuple[Any, type[Exception], str]] = [
    ("", ValueError, "empty"),
    ("k" * 513, ValueError, "at most 512"),
    (5, TypeError, "int"),
    (None, TypeError, "NoneType"),
    (("a",), TypeError, "tuple"),
    ("a\x00b", ValueError, "NUL"),
    ("\udc80", ValueError, "surrogate"),
]


@pytest.mark.parametrize(("key", "error", "message"), BAD_KEYS, ids=repr)
def test_bad_keys_are_refused_by_every_operation(
    state: Any, inspector: LogInspector, key: Any, error: type[Exception], message: str
) -> None:
    state.set("k", 1)
    before = inspector.log(), inspector.view()
    calls = [
        lambda: state.get(key),
        lambda: state.set(key, 1),
        lambda: state.delete(key),
        lambda: state.update(key, lambda v: 1),
        lambda: state.set_many({key: 1}),
    ]
    for call in calls:
        with pytest.raises(error, match=message):
            call()
    assert (inspector.log(), inspector.view()) == before


@pytest.mark.parametrize("activated", [False, True], ids=["unknown", "deactivated"])
def test_every_operation_on_an_inactive_asset_is_refused_first(
    store: Store, inspector: LogInspector, activated: bool
) -> None:
    ghost = Asset("ghost")
    if activated:
        store.activate(ghost)
        store.asset(ghost).set("k", 1)
        store.deactivate(ghost)
    before = inspector.log(), inspector.view()
    state = store.asset(ghost)
    calls = [
        lambda: state.get("k"),
        lambda: state.set("k", 2),
        lambda: state.set_many({}),
        lambda: state.set_many({"k": 2}),
        lambda: state.delete("k"),
        lambda: state.clear(),
        lambda: state.update("k", lambda v: 2),
        # The activity check comes before the key and value rules.
        lambda: state.set("k", None),
        lambda: state.set("", 1),
        lambda: state.get(5),
    ]
    for call in calls:
        with pytest.raises(AssetNotActiveError, match="ghost"):
            call()
    assert (inspector.log(), inspector.view()) == before
