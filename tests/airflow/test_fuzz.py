"""A property-based fuzz run of the Airflow backend's inputs (eventstore.airflow.EventStoreBackend, as
Airflow's Execution API calls it), on this run's metadata database (SQLite or PostgreSQL).

Keys and values are what Airflow hands the backend: a key string and the value's JSON text, here hostile
(lone surrogates, NUL, 512 and 513 characters, slashes, huge integers) and also text that is not JSON.
Whatever the input:

- a call either succeeds or raises what Airflow's own MetastoreBackend raises for it: the database
  driver's refusal of text the column cannot hold (`PLAIN_AIRFLOW_REFUSES`), never an eventstore error;
- a refused call changes nothing: Airflow's table and eventstore's log and view are as before;
- an accepted change is exactly one event per row changed, whose value is Airflow's, and the log's fold
  stays Airflow's table (`check_log_matches_airflow`);
- eventstore reads the asset back (history, as-of) without error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.airflow.conftest import DB, check_log_matches_airflow, events, last_version

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXAMPLES = int(os.environ.get("EVENTSTORE_FUZZ_AIRFLOW_EXAMPLES", "30"))
"""Examples (1 to 3 calls each) per run, one run per metadata database: 30 take about 5 s. A longer hunt:
EVENTSTORE_FUZZ_AIRFLOW_EXAMPLES=1000 make test-airflow (or the Airflow venv's pytest on this file)."""

NAME = "fuzzed"

ANY_CHAR = st.characters(exclude_categories=())
KEYS = st.one_of(
    st.text(max_size=10),
    st.text(ANY_CHAR, max_size=10),
    st.sampled_from(["", "\x00", "k" * 512, "k" * 513, "é" * 512, "a/b", "/", "\ud800", "k ", "K", "k"]),
)
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**100), max_value=2**100),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(ANY_CHAR, max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
VALUE_TEXTS = st.one_of(
    JSON_VALUES.map(json.dumps),  # ensure_ascii: surrogates become \\ud800 escapes, as Airflow writes
    JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False)),  # raw: a lone surrogate, NUL
    st.sampled_from(["1e999", str(2**70), "[" * 200 + "]" * 200, '{"a": 1, "a": 2}']),
)
NOT_READABLE = ["not json", "NaN", "", "{", '"\x00"', "[" * 2000 + "]" * 2000]
"""Texts Airflow's own APIs never store (they write json.dumps of a validated value), but its backend
and raw SQL accept: eventstore logs them faithfully, then cannot read them back (see the test below)."""
CALLS = st.one_of(
    st.tuples(st.just("set"), KEYS, VALUE_TEXTS),
    st.tuples(st.just("set"), st.sampled_from(["k", "watermark"]), VALUE_TEXTS),
    st.tuples(st.just("set_asset_state_store"), KEYS, VALUE_TEXTS),
    st.tuples(st.just("delete"), st.one_of(KEYS, st.sampled_from(["k", "watermark"])), st.none()),
    st.tuples(st.just("clear"), st.none(), st.none()),
)


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def plain_airflow_refuses(op: str, key: str | None, value: str | None) -> bool:
    """Whether Airflow's own backend, on this database, refuses these texts (its driver does): a lone
    surrogate cannot be encoded as UTF-8 by either driver; PostgreSQL takes no NUL, and its key column,
    varchar(512), no longer key (a delete of one only finds nothing). SQLite stores the rest, also a
    513-character key (it does not enforce varchar lengths)."""
    texts = [t for t in (key, value) if t is not None]
    if any(has_surrogate(t) for t in texts):
        return True
    if DB == "postgres":
        too_long = op.startswith("set") and key is not None and len(key) > 512
        return any("\x00" in t for t in texts) or too_long
    return False


@pytest.fixture(scope="module")
def fuzzed_asset(airflow_url: str, db: sa.Engine) -> int:
    """An active Airflow asset of its own, created as Airflow creates assets (its ORM models)."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = AssetModel(name=NAME, uri=f"s3://fuzz/{NAME}", group="asset")
        session.add(asset)
        session.flush()
        session.add(AssetActive.for_asset(asset))
        session.flush()
        found = int(asset.id)
    from eventstore.airflow import install

    install(airflow_url)  # SQLite's triggers leave a placeholder identity hash until then (docs/airflow.md)
    return found


@pytest.fixture(scope="module")
def backend(fuzzed_asset: int) -> Iterator[Any]:
    from eventstore.airflow import EventStoreBackend

    yield EventStoreBackend()


def state_rows(db: sa.Engine, asset: int) -> list[tuple[Any, ...]]:
    """Airflow's rows of the asset, key and value first."""
    with db.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT key, value, updated_at, last_updated_by_kind FROM asset_state_store "
                    "WHERE asset_id = :a ORDER BY key"
                ),
                {"a": asset},
            )
        ]


