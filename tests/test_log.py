"""The log (eventstore/log.py): every write an event with its writer, the view the fold of the log,
positions never reused, the global feed in position order; on the three databases, both stores."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from eventstore import (
    Asset,
    Op,
    Store,
    Writer,
    WriterKind,
    schema,
)
from tests.logcheck import LogInspector, fold_log

pytestmark = pytest.mark.both_stores

orders = Asset("orders", uri="s3://data/orders/")


def test_every_event_records_its_writer(store: Store) -> None:
    writer = Writer.task("dag", "run", "load", map_index=3, try_number=2)
    store.activate(orders, writer)
    store.asset(orders).set("a", 1)
    store.asset(orders, Writer.watcher()).set("a", 2)
    writers = [change.writer for change in store.history(orders)]
    assert writers == [writer, Writer.api(), Writer.watcher()]
    assert writers[0].kind is WriterKind.TASK and writers[0].map_index == 3 and writers[0].try_number == 2


@pytest.mark.local_only  # over REST the server records the token's name (tests/test_client.py)
def test_the_user_who_acted_is_recorded_with_every_write_path(store: Store) -> None:
    store.activate(orders, Writer.cli(user="alice"))
    store.asset(orders, Writer.api(user="token-a")).set("a", 1)  # the one-statement set where there is one
    store.asset(orders, Writer.task("d", "r", "t", user="token-b")).set_many({"a": 2, "b": 3})
    store.asset(orders, Writer.cli(user="bob")).delete("b")
    assert [(c.writer.kind, c.writer.user) for c in store.history(orders)] == [
        ("cli", "alice"),
        ("api", "token-a"),
        ("task", "token-b"),
        ("task", "token-b"),
        ("cli", "bob"),
    ]
    assert [e.writer.user for e in store.events()] == ["alice", "token-a", "token-b", "token-b", "bob"]


def test_view_equals_fold_of_log_after_mixed_writes(state: Any, inspector: LogInspector) -> None:
    state.set_many({"a": 1, "b": 2, "c": 3})
    state.delete("b")
    state.update("a", lambda v: v * 10)
    state.clear()
    state.set("d", [4])
    assert inspector.view() == fold_log(inspector.log())


def test_positions_are_never_reused_after_rows_are_deleted(store: Store, state: Any, db_url: str) -> None:
    state.set("a", 1)
    state.set("a", 2)
    top = store.events()[-1].position
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(schema.events.delete().where(schema.events.c.position == top))
    engine.dispose()
    state.set("a", 3)
    assert store.events()[-1].position == top + 1


def test_the_global_feed_is_in_position_order(store: Store, state: Any) -> None:
    other = Asset("customers")
    store.activate(other)
    state.set("a", 1)
    store.asset(other).set("b", 2)
    feed = store.events()
    assert [e.position for e in feed] == list(range(1, 5))
    assert [(e.asset, e.op) for e in feed] == [
        (orders, Op.ACTIVATE),
        (other, Op.ACTIVATE),
        (orders, Op.SET),
        (other, Op.SET),
    ]
    assert [e.position for e in store.events(after=2, limit=1)] == [3]
