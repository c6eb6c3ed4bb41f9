"""`AssetState`: what a task holds to read and write one asset's state (get/set/delete/clear/...).

Written once against `eventstore.protocol.StateStore`, so a local store and the HTTP client behave alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TypeVar

from eventstore import codec, events
from eventstore.assets import Asset
from eventstore.codec import JSON
from eventstore.protocol import StateStore
from eventstore.writers import Writer

T = TypeVar("T")


class AssetState:
    """The state of one asset, written as `writer`. Cheap to create: it does no I/O until called.

    Every call first checks that the asset is active (AssetNotActiveError otherwise), then the key and
    value rules (TypeError/ValueError), then does its work in one transaction.
    """

    __slots__ = ("_asset", "_store", "_writer")

    def __init__(self, store: StateStore, asset: Asset, writer: Writer) -> None:
        if not isinstance(asset, Asset):
            raise TypeError(f"Expected an Asset, got {type(asset).__name__}")
        self._store = store
        self._asset = asset
        self._writer = writer

    @property
    def asset(self) -> Asset:
        """The asset whose state this is."""
        return self._asset

    @property
    def writer(self) -> Writer:
        """Who the events of this accessor are recorded as."""
        return self._writer

    def __repr__(self) -> str:
        return f"<AssetState {self._asset.name!r} uri={self._asset.uri!r}>"

    # --- sync ------------------------------------------------------------------------------------

    def get(self, key: str, default: JSON = None) -> JSON:
        """The key's value, or `default` if the asset has no such key."""
        self._checked(lambda: codec.check_key(key))
        text = self._store.read_value(self._asset, key)
        return default if text is None else codec.decode(text)

    def set(self, key: str, value: JSON) -> None:
        """Write `value` under `key` (one `set` event)."""
        text = self._checked(lambda: (codec.check_key(key), codec.encode(value))[1])
        codec.warn_if_large(key, text, self._store.max_value_bytes)
        self._store.set_value(self._asset, self._writer, key, text)

    def set_many(self, values: Mapping[str, JSON]) -> None:
        """Write several keys in one transaction, one `set` event each: all or none. `{}` does nothing."""
        texts = self._checked(lambda: {codec.check_key(k): codec.encode(v) for k, v in values.items()})
        if not texts:
            self._store.require_active(self._asset)
            return
        for key, text in texts.items():
            codec.warn_if_large(key, text, self._store.max_value_bytes)
        self._store.change(self._asset, self._writer, list(texts), lambda cur: events.set_events(texts, cur))

    def delete(self, key: str) -> None:
        """Remove `key`. Nothing happens (and no event is recorded) if it does not exist."""
        self._checked(lambda: codec.check_key(key))
        self._store.change(self._asset, self._writer, [key], lambda cur: events.delete_events(key, cur))

    def clear(self) -> None:
        """Remove every key of the asset. Nothing happens if it has none."""
        self._store.change(self._asset, self._writer, None, events.clear_events)

    def update(self, key: str, fn: Callable[[JSON], JSON], default: JSON = None) -> JSON:
        """Atomically replace the value with `fn(old value or default)` and return the new value.

        No concurrent change comes between the read and the write, so concurrent updates never lose one
        another; keep `fn` quick and free of side effects (it may run again if the store retries).
        """
        self._checked(lambda: codec.check_key(key))
        result: list[JSON] = []

        def decide(current: Mapping[str, str]) -> list[events.PendingEvent]:
            old = codec.decode(current[key]) if key in current else default
            text = codec.encode(fn(old))
            codec.warn_if_large(key, text, self._store.max_value_bytes)
            result[:] = [codec.decode(text)]
            return events.set_events({key: text}, current)

        self._store.change(self._asset, self._writer, [key], decide)
        return result[0]

    # --- async: the same calls on a worker thread, so the event loop never waits on the store ------

    async def aget(self, key: str, default: JSON = None) -> JSON:
        """`get` on a worker thread."""
        return await asyncio.to_thread(self.get, key, default)

    async def aset(self, key: str, value: JSON) -> None:
        """`set` on a worker thread."""
        await asyncio.to_thread(self.set, key, value)

    async def aset_many(self, values: Mapping[str, JSON]) -> None:
        """`set_many` on a worker thread."""
        await asyncio.to_thread(self.set_many, values)

    async def adelete(self, key: str) -> None:
        """`delete` on a worker thread."""
        await asyncio.to_thread(self.delete, key)

    async def aclear(self) -> None:
        """`clear` on a worker thread."""
        await asyncio.to_thread(self.clear)

    async def aupdate(self, key: str, fn: Callable[[JSON], JSON], default: JSON = None) -> JSON:
        """`update` on a worker thread."""
        return await asyncio.to_thread(self.update, key, fn, default)

    # ---------------------------------------------------------------------------------------------

    def _checked(self, check: Callable[[], T]) -> T:
        """Run a key/value check; if it fails, an inactive asset is still the error the caller sees."""
        try:
            return check()
        except (TypeError, ValueError):
            self._store.require_active(self._asset)
            raise
