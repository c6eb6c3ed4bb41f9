"""The current key/value view: one row per (asset, key) with the latest value, what `get` reads.

It is an inline projection: `apply` runs in the transaction that appends the events, so the view and
the log commit together. Its rows are exactly the fold of the log (eventstore.events.fold), which
`projections.rebuild` can recompute at any time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.pool import PoolProxiedConnection

from eventstore import schema
from eventstore.dialects import Backend
from eventstore.events import NewEvent, Op
from eventstore.log import writer_columns
from eventstore.prepared import Prepared

_view = schema.state
_assets = schema.assets
_active = schema.asset_active

# get: one round trip answers both "is the asset active?" and "what is the value?".
_lookup = (
    sa.select(_assets.c.id, _view.c.value)
    .select_from(
        _assets.join(_active, _active.c.asset_id == _assets.c.id).outerjoin(
            _view, sa.and_(_view.c.asset_id == _assets.c.id, _view.c.key == sa.bindparam("key"))
        )
    )
    .where(_assets.c.identity_hash == sa.bindparam("identity_hash"))
)


# Built once: SQLAlchemy then compiles each of them once and reuses the compiled form.
_read_all = sa.select(_view.c.key, _view.c.value).where(_view.c.asset_id == sa.bindparam("asset_id"))
_read_key = _read_all.where(_view.c.key == sa.bindparam("key"))
_read_keys = _read_all.where(_view.c.key.in_(sa.bindparam("keys", expanding=True)))
_delete_key = _view.delete().where(
    _view.c.asset_id == sa.bindparam("asset_id"), _view.c.key == sa.bindparam("key")
)
_delete_all = _view.delete().where(_view.c.asset_id == sa.bindparam("asset_id"))


class CurrentStateView:
    """Reads and maintains es_state. The statements of `get` and of one-key writes are prepared
    (eventstore.prepared); reads of many keys and clears go through Core."""

    def __init__(self, backend: Backend, dialect: Dialect) -> None:
        self._lookup = Prepared(_lookup, dialect)
        self._read_key = Prepared(_read_key, dialect)
        self._upsert_rows = Prepared(backend.upsert(_view, keys=["asset_id", "key"]), dialect)
        self._delete_key = Prepared(_delete_key, dialect)

    # --- reading ---------------------------------------------------------------------------------

    def lookup(
        self, conn: Connection | PoolProxiedConnection, identity_hash: str, key: str
    ) -> tuple[bool, str | None]:
        """(is the asset active, the key's JSON text or None) in one query."""
        row = self._lookup.first(conn, {"identity_hash": identity_hash, "key": key})
        return (False, None) if row is None else (True, row[1])

    def read(self, conn: Connection, asset_id: int, keys: Sequence[str] | None = None) -> dict[str, str]:
        """The asset's current JSON texts by key: all of them, or only `keys`."""
        if keys is not None and len(keys) == 1:
            return dict(self._read_key.all(conn, {"asset_id": asset_id, "key": keys[0]}))
        return self.read_all(conn, asset_id, keys)

    @staticmethod
    def read_all(conn: Connection, asset_id: int, keys: Iterable[str] | None = None) -> dict[str, str]:
        """The asset's current JSON texts by key, through Core: all of them, or only `keys`."""
        if keys is None:
            rows = conn.execute(_read_all, {"asset_id": asset_id})
        else:
            rows = conn.execute(_read_keys, {"asset_id": asset_id, "keys": list(keys)})
        return {row.key: row.value for row in rows}

    # --- maintaining -----------------------------------------------------------------------------

    def apply(self, conn: Connection, events: Sequence[NewEvent]) -> None:
        """Apply events in order. Consecutive sets of distinct keys go out as one upsert."""
        batch: dict[tuple[int, str], dict[str, Any]] = {}
        for event in events:
            if event.op is Op.SET:
                assert event.key is not None
                if (event.asset_id, event.key) in batch:
                    self._upsert(conn, batch)
                batch[(event.asset_id, event.key)] = self.row(event)
            elif event.op is Op.DELETE:
                self._upsert(conn, batch)
                self._delete_key.run(conn, {"asset_id": event.asset_id, "key": event.key})
            elif event.op is Op.CLEAR:
                self._upsert(conn, batch)
                conn.execute(_delete_all, {"asset_id": event.asset_id})
        self._upsert(conn, batch)

    @staticmethod
    def row(event: NewEvent) -> dict[str, Any]:
        """The view row a `set` event leaves behind."""
        return {
            "asset_id": event.asset_id,
            "key": event.key,
            "value": event.value,
            "version": event.version,
            "updated_at": event.recorded_at,
            **writer_columns(event.writer, "updated_by_"),
        }

    def _upsert(self, conn: Connection, batch: dict[tuple[int, str], dict[str, Any]]) -> None:
        if batch:
            self._upsert_rows.run_many(conn, list(batch.values()))
            batch.clear()
