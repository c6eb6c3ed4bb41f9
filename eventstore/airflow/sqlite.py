"""SQLite: the triggers that turn every change of Airflow's `asset_state_store` and `asset_active` into
events of eventstore's log, and the writer context eventstore's own code hands them.

SQLite triggers have no variables and no IF, so each case is its own trigger (WHEN picks it) and each
event is the same four statements (`_append`):

1. create the `es_assets` row mirroring Airflow's `asset` row if it is missing (same id; the identity
   hash is a placeholder `airflow:<id>` that `eventstore.airflow.install.refresh_identities` replaces:
   SQLite has no SHA-256 in SQL);
2. take the stream's next version and stamp the time (never earlier than the stream's last);
3. advance `es_log_head` (SQLite has one writer at a time, so positions commit in the order they are
   handed out, as eventstore's own writers guarantee with the same row);
4. insert the event, with the writer: the context row of `es_airflow_writer` if eventstore's code set
   one in this transaction, else the fallback of the case (the row's `last_updated_by_*`, the scheduler).

Triggers cannot see TEMP tables, so the context is a regular one-row table (`es_airflow_writer`), written
at the start of the change and deleted before commit, in the same transaction (SQLite has one writer).
Times are UTC text `YYYY-MM-DD HH:MM:SS.ffffff` as eventstore stores them; SQLite's clock gives
milliseconds, so the last three digits of a trigger's times are 0.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore.writers import Writer, writer_columns

WRITER_TABLE = "es_airflow_writer"

_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"

_WRITER_FIELDS = ("kind", "dag_id", "run_id", "task_id", "map_index", "try_number", "user")


def _row_writer(row: str) -> dict[str, str]:
    """The writer a row of asset_state_store carries (`last_updated_by_*`), as eventstore can read it:
    a task with dag, run and task; a watcher or api; anything else (none, or incomplete) is `api`."""
    col = f"{row}.last_updated_by_"
    is_task = (
        f"({col}kind = 'task' AND coalesce({col}dag_id, '') <> '' "
        f"AND coalesce({col}run_id, '') <> '' AND coalesce({col}task_id, '') <> '')"
    )
    return {
        "kind": f"CASE WHEN {is_task} THEN 'task' WHEN {col}kind IN ('watcher', 'api') "
        f"THEN {col}kind ELSE 'api' END",
        "dag_id": f"CASE WHEN {is_task} THEN {col}dag_id END",
        "run_id": f"CASE WHEN {is_task} THEN {col}run_id END",
        "task_id": f"CASE WHEN {is_task} THEN {col}task_id END",
        "map_index": f"CASE WHEN {is_task} THEN {col}map_index END",
        "try_number": "NULL",
        "user": "NULL",
    }


def _kind_only(kind_sql: str) -> dict[str, str]:
    return {field: (kind_sql if field == "kind" else "NULL") for field in _WRITER_FIELDS}


_SCHEDULER = _kind_only("'scheduler'")


def _removal_writer(row: str) -> dict[str, str]:
    """A DELETE carries no writer: while the asset is active that is someone's delete (raw SQL or a path
    eventstore cannot see: `api` with no user); once it is inactive, the scheduler's orphan clean-up."""
    active = (
        f"EXISTS (SELECT 1 FROM asset a JOIN asset_active aa ON aa.name = a.name AND aa.uri = a.uri "
        f"WHERE a.id = {row}.asset_id)"
    )
    return _kind_only(f"CASE WHEN {active} THEN 'api' ELSE 'scheduler' END")


def _append(asset_id: str, op: str, key: str, value: str, previous: str, fallback: dict[str, str]) -> str:
    writer = ", ".join(
        f"CASE WHEN w.id IS NULL THEN {fallback[field]} ELSE w.{field} END" for field in _WRITER_FIELDS
    )
    columns = ", ".join(f"writer_{field}" for field in _WRITER_FIELDS)
    return f"""
    INSERT INTO es_assets (id, identity_hash, name, uri, version, created_at)
        SELECT a.id, 'airflow:' || a.id, a.name, a.uri, 0, {_NOW} FROM asset a
        WHERE a.id = {asset_id} AND NOT EXISTS (SELECT 1 FROM es_assets e WHERE e.id = a.id);
    SELECT RAISE(ABORT, 'eventstore: an asset changed that neither Airflow nor eventstore knows')
        WHERE NOT EXISTS (SELECT 1 FROM es_assets WHERE id = {asset_id});
    UPDATE es_assets SET version = version + 1,
        last_recorded_at = max(coalesce(last_recorded_at, {_NOW}), {_NOW})
        WHERE id = {asset_id};
    UPDATE es_log_head SET position = position + 1 WHERE id = 1;
    INSERT INTO es_events (position, asset_id, version, op, key, value, previous, {columns}, recorded_at)
        SELECT h.position, e.id, e.version, '{op}', {key}, {value}, {previous}, {writer}, e.last_recorded_at
        FROM es_assets e JOIN es_log_head h ON h.id = 1 LEFT JOIN {WRITER_TABLE} w ON w.id = 1
        WHERE e.id = {asset_id};"""


