"""Every exception eventstore raises on purpose. Each message says what to do next."""

from __future__ import annotations


class StateStoreError(Exception):
    """Base class of every eventstore error."""


class AssetNotFoundError(StateStoreError, LookupError):
    """The asset has never been registered in this store."""


class AssetNotActiveError(AssetNotFoundError):
    """The asset is unknown or not active, so its state cannot be read or written through an accessor."""


class AssetConflictError(StateStoreError):
    """Another active asset already uses this asset's name or uri."""


class SchemaVersionError(StateStoreError):
    """The database schema is missing, older or newer than this version of eventstore expects."""


class CompactedError(StateStoreError, LookupError):
    """The requested history or point in time was removed by compaction."""


class StoreUnavailableError(StateStoreError, ConnectionError):
    """The database cannot be used (unreachable, or the connection broke before COMMIT was sent):
    nothing of the failed call was applied, and it is safe to retry."""


class OutcomeUnknownError(StoreUnavailableError):
    """The connection broke while a write was committing: it may or may not have been applied.

    Look at `history()` (or the feed) before repeating the write; repeating it blindly may apply it twice.
    """


class VersionConflictError(StateStoreError):
    """A conditional write found the asset at another version than expected (REST If-Match: 412):
    another write came first, and nothing was written. Read again and decide again."""
