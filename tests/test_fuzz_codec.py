"""A property-based fuzz run of the key and value rules (eventstore/codec.py) through the accessor, on the
three databases: hostile keys and values either are accepted and round-trip exactly (`get` and `history`
return a value equal in type and sign to what was written, tuples becoming lists), or are refused with the
documented TypeError or ValueError (docs/concepts.md, "Errors") and nothing changes in any table.

The expectation comes from the documented rules, written out independently here (`problems`), not from
the codec: a value with several problems may be refused for any of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventstore import Asset, Store, codec, schema
from eventstore.codec import MAX_KEY_LENGTH

EXAMPLES = int(os.environ.get("EVENTSTORE_FUZZ_CODEC_EXAMPLES", "40"))
"""Examples per database: 40 take about 2 s on SQLite and 3 s on a server database on 2 cores. A longer
hunt: EVENTSTORE_FUZZ_CODEC_EXAMPLES=2000 pytest tests/test_fuzz_codec.py."""

FUZZED = Asset("fuzzed", "s3://data/fuzzed/")

SURELY_ACCEPTED_DEPTH = 200
"""Nesting every database and the JSON libraries take (orjson's own limit is 255)."""
SURELY_REFUSED_DEPTH = 2000
"""Nesting beyond Python's recursion limit: refused with ValueError ("nested too deeply")."""


# --- the documented rules, as an oracle ------------------------------------------------------------


def key_problems(key: object) -> set[type[Exception]]:
    if not isinstance(key, str):
        return {TypeError}
    bad = not key or len(key) > MAX_KEY_LENGTH or "\x00" in key
    bad = bad or any(0xD800 <= ord(c) <= 0xDFFF for c in key)
    return {ValueError} if bad else set()


def depth(value: object) -> int:
    """How deeply lists, tuples and dicts nest in `value` (iteratively: values may nest thousands deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list | tuple):
            deepest = max(deepest, level + 1)
            stack.extend((x, level + 1) for x in item)
        elif isinstance(item, dict):
            deepest = max(deepest, level + 1)
            stack.extend((x, level + 1) for x in item.values())
    return deepest


def value_problems(value: object) -> set[type[Exception]]:
    """The exception types the documented rules allow for `value` (empty: it must be accepted)."""
    found: set[type[Exception]] = set()
    if value is None:
        found.add(ValueError)  # "Cannot set value as None"
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float and not math.isfinite(item):
            found.add(ValueError)
        elif kind in (str, int, float, bool) or item is None:
            pass
        elif kind in (list, tuple):
            stack.extend(item)
        elif kind is dict:
            if any(type(k) is not str for k in item):
                found.add(TypeError)
            stack.extend(item.values())
        else:
            found.add(TypeError)
    if depth(value) >= SURELY_REFUSED_DEPTH:
        found.add(ValueError)
    return found


def same(written: object, read: object) -> bool:
    """`read` is what storing `written` must give back: equal, of the same JSON type, with the same sign
    for zeros; tuples come back as lists. Iterative, for deeply nested values."""
    stack = [(written, read)]
    while stack:
        a, b = stack.pop()
        if isinstance(a, tuple):
            a = list(a)
        if type(a) is not type(b):
            return False
        if isinstance(a, float):
            if a != b or math.copysign(1, a) != math.copysign(1, b):
                return False
        elif isinstance(a, list):
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b, strict=True))
        elif isinstance(a, dict):
            if a.keys() != b.keys():
                return False
            stack.extend((a[k], b[k]) for k in a)
        elif a != b:
            return False
    return True


# --- strategies ----------------------------------------------------------------------------------

ANY_CHAR = st.characters(exclude_categories=())  # lone surrogates and NUL included
KEYS = st.one_of(
    st.text(max_size=12),
    st.text(ANY_CHAR, max_size=12),
    st.sampled_from(
        [
            "",
            "\x00",
            "a\x00b",
            "k" * MAX_KEY_LENGTH,
            "k" * (MAX_KEY_LENGTH + 1),
            "é" * MAX_KEY_LENGTH,
            "🦆" * MAX_KEY_LENGTH,
            "\ud800",
            "a\udfffb",
            "a/b",
            "/",
            "//a//",
            "../..",
            " ",
            "K",
            "k ",
            "%2F",
            "'; DROP TABLE es_events; --",
        ]
    ),
    st.integers(),
    st.none(),
    st.binary(max_size=4),
    st.tuples(st.text(max_size=3)),
)


def nested(levels: int) -> object:
    value: object = "bottom"
    for level in range(levels):
        value = [value] if level % 2 else {"n": value}
    return value


NOT_JSON = st.sampled_from(
    [
        b"bytes",
        bytearray(b"x"),
        {1, 2},
        frozenset(),
        complex(1, 2),
        Decimal("1.5"),
        datetime(2024, 6, 1, tzinfo=UTC),
        object(),
        Ellipsis,
        range(3),
    ]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),  # NaN, infinities and -0.0 included
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, 2**53 + 1, -(2**63), 2**64]),
    st.text(ANY_CHAR, max_size=20),
    NOT_JSON,
)
DICT_KEYS = st.one_of(st.text(ANY_CHAR, max_size=6), st.integers(), st.none(), st.booleans(), st.tuples())
TREES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(DICT_KEYS, inner, max_size=4),
    ),
    max_leaves=12,
)
LIMIT = codec.DEFAULT_MAX_VALUE_BYTES
HUGE = st.builds(
    lambda char, size: char * size,
    st.sampled_from(["x", "é", "🦆", "\x00", "\ud800", '"']),
    st.sampled_from([LIMIT - 2, LIMIT, LIMIT + 1, LIMIT // 2 + 1, 2 * LIMIT]),
)
DEEP = st.builds(nested, st.sampled_from([254, 255, 256, 900, SURELY_REFUSED_DEPTH, 5000]))
VALUES = st.one_of(TREES, TREES, TREES, HUGE, DEEP)


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Fuzzed:
    store: Store
    engine: sa.Engine

    def snapshot(self) -> list[list[tuple[Any, ...]]]:
        """Every row of every eventstore table (the log, the view, assets, snapshots, compactions, tokens)."""
        with self.engine.connect() as conn:
            return [
                [tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
                for table in schema.metadata.sorted_tables
            ]


@pytest.fixture
def fuzzed(store: Store, db_url: str) -> Iterator[Fuzzed]:
    store.activate(FUZZED)
    store.asset(FUZZED).set("existing", {"a": [1, 2.5, "x"]})
    engine = sa.create_engine(db_url)
    try:
        yield Fuzzed(store, engine)
    finally:
        engine.dispose()


WRITES: dict[str, Callable[[Any, Any, Any], object]] = {
    "set": lambda state, key, value: state.set(key, value),
    "set_many": lambda state, key, value: state.set_many({key: value, "existing": "changed"}),
    "update": lambda state, key, value: state.update(key, lambda old: value),
}


def write_and_check(fuzzed: Fuzzed, write: str, key: object, value: object) -> None:
    state = fuzzed.store.asset(FUZZED)
    allowed = key_problems(key) | value_problems(value)
    deep = depth(value) > SURELY_ACCEPTED_DEPTH
    before = fuzzed.snapshot()
    try:
        WRITES[write](state, key, value)
    except (TypeError, ValueError) as error:
        if not allowed:
            assert deep and "nested too deeply" in str(error), (write, key, error)
        else:
            assert isinstance(error, tuple(allowed)), (write, key, allowed, error)
        assert str(error), "a refusal says why"
        assert fuzzed.snapshot() == before, (write, key, "a refused write changed the store")
        return
    assert not allowed, (write, key, f"accepted, but the rules refuse it with {allowed}")
    assert isinstance(key, str)
    assert same(value, state.get(key)), (write, key)
    last = fuzzed.store.history(FUZZED, key=key, newest_first=True, limit=1)[0]
    assert last.op == "set" and last.key == key and same(value, last.value), (write, key)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(write=st.sampled_from(list(WRITES)), key=KEYS, value=VALUES)
# Regression: a value nested beyond the recursion limit raised RecursionError, not ValueError.
@example(write="set", key="deep", value=nested(5000))
@example(write="update", key="deep", value=nested(5000))
@example(write="set_many", key="k" * MAX_KEY_LENGTH, value=[2**64, -0.0, "\ud800\x00", (1, {"": None})])
@example(write="set", key="\udfff", value=1)
@example(write="update", key="nul", value=float("nan"))
def test_keys_and_values_round_trip_or_are_refused_changing_nothing(
    fuzzed: Fuzzed, write: str, key: object, value: object
) -> None:
    write_and_check(fuzzed, write, key, value)
    if write != "set":  # the other writes add a second or third event; the fold must still hold
        assert fuzzed.store.verify_projections() == []


def test_the_snapshot_sees_a_write(fuzzed: Fuzzed) -> None:
    """The "nothing changed" check is live: an accepted write shows in the snapshot."""
    before = fuzzed.snapshot()
    fuzzed.store.asset(FUZZED).set("existing", 1)
    assert fuzzed.snapshot() != before
