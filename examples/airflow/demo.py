"""`make airflow-demo`: the watermark example of Airflow's asset state store, in a real Airflow 3.3 with
eventstore installed, in about 20 seconds.

It makes a throwaway Airflow home on SQLite (kept afterwards, its path printed), runs Airflow's migrations
and `eventstore airflow install`, runs the `incremental_orders` DAG (incremental_orders.py, beside this
file) twice with `dag.test()`, changes the watermark once through Airflow's own REST API as the Airflow
user `alice`, then shows, with the eventstore shell, who moved the watermark and rewinds it to what the
first run left.

Run it with the Python of a venv where apache-airflow 3.3 and eventstore are installed
(`make airflow-demo` uses scripts/airflow-venv's):

    python examples/airflow/demo.py [--home DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BACKEND = "eventstore.airflow.EventStoreBackend"
USER = "alice"  # the Airflow user of the REST call (Airflow's simple auth manager, role admin)


def say(text: str = "") -> None:
    print(text, flush=True)


def shell(url: str, *args: str) -> None:
    """Print `eventstore --url URL ARGS...` and run it in a subprocess: the command you would type, and
    what it prints."""
    say(f"$ eventstore --url {url} {shlex.join(args)}")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if not sys.stdout.isatty():
        env["COLUMNS"] = "150"  # the tables' width when the output goes to a file or a pipe
    done = subprocess.run([sys.executable, "-m", "eventstore", "--url", url, *args], env=env, timeout=120)
    if done.returncode != 0:
        sys.exit(f"eventstore {args[0]} failed (exit status {done.returncode})")


def shell_json(url: str, *args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "eventstore", "--url", url, *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def setup(home: Path) -> str:
    """The Airflow home: its airflow.cfg (read once, at Airflow's first import), its dags folder, Airflow's
    migrations and eventstore's install. Returns the database URL."""
    url = f"sqlite:///{home}/airflow.db"
    for name in [n for n in os.environ if n.startswith("AIRFLOW_")]:
        del os.environ[name]  # never an Airflow of yours: AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and the like
    (home / "dags").mkdir(parents=True)
    shutil.copy(HERE / "incremental_orders.py", home / "dags")
    # In airflow.cfg rather than AIRFLOW__... variables, so that AIRFLOW_HOME alone finds it all later.
    (home / "airflow.cfg").write_text(
        "[core]\n"
        f"dags_folder = {home}/dags\n"
        "load_examples = False\n"
        f"simple_auth_manager_users = {USER}:admin\n"
        "\n[database]\n"
        f"sql_alchemy_conn = {url}\n"
        "\n[state_store]\n"
        f"backend = {BACKEND}\n"
    )
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"  # this process only: a readable output

    from airflow.utils import db as airflow_db  # what `airflow db migrate` runs

    airflow_db.upgradedb()
    from eventstore.airflow import install  # what `eventstore --url URL airflow install` runs

    install(url)
    return url


def run_dag_twice(home: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "incremental_orders", home / "dags" / "incremental_orders.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for number in (1, 2):
        run = module.dag.test()
        if str(run.state) != "success":
            sys.exit(f"the DAG's run {number} ended {run.state}")


def change_through_airflow_rest(value: str) -> dict[str, Any]:
    """PUT the watermark through Airflow's core REST API (the app `airflow api-server` serves, with its
    plugins), as USER; returns what the same API then reads."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    with contextlib.redirect_stdout(io.StringIO()), TestClient(create_app(apps="core")) as client:
        token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=USER, role="admin"))
        auth = {"Authorization": f"Bearer {token}"}
        found = client.get("/api/v2/assets", params={"name_pattern": "orders"}, headers=auth)
        found.raise_for_status()
        (asset,) = [a for a in found.json()["assets"] if a["name"] == "orders"]
        path = f"/api/v2/assets/{asset['id']}/state-store/watermark"
        client.put(path, json={"value": value}, headers=auth).raise_for_status()
        read = client.get(path, headers=auth)
        read.raise_for_status()
        return dict(read.json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="the Airflow home to create (default: a new temp dir)")
    home = parser.parse_args().home or Path(tempfile.mkdtemp(prefix="eventstore-airflow-demo-"))
    home = home.resolve()
    if home.exists() and any(home.iterdir()):
        sys.exit(f"{home} is not empty: give --home a new directory")
    started = time.perf_counter()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    say("eventstore in Airflow 3.3: the watermark example of Airflow's asset state store")
    say()
    say(f"1. A new Airflow home on SQLite: {home}")
    say(f"   airflow db migrate, eventstore airflow install, [state_store] backend = {BACKEND}")
    url = setup(home)
    say("2. The DAG incremental_orders (examples/airflow/incremental_orders.py) runs twice (dag.test()):")
    say("   its task load_new_orders reads the watermark, loads the newer orders, advances the watermark.")
    run_dag_twice(home)
    value = "2024-07-01T00:00:00Z"
    say(f"3. The Airflow user {USER} sets the watermark to {value} through Airflow's REST API:")
    say(f'   PUT /api/v2/assets/<orders>/state-store/watermark {{"value": "{value}"}}')
    read = change_through_airflow_rest(value)
    say(f"   Airflow now reads: watermark = {json.dumps(read['value'])}")
    say()
    say("4. Who moved the watermark, from eventstore's log in Airflow's database:")
    shell(url, "history", "orders", "--key", "watermark")
    say("   (dag.test() runs the task in this process, through Airflow's in-process Execution API, which")
    say("   carries no task identity: Airflow records such writes as a watcher's. Under a scheduler the")
    say("   writer is the task, with its dag, run and task ids.)")
    say()
    first = shell_json(url, "history", "orders", "--key", "watermark")[0]
    say(f"5. Rewind the asset to the state the first run left (position {first['position']}):")
    shell(url, "restore", "orders", "--position", str(first["position"]))
    shell(url, "get", "orders", "watermark")
    say("   The restore is itself an event (writer: cli, with your OS user); Airflow's table has the value.")
    say()
    say(f"Done in {time.perf_counter() - started:.0f}s. The Airflow home is kept: {home}")
    say("Explore it (eventstore and airflow are those of this venv,")
    say(f"{Path(sys.executable).parent}):")
    say(f"  eventstore --url {url} history orders --key watermark")
    say(f"  eventstore --url {url} as-of orders --position {first['position']}")
    say(f"  eventstore --url {url} verify      # Airflow's table against the log")
    say(f"  eventstore --url {url} serve       # the web page")
    say(f"  AIRFLOW_HOME={home} airflow dags test incremental_orders   # a third run")


if __name__ == "__main__":
    main()