def everything(db: sa.Engine, asset: int) -> tuple[Any, ...]:
    """Airflow's rows of the asset, eventstore's events, view rows and stream head for it."""
    with db.connect() as conn:
        view = conn.execute(
            sa.text("SELECT * FROM es_state WHERE asset_id = :a ORDER BY 1, 2"), {"a": asset}
        ).all()
        head = conn.execute(sa.text("SELECT * FROM es_assets WHERE id = :a"), {"a": asset}).all()
    return (state_rows(db, asset), [tuple(e) for e in events(db, asset)], [tuple(r) for r in view], head)


def call(backend: Any, asset: int, op: str, key: Any, value: Any) -> None:
    from airflow._shared.state import AssetScope, AssetStateStoreWriterKind

    scope = AssetScope(asset_id=asset)
    if op == "set":
        backend.set(scope, key, value)
    elif op == "set_asset_state_store":
        backend.set_asset_state_store(
            scope,
            key,
            value,
            kind=AssetStateStoreWriterKind.TASK,
            dag_id="d",
            run_id="r",
            task_id="t",
            map_index=-1,
        )
    elif op == "delete":
        backend.delete(scope, key)
    else:
        backend.clear(scope)


@pytest.fixture(scope="module")
def reader(airflow_url: str, fuzzed_asset: int) -> Iterator[Any]:
    from eventstore import open_store

    with open_store(airflow_url, migrate=False) as store:
        yield store


def read_back(reader: Any, asset: int) -> None:
    """eventstore's own readers of the asset work: history, and as-of at the head. (Not `verify`: in
    Airflow mode es_state stays empty, Airflow's table being the view, and `open_store` does not know that
    yet: docs/airflow.md.)"""
    [info] = reader.assets(asset_id=asset)
    changes = reader.history(info.asset)
    reader.state_as_of(info.asset, position=changes[-1].position if changes else 0)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(calls=st.lists(CALLS, min_size=1, max_size=3))
@example(calls=[("set", "k" * 513, '"v"'), ("set", "\ud800", "1"), ("set", "n\x00", '"\\u0000"')])
@example(calls=[("set", "k", str(2**70)), ("set", "w", "1e999"), ("clear", None, None)])
@example(calls=[("delete", "k" * 513, None), ("delete", "\x00", None)])  # PostgreSQL: no error, finds nothing
def test_backend_inputs_are_refused_as_airflow_refuses_them_or_logged_once(
    backend: Any, fuzzed_asset: int, db: sa.Engine, reader: Any, calls: list[tuple[str, Any, Any]]
) -> None:
    for op, key, value in calls:
        before = everything(db, fuzzed_asset)
        rows_before = {row[0]: row for row in before[0]}
        seen = last_version(db, fuzzed_asset)
        try:
            call(backend, fuzzed_asset, op, key, value)
        except Exception as error:
            assert plain_airflow_refuses(op, key, value), (op, key, value, repr(error))
            assert not type(error).__module__.startswith("eventstore"), (op, key, repr(error))
            assert everything(db, fuzzed_asset) == before, (op, key, "a refused call changed something")
            continue
        assert not plain_airflow_refuses(op, key, value), (op, key, value, "accepted what Airflow refuses")
        new = events(db, fuzzed_asset, after_version=seen)
        rows = {row[0]: row for row in state_rows(db, fuzzed_asset)}
        if op in ("set", "set_asset_state_store"):
            assert [(e.op, e.key, e.value) for e in new] == [("set", key, value)], (op, key, value)
            assert rows[key][1] == value
        elif op == "delete":
            expected = [("delete", key)] if key in rows_before else []
            assert [(e.op, e.key) for e in new] == expected, (op, key)
        else:
            assert sorted((e.op, e.key) for e in new) == sorted(("delete", k) for k in rows_before)
        check_log_matches_airflow(db, fuzzed_asset)
    read_back(reader, fuzzed_asset)


@pytest.mark.xfail(
    strict=True,
    reason="eventstore cannot read back a value text that is not JSON (or nests beyond the recursion "
    "limit) which Airflow's backend or raw SQL put in asset_state_store: history raises JSONDecodeError "
    "or RecursionError. Airflow's APIs never write one; open question: refuse it in EventStoreBackend, "
    "or show it as text in eventstore's readers",
)
@pytest.mark.parametrize("text", NOT_READABLE, ids=["text", "NaN", "empty", "brace", "raw-NUL", "deep"])
def test_a_value_text_that_is_not_json_is_logged_and_read_back(
    backend: Any, fuzzed_asset: int, db: sa.Engine, reader: Any, text: str
) -> None:
    seen = last_version(db, fuzzed_asset)
    call(backend, fuzzed_asset, "set", "not-json", text)
    assert [(e.op, e.key, e.value) for e in events(db, fuzzed_asset, after_version=seen)] == [
        ("set", "not-json", text)
    ]
    try:
        read_back(reader, fuzzed_asset)
    finally:
        call(backend, fuzzed_asset, "delete", "not-json", None)
