"""eventstore's tables as a mirror of Airflow's assets: `es_assets.id` is Airflow's `asset.id`, an
`es_asset_active` row exists while Airflow's `asset_active` row does, and the log's fold per asset is
Airflow's `asset_state_store` (which is the current-state view in Airflow mode: `es_state` stays empty).

The triggers keep the mirror from `airflow install` on; this module gives it its starting point
(`backfill`) and its identity hashes on SQLite (`refresh_identities`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema
from eventstore.assets import identity_hash, text_hash
from eventstore.errors import StateStoreError
from eventstore.ordering import ordering_for
from eventstore.writers import Writer, WriterKind, writer_columns

# Airflow's tables, as far as eventstore reads them (airflow/models/asset.py, asset_state_store.py).
asset = sa.table("asset", sa.column("id", sa.Integer), sa.column("name"), sa.column("uri"))
asset_active = sa.table("asset_active", sa.column("name"), sa.column("uri"))
asset_state_store = sa.table(
    "asset_state_store",
    sa.column("asset_id", sa.Integer),
    sa.column("key"),
    sa.column("value"),
    sa.column("last_updated_by_kind"),
    sa.column("last_updated_by_dag_id"),
    sa.column("last_updated_by_run_id"),
    sa.column("last_updated_by_task_id"),
    sa.column("last_updated_by_map_index", sa.Integer),
)

PLACEHOLDER = "airflow:"
"""The prefix of an identity or name/uri hash that a SQLite trigger could not compute (no SHA-256 in SQL)."""


def row_writer(
    kind: str | None, dag_id: str | None, run_id: str | None, task_id: str | None, map_index: int | None
) -> Writer:
    """The writer an asset_state_store row carries, as the triggers read it: a task with dag, run and
    task; a watcher or api; anything else (no writer, or an incomplete one) is `api`."""
    if kind == "task" and dag_id and run_id and task_id:
        return Writer(WriterKind.TASK, dag_id, run_id, task_id, map_index)
    if kind in ("watcher", "api"):
        return Writer(WriterKind(kind))
    return Writer.api()


def backfill(conn: Connection) -> int:
    """Record what Airflow's tables hold now as the log's starting point: for each asset that is active
    or has state, its `es_assets` row, an `activate` event (writer `scheduler`) if active, and a `set`
    per key (the row's writer). Returns the number of events. Refuses a database whose eventstore
    tables hold assets that are not Airflow's."""
    assets = schema.assets
    foreign = conn.execute(
        sa.select(assets.c.id, assets.c.name).where(
            ~sa.exists().where(
                asset.c.id == assets.c.id, asset.c.name == assets.c.name, asset.c.uri == assets.c.uri
            )
        )
    ).first()
    if foreign is not None:
        raise StateStoreError(
            f"This database's eventstore tables already hold an asset that is not Airflow's "
            f"({foreign.name!r}, id {foreign.id}); install eventstore's Airflow part on a database whose "
            "eventstore tables are empty or came from `eventstore airflow install`."
        )
    mirrored = set(conn.execute(sa.select(assets.c.id)).scalars())
    active = {
        row.id: row
        for row in conn.execute(
            sa.select(asset.c.id, asset.c.name, asset.c.uri).join(
                asset_active, sa.and_(asset_active.c.name == asset.c.name, asset_active.c.uri == asset.c.uri)
            )
        )
    }
    rows = conn.execute(
        sa.select(asset_state_store).order_by(asset_state_store.c.asset_id, asset_state_store.c.key)
    )
    values: dict[int, list[sa.Row[tuple[object, ...]]]] = {}
    for row in rows:
        values.setdefault(row.asset_id, []).append(row)
    ids = sorted((set(active) | set(values)) - mirrored)
    if not ids:
        return 0
    names = {
        row.id: row
        for row in conn.execute(sa.select(asset.c.id, asset.c.name, asset.c.uri).where(asset.c.id.in_(ids)))
    }
    now = datetime.now(UTC)
    events: list[dict[str, object]] = []
    for asset_id in ids:
        name, uri = names[asset_id].name, names[asset_id].uri
        stream: list[dict[str, object]] = []
        if asset_id in active:
            stream.append(
                {
                    "op": "activate",
                    "key": None,
                    "value": None,
                    **writer_columns(Writer.scheduler(), "writer_"),
                }
            )
        for row in values.get(asset_id, []):
            writer = row_writer(
                row.last_updated_by_kind,
                row.last_updated_by_dag_id,
                row.last_updated_by_run_id,
                row.last_updated_by_task_id,
                row.last_updated_by_map_index,
            )
            stream.append(
                {"op": "set", "key": row.key, "value": row.value, **writer_columns(writer, "writer_")}
            )
        conn.execute(
            assets.insert().values(
                id=asset_id,
                identity_hash=identity_hash(name, uri),
                name=name,
                uri=uri,
                version=len(stream),
                last_recorded_at=now,
                created_at=now,
                deactivated_at=None if asset_id in active else now,
            )
        )
        if asset_id in active:
            conn.execute(
                schema.asset_active.insert().values(
                    asset_id=asset_id, name_hash=text_hash(name), uri_hash=text_hash(uri), activated_at=now
                )
            )
        for version, event in enumerate(stream, start=1):
            events.append(
                {**event, "asset_id": asset_id, "version": version, "previous": None, "recorded_at": now}
            )
    # Positions last, as every writer of the log takes them (eventstore.ordering).
    positions = ordering_for(conn.dialect).reserve(conn, len(events))
    conn.execute(
        schema.events.insert(), [{**e, "position": p} for p, e in zip(positions, events, strict=True)]
    )
    return len(events)


def refresh_identities(conn: Connection) -> int:
    """Replace the placeholder hashes SQLite's triggers give new assets (`airflow:<id>`) with the real
    ones (eventstore.assets.identity_hash, text_hash). Returns the number of assets fixed."""
    assets, active = schema.assets, schema.asset_active
    pending = conn.execute(
        sa.select(assets.c.id, assets.c.name, assets.c.uri).where(
            assets.c.identity_hash.startswith(PLACEHOLDER)
        )
    ).all()
    for row in pending:
        conn.execute(
            assets.update()
            .where(assets.c.id == row.id)
            .values(identity_hash=identity_hash(row.name, row.uri))
        )
    activations = conn.execute(
        sa.select(active.c.asset_id, assets.c.name, assets.c.uri)
        .join(assets, assets.c.id == active.c.asset_id)
        .where(active.c.name_hash.startswith(PLACEHOLDER))
    ).all()
    for row in activations:
        conn.execute(
            active.update()
            .where(active.c.asset_id == row.asset_id)
            .values(name_hash=text_hash(row.name), uri_hash=text_hash(row.uri))
        )
    return len(pending)
