"""The codec (eventstore/codec.py): what a key and a value may be, and the JSON text they become, with
no database. tests/test_fuzz_codec.py drives the same rules through the store on the three databases."""

from __future__ import annotations

import json

import pytest

from eventstore import codec


@pytest.mark.parametrize(
    "value",
    [0, -1, 2**63, -(2**100), 0.5, -0.0, True, "", "é🙂", "\udc80", [1, [2, {"a": None}]], {"": [True]}],
    ids=repr,
)
def test_values_become_json_text_that_decodes_to_an_equal_value(value: object) -> None:
    text = codec.encode(value)
    assert json.loads(text) == value and codec.decode(text) == value
    assert type(codec.decode(text)) is type(value)


def test_tuples_are_lists_and_big_integers_stay_exact() -> None:
    assert codec.decode(codec.encode((1, (2,)))) == [1, [2]]
    assert codec.encode(2**64 + 1) == str(2**64 + 1)  # beyond orjson's 64 bits: still digits


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (None, ValueError, "use delete"),
        (float("nan"), ValueError, "NaN and infinity"),
        ({"a": [1, float("-inf")]}, ValueError, r"at value\['a'\]\[1\]"),
        (b"x", TypeError, "bytes at value is not a JSON type"),
        ({1: "a"}, TypeError, "dict keys must be str"),
    ],
)
def test_values_that_are_not_json_are_named_with_their_path(
    value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        codec.encode(value)


def test_a_nested_none_is_json_null() -> None:
    assert codec.encode({"a": None}) == '{"a":null}'


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        (1, TypeError, "must be str"),
        ("", ValueError, "empty"),
        ("x" * (codec.MAX_KEY_LENGTH + 1), ValueError, f"at most {codec.MAX_KEY_LENGTH}"),
        ("a\x00b", ValueError, "NUL"),
        ("\ud800", ValueError, "lone surrogate"),
    ],
    ids=["int", "empty", "long", "nul", "surrogate"],
)
def test_keys_every_database_cannot_store_are_refused(
    key: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        codec.check_key(key)


def test_keys_up_to_the_limit_with_any_other_character_are_kept() -> None:
    for key in ("x" * codec.MAX_KEY_LENGTH, "dir/sub/../key", " spaced ", "Ω"):
        assert codec.check_key(key) == key


def test_max_value_bytes_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTSTORE_MAX_VALUE_BYTES", raising=False)
    assert codec.max_value_bytes() == codec.DEFAULT_MAX_VALUE_BYTES
    monkeypatch.setenv("EVENTSTORE_MAX_VALUE_BYTES", "0")
    assert codec.max_value_bytes() == 0
    monkeypatch.setenv("EVENTSTORE_MAX_VALUE_BYTES", "64k")
    with pytest.raises(ValueError, match="whole number of bytes"):
        codec.max_value_bytes()
