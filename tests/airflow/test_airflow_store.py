"""`open_store(airflow_url)` and the shell on Airflow's database (CONTRACT §9, docs/airflow.md "Read the log
from eventstore"): Airflow's assets, the log's readers, writes through Airflow's table with the exact
writer in the log, `verify` against Airflow's table, and compaction with grace against Airflow's GC.

Runs after tests/airflow/test_airflow.py on the same database (conftest): the DAG runs, REST and
Execution API writes and the scheduler's orphaning of `scratch` made there are what these tests read.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import DAGS, asset_id, check_log_matches_airflow, events

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def shell(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`eventstore --url URL ARGS...` in a subprocess, as a person would run it."""
    return subprocess.run(
        [sys.executable, "-m", "eventstore", "--url", url, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def ok(url: str, *args: str, env: dict[str, str] | None = None) -> Any:
    done = shell(url, *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else done.stdout


def row(db: sa.Engine, asset: int, key: str) -> Any:
    with db.connect() as conn:
        return conn.execute(
            sa.text("SELECT * FROM asset_state_store WHERE asset_id = :a AND key = :k"),
            {"a": asset, "k": key},
        ).first()


def orphan(db: sa.Engine, name: str) -> None:
    """Un-reference the asset (as if no DAG declared it any more), then the scheduler's orphanage pass."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    asset = asset_id(db, name)
    with db.begin() as conn:
        for table in (
            "task_outlet_asset_reference",
            "task_inlet_asset_reference",
            "dag_schedule_asset_reference",
        ):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE asset_id = :a"), {"a": asset})
    SchedulerJobRunner(job=Job())._update_asset_orphanage()


def run_dag(name: str) -> Any:
    """Run a DAG of tests/airflow/dags/scratch_writer.py with dag.test() (which also syncs the dags folder,
    so Airflow activates the assets its DAGs declare)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scratch_writer", DAGS / "scratch_writer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name).test()


def test_history_of_an_airflow_asset_in_the_shell(airflow_url: str, db: sa.Engine) -> None:
    changes = ok(airflow_url, "history", "orders", "--key", "watermark", "--json")
    log = [e for e in events(db, asset_id(db, "orders")) if e.key == "watermark"]
    assert [(c["version"], c["op"], c["value"]) for c in changes] == [
        (e.version, e.op, None if e.value is None else json.loads(e.value)) for e in log
    ]
    writers = [c["writer"] for c in changes]
    # dag.test()'s runs (Airflow's in-process API: a watcher), alice's REST PUTs, and a task through the
    # Execution API with its dag, run and task.
    assert writers[0]["kind"] == "watcher"
    assert {"kind": "api", "user": "alice"}.items() <= writers[2].items()
    tasks = [w for w in writers if w["kind"] == "task"]
    assert tasks and tasks[0]["dag_id"] == "incremental_orders"
    assert tasks[0]["task_id"] == "load_new_orders" and tasks[0]["run_id"]
    assert changes[1]["previous"] == "2024-06-01T00:00:00Z"
    # The table for people names the task too.
    table = ok(airflow_url, "history", "orders", "--key", "watermark", env={"COLUMNS": "300"})
    assert "incremental_orders" in table and "load_new_orders" in table


def test_as_of_events_assets_and_get(airflow_url: str, db: sa.Engine) -> None:
    orders = asset_id(db, "orders")
    second_run = events(db, orders)[2]  # activate, the first run's set, the second run's set
    assert ok(airflow_url, "as-of", "orders", "--position", str(second_run.position), "--json") == {
        "watermark": "2024-06-02T00:00:00Z"
    }
    feed = ok(airflow_url, "events", "--json")
    assert [e["position"] for e in feed] == sorted(e["position"] for e in feed)
    assert {e["asset"]["name"] for e in feed} >= {"orders", "scratch"}
    listed = {a["name"]: a for a in ok(airflow_url, "assets", "--all", "--json")}
    assert listed["orders"]["uri"] == "s3://data/orders" and listed["orders"]["active"]
    assert listed["orders"]["id"] == orders  # Airflow's id
    assert not listed["scratch"]["active"]  # orphaned by the scheduler (test_airflow.py)
    with db.connect() as conn:
        table = dict(
            conn.execute(
                sa.text("SELECT key, value FROM asset_state_store WHERE asset_id = :a"), {"a": orders}
            ).all()
        )
    for key, text in table.items():  # get reads Airflow's table
        assert json.loads(ok(airflow_url, "get", "orders", key)) == json.loads(text)


def test_shell_writes_go_to_airflows_table_with_the_exact_writer_in_the_log(
    airflow_url: str, db: sa.Engine
) -> None:
    orders = asset_id(db, "orders")
    seen = events(db, orders)[-1].version
    ok(airflow_url, "set", "orders", "note", '{"by": "shell"}')
    ok(airflow_url, "delete", "orders", "note")
    ok(airflow_url, "set", "orders", "note", "2")
    stored = row(db, orders, "note")
    # Stored as Airflow stores values (Python's json.dumps), whatever the JSON text given.
    assert stored.value == "2"
    # Airflow's table knows only task, watcher and api: a change from outside a task is `api`.
    assert (stored.last_updated_by_kind, stored.last_updated_by_dag_id, stored.last_updated_by_task_id) == (
        "api",
        None,
        None,
    )
    log = events(db, orders, after_version=seen)
    assert [(e.op, e.key, e.value, e.previous) for e in log] == [
        ("set", "note", '{"by": "shell"}', None),
        ("delete", "note", None, '{"by": "shell"}'),
        ("set", "note", "2", None),
    ]
    assert {(e.writer_kind, e.writer_user) for e in log} == {("cli", getpass.getuser())}
    check_log_matches_airflow(db, orders)


def test_the_python_api_on_airflows_database(airflow_url: str, db: sa.Engine) -> None:
    from eventstore import Writer, open_store

    orders = asset_id(db, "orders")
    with open_store(airflow_url) as store:
        asset = store.named_asset("orders")
        assert asset.uri == "s3://data/orders"
        state = store.asset(asset, Writer.task("d", "r", "t", 0, 2))
        state.update("counter", lambda n: n + 1, default=0)
        state.update("counter", lambda n: n + 1, default=0)
        assert state.get("counter") == 2
        assert [c.writer.task_id for c in store.history(asset, "counter")] == ["t", "t"]
        assert store.verify_projections() == []
        # The REST admin reads (eventstore serve) show Airflow's rows and the writer each row names.
        entry, version = store.entry(orders, "counter")
        assert entry is not None and (entry.value, entry.updated_by.kind.value) == ("2", "api")
        assert entry.updated_at.tzinfo is not None and version == events(db, orders)[-1].version
        listed = store.entries(orders)
        assert [e.key for e in listed.entries] == sorted(e.key for e in listed.entries)
        assert listed.total == len(listed.entries) and "counter" in [e.key for e in listed.entries]
        for refused in (store.activate, store.deactivate):
            with pytest.raises(Exception, match="Airflow owns"):
                refused(asset)
        with pytest.raises(Exception, match="does not rebuild"):
            store.rebuild_projections()
    # The row says api (no task fields: Airflow's row validation allows them only for its own tasks),
    # the log says which task, with its try number.
    assert row(db, orders, "counter").last_updated_by_kind == "api"
    last = events(db, orders)[-1]
    assert (last.writer_kind, last.writer_task_id, last.writer_try_number) == ("task", "t", 2)
    check_log_matches_airflow(db, orders)


def test_an_asset_airflow_adds_after_the_store_opened(airflow_url: str, db: sa.Engine) -> None:
    """SQLite's triggers give a new asset a placeholder hash; the open store fills it in when it misses."""
    from eventstore import Asset, open_store

    with open_store(airflow_url) as store:
        with db.begin() as conn:
            for name in ("fresh1", "fresh2"):
                conn.execute(
                    sa.text(
                        'INSERT INTO asset (name, uri, "group", extra, created_at, updated_at) '
                        "VALUES (:n, :u, 'asset', '{}', :t, :t)"
                    ),
                    {"n": name, "u": f"s3://data/{name}", "t": "2024-01-01 00:00:00"},
                )
                conn.execute(
                    sa.text("INSERT INTO asset_active (name, uri) VALUES (:n, :u)"),
                    {"n": name, "u": f"s3://data/{name}"},
                )
        assert store.asset(Asset("fresh1", "s3://data/fresh1")).get("k") is None  # a read first
        store.asset(Asset("fresh2", "s3://data/fresh2")).set("k", 2)  # a write first
        assert store.asset(Asset("fresh2", "s3://data/fresh2")).get("k") == 2
    assert check_log_matches_airflow(db, asset_id(db, "fresh2")) == {"k": "2"}


def test_activate_and_deactivate_are_airflows(airflow_url: str) -> None:
    for command in ("activate", "deactivate"):
        done = shell(airflow_url, command, "orders")
        assert done.returncode == 1
        assert "Airflow" in done.stderr and "Traceback" not in done.stderr


def test_verify_detects_a_change_the_log_missed(airflow_url: str, db: sa.Engine) -> None:
    orders = asset_id(db, "orders")
    assert ok(airflow_url, "verify").startswith("consistent")
    last = events(db, orders)[-1]
    with db.begin() as conn:  # lose the last event: the log's fold no longer gives Airflow's table
        conn.execute(sa.text("DELETE FROM es_events WHERE position = :p"), {"p": last.position})
    try:
        done = shell(airflow_url, "verify")
        assert done.returncode == 1, done.stdout
        assert "counter" in done.stdout and "Airflow's table" in done.stderr
    finally:
        with db.begin() as conn:
            columns = ", ".join(last._fields)
            values = ", ".join(f":{name}" for name in last._fields)
            conn.execute(sa.text(f"INSERT INTO es_events ({columns}) VALUES ({values})"), last._asdict())
    assert shell(airflow_url, "verify").returncode == 0


def test_restore_after_the_schedulers_gc(airflow_url: str, db: sa.Engine) -> None:
    """scratch was orphaned by the scheduler in test_airflow.py, which deleted its state (cursor, note).
    Its events outlive that until `eventstore compact`; once Airflow activates it again, a restore
    brings the old values back into Airflow's table."""
    scratch = asset_id(db, "scratch")
    log = events(db, scratch)
    deactivated = next(e for e in log if e.op == "deactivate")
    before_gc = [e for e in log if e.version < deactivated.version][-1]
    assert row(db, scratch, "cursor") is None
    # Within grace, compaction keeps the orphaned asset's events.
    report = ok(airflow_url, "compact", "--json", env={"EVENTSTORE_COMPACTION_GRACE": "1h"})
    assert report["events_deleted"] == 0
    assert len(events(db, scratch)) == len(log)
    # While it is inactive, eventstore cannot write it (Airflow's rule: only active assets have state).
    assert shell(airflow_url, "restore", "scratch", "--position", str(before_gc.position)).returncode == 1

    # A DAG declares it again: Airflow activates it, and its task writes cursor = 1.
    assert str(run_dag("scratch_dag").state) == "success"
    assert row(db, scratch, "cursor").value == "1"
    seen = events(db, scratch)[-1].version
    changes = ok(airflow_url, "restore", "scratch", "--position", str(before_gc.position), "--json")
    assert sorted((c["op"], c["key"], c["value"]) for c in changes) == [
        ("set", "cursor", 41),
        ("set", "note", "n"),
    ]
    assert (row(db, scratch, "cursor").value, row(db, scratch, "note").value) == ("41", '"n"')
    assert row(db, scratch, "cursor").last_updated_by_kind == "api"
    restored = events(db, scratch, after_version=seen)
    assert {(e.writer_kind, e.writer_user) for e in restored} == {("cli", getpass.getuser())}
    check_log_matches_airflow(db, scratch)


def test_compaction_follows_airflows_asset_active_with_grace(airflow_url: str, db: sa.Engine) -> None:
    scratch = asset_id(db, "scratch")
    orphan(db, "scratch")
    assert row(db, scratch, "cursor") is None  # Airflow's GC
    kept = events(db, scratch)
    assert kept[-1].op == "delete" or kept[-1].op == "deactivate"
    within = ok(airflow_url, "compact", "--json", env={"EVENTSTORE_COMPACTION_GRACE": "1h"})
    assert within["events_deleted"] == 0 and len(events(db, scratch)) == len(kept)
    after = ok(airflow_url, "compact", "--json", env={"EVENTSTORE_COMPACTION_GRACE": "0"})
    # scratch, and `late` (test_airflow.py), which no DAG declares: the orphanage pass deactivated it too.
    compacted = {a["name"]: a["events"] for a in after["assets"]}
    assert compacted["scratch"] == len(kept)
    assert events(db, scratch) == []
    records = ok(airflow_url, "compactions", "--json")
    assert [r["last_version"] for r in records if r["asset"]["name"] == "scratch"] == [kept[-1].version]
    # Active assets are untouched, Airflow's tables too; the log still matches Airflow's table.
    check_log_matches_airflow(db, asset_id(db, "orders"))
    assert shell(airflow_url, "verify").returncode == 0
    # Airflow activates it again: its versions go on after the compacted ones.
    assert str(run_dag("scratch_dag").state) == "success"
    again = events(db, scratch)
    assert again[0].op == "activate" and again[0].version == kept[-1].version + 1
    assert ok(airflow_url, "get", "scratch", "cursor").strip() == "1"
