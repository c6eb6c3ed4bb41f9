"""eventstore: an event-sourced, per-asset key/value state store for data pipelines.

from eventstore import open_store, Asset, Writer, task

with open_store() as store:                  # $EVENTSTORE_URL, else ./eventstore.db
    orders = Asset("orders", uri="s3://data/orders/")
    store.activate(orders)
    state = store.asset(orders)
    state.set("watermark", "2024-06-01T00:00:00Z")
    store.history(orders, "watermark")       # every change: old value, new value, writer, time

The names below are the public surface. Each is imported from its module on first use (PEP 562), so
that importing one module of eventstore (the schema, say) does not import the whole store: the core,
the read side and the composition import each other in one direction only (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventstore.accessor import AssetState
    from eventstore.assets import Asset, AssetInfo
    from eventstore.codec import JSON
    from eventstore.compaction import CompactedAsset, CompactionRecord, CompactionReport
    from eventstore.context import AssetStateStoreAccessors
    from eventstore.errors import (
        AssetConflictError,
        AssetNotActiveError,
        AssetNotFoundError,
        CompactedError,
        OutcomeUnknownError,
        SchemaVersionError,
        StateStoreError,
        StoreUnavailableError,
        VersionConflictError,
    )
    from eventstore.events import Change, Event, Op
    from eventstore.protocol import StateStore
    from eventstore.store import Store, open_store
    from eventstore.tasks import Task, task
    from eventstore.writers import Writer, WriterKind
    from projections.rebuild import Drift, RebuildReport

_PUBLIC = {
    "AssetState": "eventstore.accessor",
    "Asset": "eventstore.assets",
    "AssetInfo": "eventstore.assets",
    "JSON": "eventstore.codec",
    "CompactedAsset": "eventstore.compaction",
    "CompactionRecord": "eventstore.compaction",
    "CompactionReport": "eventstore.compaction",
    "AssetStateStoreAccessors": "eventstore.context",
    "AssetConflictError": "eventstore.errors",
    "AssetNotActiveError": "eventstore.errors",
    "AssetNotFoundError": "eventstore.errors",
    "CompactedError": "eventstore.errors",
    "OutcomeUnknownError": "eventstore.errors",
    "SchemaVersionError": "eventstore.errors",
    "StateStoreError": "eventstore.errors",
    "StoreUnavailableError": "eventstore.errors",
    "VersionConflictError": "eventstore.errors",
    "Change": "eventstore.events",
    "Event": "eventstore.events",
    "Op": "eventstore.events",
    "StateStore": "eventstore.protocol",
    "Store": "eventstore.store",
    "open_store": "eventstore.store",
    "Task": "eventstore.tasks",
    "task": "eventstore.tasks",
    "Writer": "eventstore.writers",
    "WriterKind": "eventstore.writers",
    "Drift": "projections.rebuild",
    "RebuildReport": "projections.rebuild",
}

__all__ = [
    "JSON",
    "Asset",
    "AssetConflictError",
    "AssetInfo",
    "AssetNotActiveError",
    "AssetNotFoundError",
    "AssetState",
    "AssetStateStoreAccessors",
    "Change",
    "CompactedAsset",
    "CompactedError",
    "CompactionRecord",
    "CompactionReport",
    "Drift",
    "Event",
    "Op",
    "OutcomeUnknownError",
    "RebuildReport",
    "SchemaVersionError",
    "StateStore",
    "StateStoreError",
    "Store",
    "StoreUnavailableError",
    "Task",
    "VersionConflictError",
    "Writer",
    "WriterKind",
    "open_store",
    "task",
]


def __getattr__(name: str) -> Any:
    try:
        module = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'eventstore' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
