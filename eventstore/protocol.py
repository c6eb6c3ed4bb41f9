"""`StateStore`: the small interface an accessor needs from a store, whichever store it is.

`AssetState` (the accessor), the task context and `run_task` are written once, against this interface.
The local `eventstore.store.Store` provides it on a database, and the HTTP client (`eventstore.client`)
over the REST API, so both honour the same rules with the same code.

Values travel as the JSON text the codec produced (`eventstore.codec`): the accessor validates and
encodes them before they reach the store, and decodes what it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from eventstore.assets import Asset
from eventstore.events import PendingEvent
from eventstore.writers import Writer

Decide = Callable[[Mapping[str, str]], list[PendingEvent]]
"""Turns an asset's current JSON texts by key into the events of one change (none: nothing changes)."""


@dataclass(frozen=True, slots=True)
class VersionedState:
    """JSON texts by key of an asset, read together with its stream's version (the REST ETag)."""

    values: dict[str, str]
    version: int


@runtime_checkable
class StateStore(Protocol):
    """What `AssetState`, the task context and `run_task` use. Every method raises AssetNotActiveError
    for an asset that is unknown or not active, before anything else."""

    @property
    def max_value_bytes(self) -> int:
        """Values over this many UTF-8 bytes (0: no limit) are written with a warning."""
        ...

    def activate(self, asset: Asset, writer: Writer | None = None) -> None:
        """Register the asset if new and make it active (idempotent)."""
        ...

    def require_active(self, asset: Asset) -> None:
        """Return if the asset is active; raise AssetNotActiveError otherwise."""
        ...

    def read_value(self, asset: Asset, key: str) -> str | None:
        """The key's JSON text, or None if the asset has no such key."""
        ...

    def read_state(self, asset: Asset, keys: Sequence[str] | None = None) -> VersionedState:
        """The JSON texts of `keys` (all keys if None) and the asset's version, read together."""
        ...

    def set_value(self, asset: Asset, writer: Writer, key: str, text: str) -> None:
        """One `set` event: the commonest write, on the store's quickest path."""
        ...

    def change(self, asset: Asset, writer: Writer, keys: Sequence[str] | None, decide: Decide) -> None:
        """Atomically: read the current texts of `keys` (all keys if None), let `decide` turn them into
        events, append them. No concurrent change comes between the read and the append (a local store
        holds the asset's lock while `decide` runs; a remote one retries a conditional write)."""
        ...

    def write(
        self,
        asset: Asset,
        writer: Writer,
        *,
        sets: Mapping[str, str] | None = None,
        deletes: Sequence[str] = (),
        clear: bool = False,
        expected_version: int | None = None,
    ) -> int:
        """A decided change in one transaction: clear (if asked), then `sets`, then `deletes` of keys
        that exist. With `expected_version`, only if the asset's version is still that, else
        VersionConflictError and nothing written. Returns the asset's version afterwards."""
        ...
