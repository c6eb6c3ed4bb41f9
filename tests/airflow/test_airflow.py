"""eventstore inside a real Airflow 3.3.2: every change of asset_state_store and asset_active is an event
of the log, committed with the change, whoever makes it (CONTRACT §9, docs/airflow.md).

The tests share one Airflow database (conftest) and run in file order: the DAG runs first and creates
the assets the others use.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.airflow.conftest import DAGS, asset_id, check_log_matches_airflow, events, last_version

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def writer(e: Any) -> tuple[Any, ...]:
    return (
        e.writer_kind,
        e.writer_dag_id,
        e.writer_run_id,
        e.writer_task_id,
        e.writer_map_index,
        e.writer_user,
    )


@pytest.fixture(scope="module")
def dag_runs(airflow_url: str) -> list[Any]:
    """The seed's `incremental_orders` DAG, run twice with dag.test()."""
    spec = importlib.util.spec_from_file_location("incremental_orders", DAGS / "incremental_orders.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [module.dag.test(), module.dag.test()]


def test_the_watermark_dag_twice(dag_runs: list[Any], db: sa.Engine) -> None:
    assert [str(run.state) for run in dag_runs] == ["success", "success"]
    orders = asset_id(db, "orders")
    log = events(db, orders)
    # Activated by Airflow's dag processing (dag.test syncs the bundle), then one set per run. dag.test
    # goes through the in-process Execution API, which Airflow attributes to a watcher (no task token).
    assert [(e.op, e.key, e.value, e.previous) for e in log] == [
        ("activate", None, None, None),
        ("set", "watermark", '"2024-06-01T00:00:00Z"', None),
        ("set", "watermark", '"2024-06-02T00:00:00Z"', '"2024-06-01T00:00:00Z"'),
    ]
    assert writer(log[0])[0] == "scheduler"
    assert [writer(e) for e in log[1:]] == [("watcher", None, None, None, None, None)] * 2
    assert check_log_matches_airflow(db, orders) == {"watermark": '"2024-06-02T00:00:00Z"'}


def test_install_again_changes_nothing_and_fills_identity_hashes(
    dag_runs: list[Any], airflow_url: str, db: sa.Engine
) -> None:
    from eventstore import Asset
    from eventstore.airflow import install

    before = db.connect().execute(sa.text("SELECT count(*) FROM es_events")).scalar_one()
    assert "already installed" in install(airflow_url)
    with db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM es_events")).scalar_one() == before
        mirrored = conn.execute(
            sa.text("SELECT e.identity_hash, a.name, a.uri FROM es_assets e JOIN asset a ON a.id = e.id")
        ).all()
        hashes = conn.execute(
            sa.text("SELECT x.name_hash, a.name FROM es_asset_active x JOIN es_assets a ON a.id = x.asset_id")
        ).all()
    assert {row.name for row in mirrored} >= {"orders", "scratch"}
    for row in mirrored:  # install replaced SQLite's placeholders: the hash eventstore looks assets up by
        assert row.identity_hash == Asset(row.name, row.uri).identity_hash
    from eventstore.assets import text_hash

    assert all(row.name_hash == text_hash(row.name) for row in hashes)


def test_core_rest_api_writes_are_recorded_with_the_airflow_user(dag_runs: list[Any], db: sa.Engine) -> None:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    orders = asset_id(db, "orders")
    seen = last_version(db, orders)
    with TestClient(create_app(apps="core")) as client:
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="alice", role="admin"))
        auth = {"Authorization": f"Bearer {token}"}
        base = f"/api/v2/assets/{orders}/state-store"
        # Two PUTs in quick succession are two events.
        assert (
            client.put(f"{base}/watermark", json={"value": "2024-07-01T00:00:00Z"}, headers=auth).status_code
            == 204
        )
        assert (
            client.put(f"{base}/watermark", json={"value": "2024-07-02T00:00:00Z"}, headers=auth).status_code
            == 204
        )
        assert client.put(f"{base}/a/b", json={"value": {"n": 1}}, headers=auth).status_code == 204
        assert client.delete(f"{base}/a/b", headers=auth).status_code == 204
        assert client.put(f"{base}/extra", json={"value": [1, 2]}, headers=auth).status_code == 204
        assert client.delete(base, headers=auth).status_code == 204  # clear: one delete per key
        # Airflow's own validation stays: a null value is refused and nothing is recorded.
        assert client.put(f"{base}/watermark", json={"value": None}, headers=auth).status_code == 422
        assert (
            client.put(f"{base}/watermark", json={"value": "2024-07-03T00:00:00Z"}, headers=auth).status_code
            == 204
        )
    log = events(db, orders, after_version=seen)
    changes = [(e.op, e.key, e.value, e.previous) for e in log]
    assert changes[:5] == [
        ("set", "watermark", '"2024-07-01T00:00:00Z"', '"2024-06-02T00:00:00Z"'),
        ("set", "watermark", '"2024-07-02T00:00:00Z"', '"2024-07-01T00:00:00Z"'),
        ("set", "a/b", '{"n": 1}', None),
        ("delete", "a/b", None, '{"n": 1}'),
        ("set", "extra", "[1, 2]", None),
    ]
    # The clear, row by row (one statement; the order of its rows is the database's).
    assert sorted(changes[5:7]) == [
        ("delete", "extra", None, "[1, 2]"),
        ("delete", "watermark", None, '"2024-07-02T00:00:00Z"'),
    ]
    assert changes[7:] == [("set", "watermark", '"2024-07-03T00:00:00Z"', None)]
    assert {writer(e) for e in log} == {("api", None, None, None, None, "alice")}
    check_log_matches_airflow(db, orders)


