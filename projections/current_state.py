"""The current key/value view: one row per (asset, key) with the latest value, what `get` reads.

It is an inline projection: `apply` runs in the transaction that appends the events, so the view and
the log commit together. Its rows are exactly the fold of the log (eventstore.events.fold), which
`projections.rebuild` can recompute at any time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from eventstore import schema
from eventstore.dialects import Backend
from eventstore.events import NewEvent, Op
from eventstore.prepared import Connectable, Prepared
from eventstore.single_set import KEY, VALUE, WRITER, SetPart
from eventstore.writers import WRITER_FIELDS, writer_columns

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


# Built once, prepared once per store (eventstore.prepared).
_read_all = sa.select(_view.c.key, _view.c.value).where(_view.c.asset_id == sa.bindparam("asset_id"))
_read_key = _read_all.where(_view.c.key == sa.bindparam("key"))
_delete_key = _view.delete().where(
    _view.c.asset_id == sa.bindparam("asset_id"), _view.c.key == sa.bindparam("key")
)
_delete_all = _view.delete().where(_view.c.asset_id == sa.bindparam("asset_id"))


class CurrentStateView:
    """Reads and maintains es_state, with prepared statements only, so the write path can run them on
    a DBAPI connection without a SQLAlchemy `Connection` around it."""

    def __init__(self, backend: Backend, dialect: Dialect) -> None:
        self._lookup = Prepared(_lookup, dialect)
        self._read_all = Prepared(_read_all, dialect)
        self._read_key = Prepared(_read_key, dialect)
        self._upsert_statement = backend.upsert(_view, keys=["asset_id", "key"])
        self._upsert_rows = Prepared(self._upsert_statement, dialect)
        self._delete_key = Prepared(_delete_key, dialect)
        self._delete_all = Prepared(_delete_all, dialect)

    # --- reading ---------------------------------------------------------------------------------

    @staticmethod
    def current_value(asset_id: sa.ColumnElement[int]) -> sa.ColumnElement[Any]:
        """The JSON text of the key bound as `key` for the asset `asset_id` (NULL if absent): a column
        the log's claim can read in its own statement (eventstore.log.CurrentValue)."""
        return (
            sa.select(_view.c.value)
            .where(_view.c.asset_id == asset_id, _view.c.key == sa.bindparam("key"))
            .scalar_subquery()
        )

    def lookup(self, conn: Connectable, identity_hash: str, key: str) -> tuple[bool, str | None]:
        """(is the asset active, the key's JSON text or None) in one query."""
        row = self._lookup.first(conn, {"identity_hash": identity_hash, "key": key})
        return (False, None) if row is None else (True, row[1])

    def read(self, conn: Connectable, asset_id: int, keys: Iterable[str] | None = None) -> dict[str, str]:
        """The asset's current JSON texts by key: all of them, or only `keys` (one query per key)."""
        if keys is None:
            return dict(self._read_all.all(conn, {"asset_id": asset_id}))
        rows = (self._read_key.first(conn, {"asset_id": asset_id, "key": key}) for key in keys)
        return dict(row for row in rows if row is not None)

    # --- maintaining -----------------------------------------------------------------------------

    def apply(self, conn: Connectable, events: Sequence[NewEvent]) -> None:
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
                self._delete_all.run(conn, {"asset_id": event.asset_id})
        self._upsert(conn, batch)

    def single_set_part(self) -> SetPart:
        """In a single-statement set: upsert the key's row from the claimed stream."""
        return SetPart(writes=self._upsert_claimed)

    def _upsert_claimed(self, claim: sa.CTE) -> sa.CTE:
        row = sa.select(claim.c.id, KEY, VALUE, claim.c.version, claim.c.last_recorded_at, *WRITER)
        columns = [
            "asset_id",
            "key",
            "value",
            "version",
            "updated_at",
            *(f"updated_by_{f}" for f in WRITER_FIELDS),
        ]
        return self._upsert_statement.from_select(columns, row).cte("view")  # type: ignore[attr-defined,no-any-return]

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

    def _upsert(self, conn: Connectable, batch: dict[tuple[int, str], dict[str, Any]]) -> None:
        if batch:
            self._upsert_rows.run_many(conn, list(batch.values()))
            batch.clear()
