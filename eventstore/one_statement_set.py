"""`set` of one key as one statement in autocommit: the commonest write in one round trip (PostgreSQL).

The log's transaction (eventstore.log) takes seven round trips on a server database: BEGIN, claim,
read the old value, upsert the view, advance the head, insert the event, COMMIT. The plain upsert that
Airflow users compare against takes three, and on PostgreSQL the round trips decide the latency. Where
the database can run data-modifying CTEs (`Backend.one_statement_set`), `set` first tries this one
statement, which writes exactly the rows the log's transaction would:

    WITH stream AS (SELECT id, version FROM es_assets WHERE identity_hash = :asset AND <active>
                    AND (version + 1) % :snapshot_interval <> 0),
         claim AS (UPDATE es_assets SET version = version + 1, last_recorded_at = <no earlier>
                   FROM stream WHERE id = stream.id AND version = stream.version RETURNING ...),
         view AS (INSERT INTO es_state SELECT ... FROM claim ON CONFLICT DO UPDATE ...),
         next_position AS (SELECT nextval('es_event_positions') FROM claim)
    INSERT INTO es_events SELECT next_position.position, claim.*, (SELECT old value FROM es_state) ...
    FROM claim, next_position RETURNING position

Why it is exact, also under concurrency:
- All parts of the statement read one snapshot, taken before it waited for any lock. `claim` only
  updates the asset's row if its version is still the one that snapshot saw (PostgreSQL re-checks the
  condition on the newest row version after waiting for a concurrent writer). Every change to an
  asset's view rows bumps that version in the same transaction, so when the check passes, the old
  value read from the snapshot is the current one and `previous` is right.
- The position is taken as in the log's transaction (`eventstore.ordering`), after the asset's row is
  locked: `next_position` runs only on the row `claim` returns.
- It records nothing (no row returned) when the asset is unknown or inactive, when another writer
  changed the asset since the snapshot, or when the new version is due for a snapshot
  (projections.snapshots). The caller then runs the log's transaction, which handles all of them.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import PoolProxiedConnection

from eventstore import schema
from eventstore.dialects import Backend, JsonText, StateKey
from eventstore.events import Op
from eventstore.log import claim_versions, utcnow
from eventstore.ordering import Ordering
from eventstore.prepared import Prepared
from eventstore.writers import WRITER_FIELDS, Writer, writer_columns
from projections import snapshots

_assets = schema.assets
_active = schema.asset_active
_view = schema.state
_events = schema.events

_key = sa.bindparam("key", type_=StateKey())
_value = sa.bindparam("value", type_=JsonText)
_writer = [
    sa.bindparam(f"writer_{field}", type_=_events.c[f"writer_{field}"].type) for field in WRITER_FIELDS
]


def _statement(backend: Backend, ordering: Ordering) -> sa.Insert:
    stream = (
        sa.select(_assets.c.id, _assets.c.version)
        .where(
            _assets.c.identity_hash == sa.bindparam("asset_identity"),
            sa.exists().where(_active.c.asset_id == _assets.c.id),
            (_assets.c.version + 1) % sa.bindparam("snapshot_interval") != 0,
        )
        .cte("stream")
    )
    claim = (
        claim_versions.where(_assets.c.id == stream.c.id, _assets.c.version == stream.c.version)
        .returning(_assets.c.id, _assets.c.version, _assets.c.last_recorded_at)
        .cte("claim")
    )
    view_row = sa.select(claim.c.id, _key, _value, claim.c.version, claim.c.last_recorded_at, *_writer)
    view = (
        backend.upsert(_view, keys=["asset_id", "key"])
        .from_select(  # type: ignore[attr-defined]
            [
                "asset_id",
                "key",
                "value",
                "version",
                "updated_at",
                *(f"updated_by_{f}" for f in WRITER_FIELDS),
            ],
            view_row,
        )
        .cte("view")
    )
    next_position = ordering.next_position(claim)
    previous = (
        sa.select(_view.c.value).where(_view.c.asset_id == claim.c.id, _view.c.key == _key).scalar_subquery()
    )
    event_row = sa.select(
        next_position.c.position,
        claim.c.id,
        claim.c.version,
        sa.literal(Op.SET.value),
        _key,
        _value,
        previous,
        claim.c.last_recorded_at,
        *_writer,
    ).select_from(claim, next_position)
    columns = ["position", "asset_id", "version", "op", "key", "value", "previous", "recorded_at"]
    return (
        _events.insert()
        .from_select([*columns, *(f"writer_{field}" for field in WRITER_FIELDS)], event_row)
        .add_cte(view)
        .returning(_events.c.position)
    )


class OneStatementSet:
    """Runs the statement on a connection in autocommit: the statement is its own transaction."""

    def __init__(self, backend: Backend, ordering: Ordering, dialect: Dialect) -> None:
        self._statement = Prepared(_statement(backend, ordering), dialect)

    def try_set(
        self, conn: PoolProxiedConnection, identity_hash: str, key: str, text: str, writer: Writer
    ) -> bool:
        """True if the set was recorded; False if the log's transaction must do it (see the module doc)."""
        params = {
            "asset_identity": identity_hash,
            "snapshot_interval": snapshots.SNAPSHOT_INTERVAL,
            "n": 1,
            "now": utcnow(),
            "key": key,
            "value": text,
            **writer_columns(writer, "writer_"),
        }
        return self._statement.first(conn, params) is not None
