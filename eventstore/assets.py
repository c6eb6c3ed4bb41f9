"""What an asset is: its identity (name and uri) and what the store knows about it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def _check_identifier(field_name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Asset {field_name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"Asset {field_name} must not be empty")
    if "\x00" in value:
        raise ValueError(f"Asset {field_name} must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"Asset {field_name} must not contain a lone surrogate") from None


@dataclass(frozen=True, slots=True)
class Asset:
    """A data asset that owns state. Two assets are the same when name and uri are equal, exactly.

    `uri` defaults to `name`, as in Airflow.
    """

    name: str
    uri: str = field(default=None)  # type: ignore[assignment]  # filled in by __post_init__
    identity_hash: str = field(init=False, repr=False, compare=False)
    """The hex SHA-256 of name and uri: how the database finds this asset, exactly on every backend."""

    def __post_init__(self) -> None:
        _check_identifier("name", self.name)
        if self.uri is None:
            object.__setattr__(self, "uri", self.name)  # type: ignore[unreachable]
        _check_identifier("uri", self.uri)
        object.__setattr__(self, "identity_hash", identity_hash(self.name, self.uri))


def identity_hash(name: str, uri: str) -> str:
    # NUL cannot occur in a name or uri, so it separates them unambiguously.
    return hashlib.sha256(f"{name}\x00{uri}".encode()).hexdigest()


def text_hash(text: str) -> str:
    """The hex SHA-256 of one name or uri, for the uniqueness of active names and uris."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """An asset as the store sees it: `version` is the last version of its event stream."""

    id: int
    name: str
    uri: str
    active: bool
    version: int

    @property
    def asset(self) -> Asset:
        """The `Asset` this record describes."""
        return Asset(self.name, self.uri)
