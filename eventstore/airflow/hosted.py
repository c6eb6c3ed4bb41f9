"""`open_store(airflow_url)`: a store in Airflow mode (the host of eventstore.hosts, entry point
`eventstore.hosts:airflow`), on a database where `eventstore airflow install` was run.

- Assets are Airflow's: `es_assets` and `es_asset_active` mirror `asset` and `asset_active` (the
  triggers keep them), so the log's readers (history, as-of, the feed, compaction, which follows
  `es_asset_active` with its grace) work as they are.
- Airflow's `asset_state_store` is the current-state view: `get` and `verify` read it.
- A write from eventstore (set, delete, clear, restore) changes Airflow's table inside a transaction
  that sets the writer context, so the installed triggers append the events, exactly as for every other
  writer. The row gets `last_updated_by_kind = 'api'` with no task fields (all Airflow's UI and REST
  accept for a change made outside a task); the log keeps the exact writer (`cli` with its user, ...).
- Activation and deactivation are Airflow's (its dag processor and scheduler); eventstore refuses them.

Needs no Airflow installed: only its tables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema
from eventstore.airflow.mirror import PLACEHOLDER, refresh_identities, row_writer
from eventstore.airflow.writer_context import dialect_module, writer_context
from eventstore.database import Database
from eventstore.errors import StateStoreError
from eventstore.events import Op, PendingEvent
from eventstore.writers import Writer

_airflow = sa.MetaData()
state_table = sa.Table(
    "asset_state_store",
    _airflow,
    sa.Column("asset_id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(512), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_updated_by_kind", sa.String(16)),
    sa.Column("last_updated_by_dag_id", sa.String(250)),
    sa.Column("last_updated_by_run_id", sa.String(250)),
    sa.Column("last_updated_by_task_id", sa.String(250)),
    sa.Column("last_updated_by_map_index", sa.Integer),
)
"""Airflow 3.3's table (airflow/models/asset_state_store.py), as far as eventstore reads and writes it."""

_assets, _active = schema.assets, schema.asset_active

_LOOKUP = (
    sa.select(_assets.c.id, state_table.c.value)
    .select_from(
        _assets.join(_active, _active.c.asset_id == _assets.c.id).outerjoin(
            state_table,
            sa.and_(state_table.c.asset_id == _assets.c.id, state_table.c.key == sa.bindparam("key")),
        )
    )
    .where(_assets.c.identity_hash == sa.bindparam("identity_hash"))
)

_OWNED = {
    "activate": "Airflow's dag processor activates an asset when a DAG declares it",
    "deactivate": "Airflow's scheduler deactivates an asset that no DAG references any more",
    "rebuild": "Airflow's asset_state_store is the current-state view; eventstore does not rebuild it "
    "(`eventstore verify` compares it with the log, `eventstore restore` puts old values back)",
}


def _airflow_json(text: str | None) -> str:
    """A JSON text as Airflow writes its values (json.dumps with its defaults: `{"n": 1}`), so that
    Airflow's table reads the same whoever wrote it; a restored text from the log is Airflow's already."""
    assert text is not None, "a set carries its value"
    return json.dumps(json.loads(text))


def _utc(moment: datetime) -> datetime:
    """Airflow's UtcDateTime as eventstore gives times: aware, in UTC (SQLite hands back naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class AirflowHost:
    """eventstore.hosts.Host for Airflow 3.3's metadata database (module doc)."""

    name = "Airflow"

    def __init__(self, database: Database) -> None:
        dialect_module(database.dialect.name)  # SQLite and PostgreSQL only: fails here otherwise
        self._upsert = database.backend.upsert(state_table, keys=["asset_id", "key"])

    def needs_refresh(self, conn: Connection) -> bool:
        query = sa.select(_assets.c.id).where(_assets.c.identity_hash.startswith(PLACEHOLDER)).limit(1)
        return conn.execute(query).first() is not None

    def refresh(self, conn: Connection) -> None:
        """SQLite's triggers leave placeholder hashes for assets they create (no SHA-256 in SQL)."""
        refresh_identities(conn)

    def lookup(self, conn: Connection, identity_hash: str, key: str) -> tuple[bool, str | None]:
        row = conn.execute(_LOOKUP, {"identity_hash": identity_hash, "key": key}).first()
        return (False, None) if row is None else (True, row[1])

    def read(self, conn: Connection, asset_id: int, keys: Sequence[str] | None) -> dict[str, str]:
        query = sa.select(state_table.c.key, state_table.c.value).where(state_table.c.asset_id == asset_id)
        if keys is not None:
            query = query.where(state_table.c.key.in_(list(keys)))
        return {key: value for key, value in conn.execute(query)}

    def entries(
        self, conn: Connection, asset_id: int, keys: Sequence[str] | None, limit: int | None, offset: int
    ) -> tuple[list[tuple[str, str, datetime, Writer]], int]:
        where = [state_table.c.asset_id == asset_id]
        if keys is not None:
            where.append(state_table.c.key.in_(list(keys)))
        total = conn.execute(sa.select(sa.func.count()).select_from(state_table).where(*where)).scalar_one()
        query = sa.select(state_table).where(*where).order_by(state_table.c.key).offset(offset).limit(limit)
        rows = [
            (
                r.key,
                r.value,
                _utc(r.updated_at),
                row_writer(
                    r.last_updated_by_kind,
                    r.last_updated_by_dag_id,
                    r.last_updated_by_run_id,
                    r.last_updated_by_task_id,
                    r.last_updated_by_map_index,
                ),
            )
            for r in conn.execute(query)
        ]
        return rows, total

    def read_view(self, conn: Connection, asset_ids: Sequence[int]) -> Mapping[int, Mapping[str, str]]:
        query = sa.select(state_table.c.asset_id, state_table.c.key, state_table.c.value).where(
            state_table.c.asset_id.in_(list(asset_ids))
        )
        view: dict[int, dict[str, str]] = {}
        for asset_id, key, value in conn.execute(query):
            view.setdefault(asset_id, {})[key] = value
        return view

    def apply(self, conn: Connection, asset_id: int, pending: Sequence[PendingEvent], writer: Writer) -> None:
        now = datetime.now(UTC)
        mine = state_table.c.asset_id == asset_id
        with writer_context(conn, writer):
            for event in pending:
                if event.op is Op.SET:
                    conn.execute(
                        self._upsert,
                        {
                            "asset_id": asset_id,
                            "key": event.key,
                            "value": _airflow_json(event.value),
                            "updated_at": now,
                            # Airflow knows task, watcher and api; a change from outside a task is `api`.
                            "last_updated_by_kind": "api",
                            "last_updated_by_dag_id": None,
                            "last_updated_by_run_id": None,
                            "last_updated_by_task_id": None,
                            "last_updated_by_map_index": None,
                        },
                    )
                elif event.op is Op.DELETE:
                    conn.execute(state_table.delete().where(mine, state_table.c.key == event.key))
                elif event.op is Op.CLEAR:
                    conn.execute(state_table.delete().where(mine))
                else:
                    raise self.refusal(str(event.op))

    def refusal(self, action: str) -> StateStoreError:
        owner = _OWNED.get(action, f"{action} is Airflow's")
        return StateStoreError(
            f"This is an Airflow database, whose assets Airflow owns: {owner}. eventstore does not {action} "
            "them here."
        )