def test_execution_api_task_writes_and_removals_carry_the_task(dag_runs: list[Any], db: sa.Engine) -> None:
    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.execution_api.app import _jwt_generator
    from fastapi.testclient import TestClient

    orders = asset_id(db, "orders")
    seen = last_version(db, orders)
    with db.connect() as conn:
        ti = conn.execute(
            sa.text(
                "SELECT id, dag_id, run_id, task_id, map_index, try_number FROM task_instance "
                "WHERE task_id = 'load_new_orders' ORDER BY run_id LIMIT 1"
            )
        ).one()
    with TestClient(create_app(apps="all")) as client:  # the API server: core (with plugins) + execution
        token = _jwt_generator().generate({"sub": str(ti.id)})
        headers = {"Authorization": f"Bearer {token}", "Airflow-API-Version": "2026-06-30"}
        value = "/execution/store/asset/by-name/value"
        assert (
            client.put(
                value, params={"name": "orders", "key": "watermark"}, json={"value": "w1"}, headers=headers
            ).status_code
            == 204
        )
        assert (
            client.put(
                value, params={"name": "orders", "key": "k2"}, json={"value": 2}, headers=headers
            ).status_code
            == 204
        )
        assert (
            client.delete(value, params={"name": "orders", "key": "k2"}, headers=headers).status_code == 204
        )
        assert (
            client.delete(
                "/execution/store/asset/by-name/clear", params={"name": "orders"}, headers=headers
            ).status_code
            == 204
        )
    log = events(db, orders, after_version=seen)
    assert [(e.op, e.key) for e in log] == [
        ("set", "watermark"),
        ("set", "k2"),
        ("delete", "k2"),
        ("delete", "watermark"),
    ]
    task = ("task", ti.dag_id, ti.run_id, ti.task_id, ti.map_index, None)
    assert [writer(e) for e in log] == [task] * 4
    # Airflow's row has no try number; the removals, whose identity eventstore recovered from the JWT, do.
    assert [e.writer_try_number for e in log] == [None, None, ti.try_number, ti.try_number]
    check_log_matches_airflow(db, orders)