_SAME_ROW = "OLD.asset_id = NEW.asset_id AND OLD.key = NEW.key"
_ACTIVATED_ID = "(SELECT id FROM asset WHERE name = NEW.name AND uri = NEW.uri)"
_DEACTIVATED_ID = (
    "(SELECT e.id FROM es_assets e JOIN es_asset_active x ON x.asset_id = e.id "
    "WHERE e.name = OLD.name AND e.uri = OLD.uri)"
)

TRIGGERS: dict[str, str] = {
    # asset_state_store: a new key, a changed value, a removed key (one trigger run per row).
    "es_airflow_state_insert": f"""
        CREATE TRIGGER es_airflow_state_insert AFTER INSERT ON asset_state_store FOR EACH ROW BEGIN
        {_append("NEW.asset_id", "set", "NEW.key", "NEW.value", "NULL", _row_writer("NEW"))}
        END""",
    "es_airflow_state_update": f"""
        CREATE TRIGGER es_airflow_state_update AFTER UPDATE ON asset_state_store FOR EACH ROW
        WHEN {_SAME_ROW} BEGIN
        {_append("NEW.asset_id", "set", "NEW.key", "NEW.value", "OLD.value", _row_writer("NEW"))}
        END""",
    # An UPDATE that moves a value to another key or asset (raw SQL only): a removal and a new key.
    "es_airflow_state_rekey": f"""
        CREATE TRIGGER es_airflow_state_rekey AFTER UPDATE ON asset_state_store FOR EACH ROW
        WHEN NOT ({_SAME_ROW}) BEGIN
        {_append("OLD.asset_id", "delete", "OLD.key", "NULL", "OLD.value", _row_writer("NEW"))}
        {_append("NEW.asset_id", "set", "NEW.key", "NEW.value", "NULL", _row_writer("NEW"))}
        END""",
    "es_airflow_state_delete": f"""
        CREATE TRIGGER es_airflow_state_delete AFTER DELETE ON asset_state_store FOR EACH ROW BEGIN
        {_append("OLD.asset_id", "delete", "OLD.key", "NULL", "OLD.value", _removal_writer("OLD"))}
        END""",
    # asset_active: activation (unless eventstore already mirrors the asset as active) and orphaning.
    "es_airflow_activate": f"""
        CREATE TRIGGER es_airflow_activate AFTER INSERT ON asset_active FOR EACH ROW
        WHEN NOT EXISTS (SELECT 1 FROM es_asset_active WHERE asset_id = {_ACTIVATED_ID}) BEGIN
        {_append(_ACTIVATED_ID, "activate", "NULL", "NULL", "NULL", _SCHEDULER)}
        INSERT INTO es_asset_active (asset_id, name_hash, uri_hash, activated_at)
            SELECT id, 'airflow:name:' || id, 'airflow:uri:' || id, {_NOW} FROM asset
            WHERE name = NEW.name AND uri = NEW.uri;
        UPDATE es_assets SET deactivated_at = NULL WHERE id = {_ACTIVATED_ID};
        END""",
    "es_airflow_deactivate": f"""
        CREATE TRIGGER es_airflow_deactivate AFTER DELETE ON asset_active FOR EACH ROW
        WHEN EXISTS {_DEACTIVATED_ID.replace("SELECT e.id", "SELECT 1")} BEGIN
        {_append(_DEACTIVATED_ID, "deactivate", "NULL", "NULL", "NULL", _SCHEDULER)}
        UPDATE es_assets SET deactivated_at = {_NOW} WHERE id = {_DEACTIVATED_ID};
        DELETE FROM es_asset_active WHERE asset_id = {_DEACTIVATED_ID};
        END""",
}


def install(conn: Connection) -> None:
    """Create the writer-context table and the triggers (alembic revision 0001 of eventstore.airflow)."""
    conn.exec_driver_sql(
        f"CREATE TABLE {WRITER_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), kind VARCHAR(16) NOT NULL, "
        "dag_id VARCHAR(250), run_id VARCHAR(250), task_id VARCHAR(250), map_index INTEGER, "
        'try_number INTEGER, "user" VARCHAR(250))'
    )
    for sql in TRIGGERS.values():
        conn.exec_driver_sql(sql)


def uninstall(conn: Connection) -> None:
    for name in TRIGGERS:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {WRITER_TABLE}")


_writer_table = sa.table(WRITER_TABLE, sa.column("id"), *(sa.column(field) for field in _WRITER_FIELDS))


def set_writer(conn: Any, writer: Writer) -> None:
    """Make `writer` the author of the changes that follow in this transaction (`conn`: a Connection or
    an ORM Session). Always paired with `clear_writer` before the transaction commits."""
    conn.execute(_writer_table.delete())
    conn.execute(_writer_table.insert().values(id=1, **writer_columns(writer, "")))


def clear_writer(conn: Any) -> None:
    conn.execute(_writer_table.delete())
