"""Inside a task: `context["asset_state_store"]`, with Airflow's rules for concrete assets and its errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from eventstore.accessor import AssetState
from eventstore.assets import Asset
from eventstore.codec import JSON
from eventstore.protocol import StateStore
from eventstore.writers import Writer


def concrete_assets(*groups: Iterable[object]) -> list[Asset]:
    """The `Asset`s among inlets and outlets, each once, in order; other objects are ignored."""
    seen: dict[Asset, None] = {}
    for group in groups:
        for item in group:
            if isinstance(item, Asset):
                seen.setdefault(item, None)
    return list(seen)


def task_context(
    store: StateStore,
    inlets: Iterable[object] = (),
    outlets: Iterable[object] = (),
    writer: Writer | None = None,
) -> dict[str, Any]:
    """A task context whose "asset_state_store" holds the concrete inlets and outlets. No I/O."""
    assets = concrete_assets(inlets, outlets)
    return {"asset_state_store": AssetStateStoreAccessors(store, assets, writer or Writer.api())}


class AssetStateStoreAccessors:
    """`context["asset_state_store"]`: one `AssetState` per concrete inlet/outlet.

    Subscript it with an asset (`ctx["asset_state_store"][orders]`), or, when the task has exactly one
    concrete asset, call get/set/delete/clear/update/set_many (and async twins) on it directly.
    """

    def __init__(self, store: StateStore, assets: Iterable[Asset], writer: Writer) -> None:
        self._by_asset = {asset: AssetState(store, asset, writer) for asset in assets}

    def __getitem__(self, asset: object) -> AssetState:
        if not isinstance(asset, Asset):
            raise TypeError(f"Expected Asset; got {type(asset).__name__}")
        try:
            return self._by_asset[asset]
        except KeyError:
            raise KeyError(f"{asset!r} is not in this task's inlets or outlets") from None

    def __len__(self) -> int:
        return len(self._by_asset)

    def __iter__(self) -> Iterator[Asset]:
        return iter(self._by_asset)

    def __contains__(self, asset: object) -> bool:
        return asset in self._by_asset

    def __repr__(self) -> str:
        return f"<AssetStateStoreAccessors {[a.name for a in self._by_asset]}>"

    def _only(self) -> AssetState:
        if len(self._by_asset) != 1:
            # Airflow's exact wording: other tools match on it.
            raise ValueError(
                f"Task has {len(self._by_asset)} concrete inlets and outlets — "
                "use context['asset_state_store'][MY_ASSET] to specify which"
            )
        return next(iter(self._by_asset.values()))

    # The single-asset shorthand: each method is the AssetState method of the only concrete asset.

    def get(self, key: str, default: JSON = None) -> JSON:
        """`AssetState.get` of the only concrete asset (ValueError unless there is exactly one)."""
        return self._only().get(key, default)

    def set(self, key: str, value: JSON) -> None:
        """`AssetState.set` of the only concrete asset (ValueError unless there is exactly one)."""
        self._only().set(key, value)

    def set_many(self, values: Mapping[str, JSON]) -> None:
        """`AssetState.set_many` of the only concrete asset (ValueError unless there is exactly one)."""
        self._only().set_many(values)

    def delete(self, key: str) -> None:
        """`AssetState.delete` of the only concrete asset (ValueError unless there is exactly one)."""
        self._only().delete(key)

    def clear(self) -> None:
        """`AssetState.clear` of the only concrete asset (ValueError unless there is exactly one)."""
        self._only().clear()

    def update(self, key: str, fn: Callable[[JSON], JSON], default: JSON = None) -> JSON:
        """`AssetState.update` of the only concrete asset (ValueError unless there is exactly one)."""
        return self._only().update(key, fn, default)

    async def aget(self, key: str, default: JSON = None) -> JSON:
        """`AssetState.aget` of the only concrete asset."""
        return await self._only().aget(key, default)

    async def aset(self, key: str, value: JSON) -> None:
        """`AssetState.aset` of the only concrete asset."""
        await self._only().aset(key, value)

    async def aset_many(self, values: Mapping[str, JSON]) -> None:
        """`AssetState.aset_many` of the only concrete asset."""
        await self._only().aset_many(values)

    async def adelete(self, key: str) -> None:
        """`AssetState.adelete` of the only concrete asset."""
        await self._only().adelete(key)

    async def aclear(self) -> None:
        """`AssetState.aclear` of the only concrete asset."""
        await self._only().aclear()

    async def aupdate(self, key: str, fn: Callable[[JSON], JSON], default: JSON = None) -> JSON:
        """`AssetState.aupdate` of the only concrete asset."""
        return await self._only().aupdate(key, fn, default)