def test_raw_sql_changes_are_recorded(dag_runs: list[Any], db: sa.Engine) -> None:
    orders = asset_id(db, "orders")
    seen = last_version(db, orders)
    now = "2024-08-01 00:00:00.000000"
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO asset_state_store (asset_id, key, value, updated_at, last_updated_by_kind, "
                "last_updated_by_dag_id, last_updated_by_run_id, last_updated_by_task_id, "
                "last_updated_by_map_index) "
                "VALUES (:a, 'raw', '1', :t, 'task', 'd', 'r', 't', 3)"
            ),
            {"a": orders, "t": now},
        )
    with db.begin() as conn:
        conn.execute(
            sa.text("UPDATE asset_state_store SET value = '2' WHERE asset_id = :a AND key = 'raw'"),
            {"a": orders},
        )
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE asset_state_store SET key = 'moved', last_updated_by_kind = 'watcher' "
                "WHERE asset_id = :a AND key = 'raw'"
            ),
            {"a": orders},
        )
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO asset_state_store (asset_id, key, value, updated_at) "
                "VALUES (:a, 'anon', '\"x\"', :t)"
            ),
            {"a": orders, "t": now},
        )
    with db.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM asset_state_store WHERE asset_id = :a AND key IN ('moved', 'anon')"),
            {"a": orders},
        )
    log = events(db, orders, after_version=seen)
    task = ("task", "d", "r", "t", 3, None)
    assert [(e.op, e.key, e.value, e.previous, writer(e)) for e in log][:5] == [
        ("set", "raw", "1", None, task),
        ("set", "raw", "2", "1", task),  # the row keeps its writer
        ("delete", "raw", None, "2", ("watcher", None, None, None, None, None)),
        ("set", "moved", "2", None, ("watcher", None, None, None, None, None)),
        ("set", "anon", '"x"', None, ("api", None, None, None, None, None)),  # no writer: api, no user
    ]
    # A DELETE carries no writer; the asset is active, so it is not the scheduler's: api, no user.
    assert sorted((e.op, e.key, e.previous, writer(e)) for e in log[5:]) == [
        ("delete", "anon", '"x"', ("api", None, None, None, None, None)),
        ("delete", "moved", "2", ("api", None, None, None, None, None)),
    ]
    check_log_matches_airflow(db, orders)


def test_a_failed_change_leaves_no_event(dag_runs: list[Any], db: sa.Engine) -> None:
    orders = asset_id(db, "orders")
    seen = last_version(db, orders)
    with pytest.raises(RuntimeError), db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO asset_state_store (asset_id, key, value, updated_at) "
                "VALUES (:a, 'gone', '1', '2024-01-01 00:00:00')"
            ),
            {"a": orders},
        )
        raise RuntimeError("rolled back")
    assert last_version(db, orders) == seen
    check_log_matches_airflow(db, orders)


def test_scheduler_orphan_cleanup_is_a_deactivate_and_removals(dag_runs: list[Any], db: sa.Engine) -> None:
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    scratch = asset_id(db, "scratch")
    with db.begin() as conn:  # state left by some task
        for key, value in (("cursor", "41"), ("note", '"n"')):
            conn.execute(
                sa.text(
                    "INSERT INTO asset_state_store (asset_id, key, value, updated_at, last_updated_by_kind) "
                    "VALUES (:a, :k, :v, '2024-01-01 00:00:00', 'watcher')"
                ),
                {"a": scratch, "k": key, "v": value},
            )
    seen = last_version(db, scratch)
    # Un-reference the asset (as if its DAG no longer declared it), then the scheduler's orphanage pass.
    with db.begin() as conn:
        for table in (
            "task_outlet_asset_reference",
            "task_inlet_asset_reference",
            "dag_schedule_asset_reference",
        ):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE asset_id = :a"), {"a": scratch})
    SchedulerJobRunner(job=Job())._update_asset_orphanage()
    log = events(db, scratch, after_version=seen)
    assert log[0].op == "deactivate"
    assert sorted((e.op, e.key, e.previous) for e in log[1:]) == [
        ("delete", "cursor", "41"),
        ("delete", "note", '"n"'),
    ]
    assert {writer(e) for e in log} == {("scheduler", None, None, None, None, None)}
    with db.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT deactivated_at FROM es_assets WHERE id = :a"), {"a": scratch}
            ).scalar()
            is not None
        )
    assert check_log_matches_airflow(db, scratch) == {}
    # The orders asset, still referenced, is untouched.
    check_log_matches_airflow(db, asset_id(db, "orders"))


