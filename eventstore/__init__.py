"""eventstore: an event-sourced, per-asset key/value state store for data pipelines.

from eventstore import open_store, Asset, Writer, task

with open_store() as store:                  # $EVENTSTORE_URL, else ./eventstore.db
    orders = Asset("orders", uri="s3://data/orders/")
    store.activate(orders)
    state = store.asset(orders)
    state.set("watermark", "2024-06-01T00:00:00Z")
    store.history(orders, "watermark")       # every change: old value, new value, writer, time
"""

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
