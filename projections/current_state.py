"""The current key/value view: one row per (asset, key) with the latest value, what `get` reads.

It is an inline projection: `apply` runs in the transaction that appends the events, so the view and
the log commit together. Its rows are exactly the fold of the log (eventstore.events.fold), which
`projections.rebuild` can recompute at any time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema
from eventstore.dialects import Backend
from eventstore.events import NewEvent, Op
from eventstore.log import writer_columns

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


class CurrentStateView:
    """Reads and maintains es_state."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # --- reading ---------------------------------------------------------------------------------

    @staticmethod
    def lookup(conn: Connection, identity_hash: str, key: str) -> tuple[bool, str | None]:
        """(is the asset active, the key's JSON text or None) in one query."""
        row = conn.execute(_lookup, {"identity_hash": identity_hash, "key": key}).first()
        return (False, None) if row is None else (True, row.value)

    @staticmethod
    def read(conn: Connection, asset_id: int, keys: Iterable[str] | None = None) -> dict[str, str]:
        """The asset's current JSON texts by key: all of them, or only `keys`."""
        query = sa.select(_view.c.key, _view.c.value).where(_view.c.asset_id == asset_id)
        if keys is not None:
            query = query.where(_view.c.key.in_(list(keys)))
        return {row.key: row.value for row in conn.execute(query)}

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
                conn.execute(
                    _view.delete().where(_view.c.asset_id == event.asset_id, _view.c.key == event.key)
                )
            elif event.op is Op.CLEAR:
                self._upsert(conn, batch)
                conn.execute(_view.delete().where(_view.c.asset_id == event.asset_id))
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
            conn.execute(self.backend.upsert(_view, list(batch.values()), keys=["asset_id", "key"]))
            batch.clear()