def test_the_backend_refuses_a_database_without_install(tmp_path: Path) -> None:
    from airflow._shared.state import AssetScope
    from sqlalchemy.orm import Session

    from eventstore.airflow import EventStoreBackend, NotInstalledError

    engine = sa.create_engine(f"sqlite:///{tmp_path}/bare.db")
    try:
        with Session(engine) as session:
            backend = EventStoreBackend()
            for call in (
                lambda: backend.delete(AssetScope(asset_id=1), "k", session=session),
                lambda: backend.clear(AssetScope(asset_id=1), session=session),
                lambda: backend.set(AssetScope(asset_id=1), "k", json.dumps(1), session=session),
            ):
                with pytest.raises(NotInstalledError, match=r"eventstore --url .* airflow install"):
                    call()
    finally:
        engine.dispose()


def test_uninstall_removes_the_triggers_and_install_puts_them_back(
    dag_runs: list[Any], airflow_url: str, db: sa.Engine
) -> None:
    from eventstore.airflow import install, uninstall

    orders = asset_id(db, "orders")
    assert "removed" in uninstall(airflow_url)
    assert "nothing to do" in uninstall(airflow_url)
    seen = last_version(db, orders)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE asset_state_store SET value = value WHERE asset_id = :a"), {"a": orders})
        conn.execute(
            sa.text(
                "INSERT INTO asset_state_store (asset_id, key, value, updated_at) "
                "VALUES (:a, 'unseen', '1', '2024-01-01 00:00:00')"
            ),
            {"a": orders},
        )
    assert last_version(db, orders) == seen  # Airflow works as before eventstore
    with db.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM asset_state_store WHERE asset_id = :a AND key = 'unseen'"), {"a": orders}
        )
        # An asset that appears, active and with a value, while eventstore is not installed.
        conn.execute(
            sa.text(
                'INSERT INTO asset (name, uri, "group", extra, created_at, updated_at) '
                "VALUES ('late', 's3://data/late', 'asset', '{}', :t, :t)"
            ),
            {"t": "2024-01-01 00:00:00"},
        )
        conn.execute(sa.text("INSERT INTO asset_active (name, uri) VALUES ('late', 's3://data/late')"))
        late = conn.execute(sa.text("SELECT id FROM asset WHERE name = 'late'")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO asset_state_store (asset_id, key, value, updated_at, last_updated_by_kind) "
                "VALUES (:a, 'w', '7', '2024-01-01 00:00:00', 'watcher')"
            ),
            {"a": late},
        )
    assert install(airflow_url).startswith("eventstore installed")
    # The log's starting point: what Airflow's tables held at install.
    assert [(e.op, e.key, e.value, e.writer_kind) for e in events(db, late)] == [
        ("activate", None, None, "scheduler"),
        ("set", "w", "7", "watcher"),
    ]
    check_log_matches_airflow(db, late)
    with db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO asset_state_store (asset_id, key, value, updated_at) "
                "VALUES (:a, 'seen', '1', '2024-01-01 00:00:00')"
            ),
            {"a": orders},
        )
    assert [(e.op, e.key) for e in events(db, orders, after_version=seen)] == [("set", "seen")]
    check_log_matches_airflow(db, orders)
