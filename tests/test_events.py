"""Events (eventstore/events.py): what each command decides from the current state, and `fold`, the
one definition of state, with no database."""

from __future__ import annotations

import json

from eventstore.events import Op, PendingEvent, clear_events, delete_events, fold, set_events

CURRENT = {"a": "1", "b": '{"x":[2]}'}


def test_set_remembers_what_each_key_replaced() -> None:
    assert set_events({"a": "5", "c": '"new"'}, CURRENT) == [
        PendingEvent(Op.SET, "a", "5", "1"),
        PendingEvent(Op.SET, "c", '"new"', None),
    ]


def test_delete_of_an_absent_key_records_nothing() -> None:
    assert delete_events("a", CURRENT) == [PendingEvent(Op.DELETE, "a", None, "1")]
    assert delete_events("zzz", CURRENT) == []


def test_clear_records_every_removed_key_as_stored_and_nothing_when_empty() -> None:
    [event] = clear_events(CURRENT)
    assert (event.op, event.key, event.value) == (Op.CLEAR, None, None)
    assert json.loads(event.previous or "") == {"a": 1, "b": {"x": [2]}}
    assert event.previous == '{"a":1,"b":{"x":[2]}}'  # the stored texts, not re-encoded
    assert clear_events({}) == []


def test_fold_applies_each_op_and_ignores_lifetime_events() -> None:
    state: dict[str, str] = {}
    for op, key, value in [
        (Op.ACTIVATE, None, None),
        (Op.SET, "a", "1"),
        (Op.SET, "b", "2"),
        (Op.SET, "a", "3"),
        (Op.DELETE, "b", None),
        (Op.DELETE, "missing", None),
        (Op.DEACTIVATE, None, None),
    ]:
        fold(state, op, key, value)
    assert state == {"a": "3"}
    fold(state, Op.CLEAR, None, None)
    assert state == {}
