"""PostgreSQL: the triggers that turn every change of Airflow's `asset_state_store` and `asset_active` into
events of eventstore's log, and the writer context eventstore's own code hands them.

One PL/pgSQL function appends an event exactly as eventstore's writers do (eventstore.log and
eventstore.dialects.postgresql): it locks the asset's `es_assets` row while taking the stream's next
version (UPDATE ... RETURNING), stamps a time never earlier than the stream's last, and only then takes
the global position with `nextval('es_event_positions')`, so the feed's settling proof holds (the
transaction has its id before its position). The `es_assets` row mirroring Airflow's `asset` row is
created on the asset's first event, with the same id and its real identity hash (SHA-256 of name NUL uri,
computed in SQL).

The writer: the transaction-local setting `eventstore.writer` (JSON) where eventstore's code set one
(`set_writer`), else the case's fallback: the row's `last_updated_by_*` for a new or changed value; for a
removal, `api` while the asset is active and `scheduler` once it is not (the orphan clean-up); for
`asset_active`, `scheduler`.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore.writers import Writer, writer_columns

SETTING = "eventstore.writer"

FUNCTIONS: dict[str, str] = {
    "es_airflow_text_hash(text)": """
        CREATE OR REPLACE FUNCTION es_airflow_text_hash(t text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT AS $$
            SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex')
        $$""",
    "es_airflow_identity_hash(text, text)": """
        CREATE OR REPLACE FUNCTION es_airflow_identity_hash(name text, uri text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT AS $$
            SELECT encode(sha256(
                convert_to(name, 'UTF8') || decode('00', 'hex') || convert_to(uri, 'UTF8')
            ), 'hex')
        $$""",
    # The writer a row of asset_state_store carries, as eventstore can read it (else `api`).
    "es_airflow_row_writer(text, text, text, text, integer)": """
        CREATE OR REPLACE FUNCTION es_airflow_row_writer(k text, d text, r text, t text, m integer)
        RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
            SELECT CASE
                WHEN k = 'task' AND coalesce(d, '') <> '' AND coalesce(r, '') <> '' AND coalesce(t, '') <> ''
                    THEN jsonb_build_object(
                        'kind', 'task', 'dag_id', d, 'run_id', r, 'task_id', t, 'map_index', m)
                WHEN k IN ('watcher', 'api') THEN jsonb_build_object('kind', k)
                ELSE jsonb_build_object('kind', 'api')
            END
        $$""",
    "es_airflow_context()": f"""
        CREATE OR REPLACE FUNCTION es_airflow_context() RETURNS jsonb LANGUAGE sql STABLE AS $$
            SELECT NULLIF(current_setting('{SETTING}', true), '')::jsonb
        $$""",
    "es_airflow_append(integer, text, text, text, text, jsonb)": """
        CREATE OR REPLACE FUNCTION es_airflow_append(
            p_asset integer, p_op text, p_key text, p_value text, p_previous text, p_writer jsonb
        ) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
            v_now timestamp := clock_timestamp() AT TIME ZONE 'UTC';
            v_version bigint;
            v_recorded timestamp;
        BEGIN
            INSERT INTO es_assets (id, identity_hash, name, uri, version, created_at)
                SELECT a.id, es_airflow_identity_hash(a.name, a.uri), a.name, a.uri, 0, v_now
                FROM asset a WHERE a.id = p_asset
                ON CONFLICT DO NOTHING;
            UPDATE es_assets SET version = version + 1,
                    last_recorded_at = GREATEST(coalesce(last_recorded_at, v_now), v_now)
                WHERE id = p_asset
                RETURNING version, last_recorded_at INTO v_version, v_recorded;
            IF NOT FOUND THEN
                RAISE EXCEPTION USING MESSAGE =
                    'eventstore: asset ' || p_asset || ' changed, but neither Airflow nor eventstore '
                    || 'knows it';
            END IF;
            INSERT INTO es_events (position, asset_id, version, op, key, value, previous,
                    writer_kind, writer_dag_id, writer_run_id, writer_task_id, writer_map_index,
                    writer_try_number, writer_user, recorded_at)
                VALUES (nextval('es_event_positions'), p_asset, v_version, p_op, p_key, p_value, p_previous,
                    p_writer->>'kind', p_writer->>'dag_id', p_writer->>'run_id', p_writer->>'task_id',
                    (p_writer->>'map_index')::integer, (p_writer->>'try_number')::integer,
                    p_writer->>'user', v_recorded);
        END
        $$""",
    "es_airflow_state_changed()": """
        CREATE OR REPLACE FUNCTION es_airflow_state_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            v_context jsonb := es_airflow_context();
            v_writer jsonb;
        BEGIN
            IF TG_OP <> 'DELETE' THEN
                v_writer := coalesce(v_context, es_airflow_row_writer(NEW.last_updated_by_kind,
                    NEW.last_updated_by_dag_id, NEW.last_updated_by_run_id, NEW.last_updated_by_task_id,
                    NEW.last_updated_by_map_index));
            END IF;
            IF TG_OP = 'INSERT' THEN
                PERFORM es_airflow_append(NEW.asset_id, 'set', NEW.key, NEW.value, NULL, v_writer);
            ELSIF TG_OP = 'UPDATE' AND OLD.asset_id = NEW.asset_id AND OLD.key = NEW.key THEN
                PERFORM es_airflow_append(NEW.asset_id, 'set', NEW.key, NEW.value, OLD.value, v_writer);
            ELSIF TG_OP = 'UPDATE' THEN  -- a value moved to another key or asset (raw SQL only)
                PERFORM es_airflow_append(OLD.asset_id, 'delete', OLD.key, NULL, OLD.value, v_writer);
                PERFORM es_airflow_append(NEW.asset_id, 'set', NEW.key, NEW.value, NULL, v_writer);
            ELSE
                v_writer := coalesce(v_context, CASE
                    WHEN EXISTS (SELECT 1 FROM asset a
                                 JOIN asset_active aa ON aa.name = a.name AND aa.uri = a.uri
                                 WHERE a.id = OLD.asset_id)
                    THEN jsonb_build_object('kind', 'api')
                    ELSE jsonb_build_object('kind', 'scheduler')
                END);
                PERFORM es_airflow_append(OLD.asset_id, 'delete', OLD.key, NULL, OLD.value, v_writer);
            END IF;
            RETURN NULL;
        END
        $$""",
    "es_airflow_active_changed()": """
        CREATE OR REPLACE FUNCTION es_airflow_active_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            v_writer jsonb := coalesce(es_airflow_context(), jsonb_build_object('kind', 'scheduler'));
            v_now timestamp := clock_timestamp() AT TIME ZONE 'UTC';
            v_asset integer;
        BEGIN
            IF TG_OP = 'INSERT' THEN
                SELECT id INTO v_asset FROM asset WHERE name = NEW.name AND uri = NEW.uri;
                IF v_asset IS NULL OR EXISTS (SELECT 1 FROM es_asset_active WHERE asset_id = v_asset) THEN
                    RETURN NULL;
                END IF;
                PERFORM es_airflow_append(v_asset, 'activate', NULL, NULL, NULL, v_writer);
                INSERT INTO es_asset_active (asset_id, name_hash, uri_hash, activated_at)
                    VALUES (v_asset, es_airflow_text_hash(NEW.name), es_airflow_text_hash(NEW.uri), v_now);
                UPDATE es_assets SET deactivated_at = NULL WHERE id = v_asset;
            ELSE
                SELECT e.id INTO v_asset FROM es_assets e JOIN es_asset_active x ON x.asset_id = e.id
                    WHERE e.name = OLD.name AND e.uri = OLD.uri;
                IF v_asset IS NULL THEN
                    RETURN NULL;
                END IF;
                PERFORM es_airflow_append(v_asset, 'deactivate', NULL, NULL, NULL, v_writer);
                DELETE FROM es_asset_active WHERE asset_id = v_asset;
                UPDATE es_assets SET deactivated_at = v_now WHERE id = v_asset;
            END IF;
            RETURN NULL;
        END
        $$""",
}

TRIGGERS: dict[str, str] = {
    "es_airflow_state": """
        CREATE TRIGGER es_airflow_state AFTER INSERT OR UPDATE OR DELETE ON asset_state_store
        FOR EACH ROW EXECUTE FUNCTION es_airflow_state_changed()""",
    "es_airflow_active": """
        CREATE TRIGGER es_airflow_active AFTER INSERT OR DELETE ON asset_active
        FOR EACH ROW EXECUTE FUNCTION es_airflow_active_changed()""",
}
_TRIGGER_TABLES = {"es_airflow_state": "asset_state_store", "es_airflow_active": "asset_active"}


def install(conn: Connection) -> None:
    """Create the functions and triggers (alembic revision 0001 of eventstore.airflow)."""
    for sql in FUNCTIONS.values():
        conn.exec_driver_sql(sql)
    for sql in TRIGGERS.values():
        conn.exec_driver_sql(sql)


def uninstall(conn: Connection) -> None:
    for name, table in _TRIGGER_TABLES.items():
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for signature in reversed(list(FUNCTIONS)):
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {signature}")


_set = sa.text("SELECT set_config(:name, :value, true)")


def set_writer(conn: Any, writer: Writer) -> None:
    """Make `writer` the author of the changes that follow in this transaction (`conn`: a Connection or
    an ORM Session). Transaction-local; `clear_writer` ends it early."""
    value = json.dumps({k: v for k, v in writer_columns(writer, "").items() if v is not None})
    conn.execute(_set, {"name": SETTING, "value": value})


def clear_writer(conn: Any) -> None:
    conn.execute(_set, {"name": SETTING, "value": ""})
