"""Asset (eventstore/assets.py): a small frozen value, compared exactly (no database needed)."""

from __future__ import annotations

import dataclasses

import pytest

from eventstore import Asset


def test_asset_uri_defaults_to_name_and_equality_is_exact() -> None:
    assert Asset("orders").uri == "orders"
    assert Asset("orders") == Asset("orders", "orders")
    assert Asset("orders") != Asset("Orders")
    assert Asset("orders") != Asset("orders ")
    assert len({Asset("a"), Asset("a", "a"), Asset("a", "s3://a")}) == 2


def test_asset_is_frozen() -> None:
    asset = Asset("orders")
    with pytest.raises(dataclasses.FrozenInstanceError):
        asset.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "uri", "error"),
    [
        ("", None, ValueError),
        ("a", "", ValueError),
        (None, None, TypeError),
        (3, None, TypeError),
        ("a", b"s3://", TypeError),
        ("a\x00", None, ValueError),
        ("\udc80", None, ValueError),
    ],
)
def test_asset_refuses_bad_names_and_uris(name: object, uri: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Asset(name, uri)  # type: ignore[arg-type]
