"""The shell (CONTRACT §7), run as users run it: in subprocesses, checking exit statuses, the one-line
stderr of user errors and the JSON shapes.

Python starts slowly, so the per-database matrix runs each phase's commands in one subprocess through
`eventstore.cli.main` (each command's stdout, stderr and exit status captured separately); the error
paths run `python -m eventstore` itself, one process per check, on SQLite.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from eventstore import Asset, Writer, open_store, schema
from tests import databases

ORDERS = ["orders", "--uri", "s3://data/orders/"]
CHANGE_FIELDS = {"position", "version", "recorded_at", "op", "key", "value", "previous", "writer"}
WRITER_FIELDS = {"kind", "dag_id", "run_id", "task_id", "map_index", "try_number", "user"}

# Runs several commands in one process, each with its own captured streams and exit status.
_DRIVER = """
import contextlib, io, json, sys
from eventstore.cli import main
results = []
for args in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EVENTSTORE_URL", "EVENTSTORE_DEBUG")}
    env["COLUMNS"] = "100"
    return env


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m eventstore ARGS` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "eventstore", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=cwd,
        timeout=120,
    )


def batch(url: str, *commands: Sequence[str]) -> list[dict[str, Any]]:
    """Run every command with `--url url` in one subprocess; their exit codes and captured streams."""
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        input=json.dumps([["--url", url, *command] for command in commands]),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def succeeded(result: dict[str, Any] | subprocess.CompletedProcess[str]) -> str:
    code, out, err = _parts(result)
    assert code == 0, err
    return out


def one_line_error(result: dict[str, Any] | subprocess.CompletedProcess[str]) -> str:
    """Assert a user error: exit status 1, exactly one line `eventstore: ...` on stderr, no traceback."""
    code, _out, err = _parts(result)
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("eventstore: ")
    return lines[0]


def _parts(result: dict[str, Any] | subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    if isinstance(result, dict):
        return result["code"], result["out"], result["err"]
    return result.returncode, result.stdout, result.stderr


def check_change(change: dict[str, Any]) -> None:
    assert set(change) == CHANGE_FIELDS
    assert set(change["writer"]) == WRITER_FIELDS
    assert change["recorded_at"].endswith("Z") and "T" in change["recorded_at"]


# --- Every command on every database ------------------------------------------------------------------


def test_every_command_on_every_database(db_url: str) -> None:
    first = batch(
        db_url,
        ["activate", *ORDERS],
        ["set", *ORDERS, "watermark", '"2024-06-01"'],
        ["set", *ORDERS, "summary", '{"rows": 12, "ratio": 0.5, "tags": ["a", "ü"], "none": null}'],
        ["get", *ORDERS, "watermark"],
        ["set", *ORDERS, "watermark", '"2024-06-02"'],
        ["get", *ORDERS, "summary"],
        ["history", *ORDERS, "--key", "watermark", "--json"],
        ["history", *ORDERS],
        ["assets", "--json"],
        ["assets"],
        ["activate", "scratch"],
        ["set", "scratch", "k", "1"],
    )
    for result in first:
        succeeded(result)
    assert first[3]["out"] == '"2024-06-01"\n'
    assert json.loads(first[5]["out"]) == {"rows": 12, "ratio": 0.5, "tags": ["a", "ü"], "none": None}
    history = json.loads(first[6]["out"])
    assert [(c["op"], c["key"], c["value"], c["previous"]) for c in history] == [
        ("set", "watermark", "2024-06-01", None),
        ("set", "watermark", "2024-06-02", "2024-06-01"),
    ]
    for change in history:
        check_change(change)
        assert change["writer"] == {**dict.fromkeys(WRITER_FIELDS), "kind": "cli", "user": getpass.getuser()}
    assert "watermark" in first[7]["out"] and "summary" in first[7]["out"]  # the table
    [listed] = json.loads(first[8]["out"])
    assert set(listed) == {"id", "name", "uri", "active", "version"}
    assert (listed["name"], listed["uri"], listed["active"], listed["version"]) == (
        "orders",
        "s3://data/orders/",
        True,
        4,
    )
    assert "s3://data/orders/" in first[9]["out"]

    # Corrupt the view behind the store's back: verify finds it, rebuild repairs it.
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(schema.state.update().where(schema.state.c.key == "summary").values(value='"bad"'))
    finally:
        engine.dispose()
    p1 = history[0]["position"]
    second = batch(
        db_url,
        ["verify"],
        ["rebuild"],
        ["verify"],
        ["as-of", *ORDERS, "--position", str(p1), "--json"],
        ["as-of", *ORDERS, "--at", history[1]["recorded_at"]],
        ["restore", *ORDERS, "--position", str(p1), "--dry-run", "--json"],
        ["get", *ORDERS, "watermark"],
        ["restore", *ORDERS, "--position", str(p1), "--json"],
        ["get", *ORDERS, "watermark"],
        ["events", "--after", "0", "--json"],
        ["events"],
        ["delete", *ORDERS, "watermark"],
        ["get", *ORDERS, "watermark"],
        ["clear", *ORDERS],
        ["deactivate", *ORDERS],
        ["get", *ORDERS, "summary"],
        ["assets"],
        ["assets", "--all", "--json"],
        ["compact", "--dry-run", "--json"],
        ["compact", "--json"],
        ["compactions", "--json"],
        ["compactions"],
        ["history", *ORDERS, "--since", "2000-01-01"],
        ["history", *ORDERS, "--json"],
        ["get", "scratch", "k"],
    )
    drift = second[0]
    one_line_error(drift)
    assert "summary" in drift["out"] and '"bad"' in drift["out"]
    assert "rebuilt from" in succeeded(second[1])
    assert "consistent" in succeeded(second[2])
    assert json.loads(succeeded(second[3])) == {"watermark": "2024-06-01"}
    assert '"2024-06-02"' in succeeded(second[4])
    dry = json.loads(succeeded(second[5]))
    assert [(c["op"], c["key"], c["value"], c["previous"]) for c in dry] == [
        ("set", "watermark", "2024-06-01", "2024-06-02"),
        ("delete", "summary", None, {"rows": 12, "ratio": 0.5, "tags": ["a", "ü"], "none": None}),
    ]
    assert succeeded(second[6]) == '"2024-06-02"\n'  # the dry run changed nothing
    restored = json.loads(succeeded(second[7]))
    assert [(c["op"], c["key"]) for c in restored] == [("set", "watermark"), ("delete", "summary")]
    for change in restored:
        check_change(change)
        assert change["writer"]["kind"] == "cli"
    assert succeeded(second[8]) == '"2024-06-01"\n'
    feed = json.loads(succeeded(second[9]))
    assert {"position", "version", "recorded_at", "asset", "op", "key", "value", "writer"} == set(feed[0])
    assert feed[0]["asset"] == {"name": "orders", "uri": "s3://data/orders/"} and feed[0]["op"] == "activate"
    assert [e["position"] for e in feed] == sorted(e["position"] for e in feed)
    succeeded(second[10])
    succeeded(second[11])
    assert "no key 'watermark'" in one_line_error(second[12])
    succeeded(second[13])
    succeeded(second[14])
    assert "not active" in one_line_error(second[15])
    assert "s3://data/orders/" not in succeeded(second[16])  # inactive: only with --all
    assert [a["active"] for a in json.loads(succeeded(second[17]))] == [False, True]
    preview, report = json.loads(succeeded(second[18])), json.loads(succeeded(second[19]))
    assert preview["dry_run"] is True and report["dry_run"] is False
    assert {k: v for k, v in preview.items() if k != "dry_run"} == {
        k: v for k, v in report.items() if k != "dry_run"
    }
    # activate, 3 sets, the restore's set and delete, delete, deactivate (the clear found no keys)
    assert report["assets"] == [{"name": "orders", "uri": "s3://data/orders/", "events": 8, "keys": 0}]
    assert report["events_deleted"] == 8 and report["rows_deleted"] == 0
    [record] = json.loads(succeeded(second[20]))
    assert set(record) == {"asset", "last_version", "events", "deactivated_at", "compacted_at", "position"}
    assert record["asset"] == {"name": "orders", "uri": "s3://data/orders/"} and record["events"] == 8
    assert "orders" in succeeded(second[21])
    assert "was compacted on" in one_line_error(second[22])
    assert json.loads(succeeded(second[23])) == []
    assert succeeded(second[24]) == "1\n"  # compaction never touches an active asset


# --- Exit statuses and one-line errors, as the real process shows them ----------------------------------


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    url = databases.sqlite_copy(sqlite_template, tmp_path)
    with open_store(url) as store:
        store.activate(Asset("orders", "s3://data/orders/"))
        store.asset(Asset("orders", "s3://data/orders/")).set("watermark", "2024-06-01")
        store.activate(Asset("gone"))
        store.deactivate(Asset("gone"), Writer.cli(user="test"))
    return url


def test_an_unusable_url_is_one_line_naming_what_to_do(tmp_path: Path) -> None:
    malformed = one_line_error(run("--url", "not a url", "assets"))
    assert "not a database URL" in malformed
    driver = one_line_error(run("--url", "postgresql+psycopg2://u:secret@127.0.0.1/db", "assets"))
    assert "psycopg2" in driver and "pip install 'eventstore[postgres]'" in driver
    mysql_driver = one_line_error(run("--url", "mysql://root@127.0.0.1/db", "get", "a", "k"))
    assert "pip install 'eventstore[mysql]'" in mysql_driver
    unreachable = one_line_error(run("--url", "postgresql+psycopg://postgres:secret@127.0.0.1:9/x", "assets"))
    assert "127.0.0.1:9" in unreachable and "secret" not in unreachable
    missing_db = one_line_error(
        run("--url", "postgresql+psycopg://postgres@127.0.0.1:5432/eventstore_no_such_db", "events")
    )
    assert "eventstore_no_such_db" in missing_db
    no_file = tmp_path / "absent.db"
    assert "no database at" in one_line_error(run("--url", f"sqlite:///{no_file}", "assets"))
    assert not no_file.exists()  # not created by a read


def test_a_database_without_the_schema_names_the_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    sa.create_engine(url).connect().close()  # an empty file: no eventstore schema
    message = one_line_error(run("--url", url, "assets"))
    assert f"eventstore --url {url} db upgrade" in message
    assert "schema at" in succeeded(run("--url", url, "db", "upgrade"))
    assert succeeded(run("--url", url, "assets", "--json")) == "[]\n"


def test_user_errors_exit_1_with_one_line(sqlite_url: str) -> None:
    assert "not known" in one_line_error(run("--url", sqlite_url, "get", "nobody", "k"))
    assert "not active" in one_line_error(run("--url", sqlite_url, "set", "gone", "k", "1"))
    assert "no key 'cursor'" in one_line_error(run("--url", sqlite_url, "get", *ORDERS, "cursor"))
    assert "JSON" in one_line_error(run("--url", sqlite_url, "set", *ORDERS, "k", "2024-06-01"))
    assert "NaN" in one_line_error(run("--url", sqlite_url, "set", *ORDERS, "k", "[NaN]"))
    assert "None" in one_line_error(run("--url", sqlite_url, "set", *ORDERS, "k", "null"))
    assert "not known" in one_line_error(run("--url", sqlite_url, "history", "nobody"))
    with open_store(sqlite_url) as store:
        assert store.asset(Asset("orders", "s3://data/orders/")).get("k") is None  # nothing was written


def test_usage_errors_exit_2(sqlite_url: str) -> None:
    for args in (
        ["nonsense"],
        ["as-of", *ORDERS],  # neither --at nor --position
        ["restore", *ORDERS, "--at", "2024-06-01", "--position", "3"],
        ["history", *ORDERS, "--since", "yesterday"],
        ["compact", "--grace", "soon"],
    ):
        done = run("--url", sqlite_url, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and "Usage:" in done.stderr


def test_version_help_and_the_console_script(sqlite_url: str) -> None:
    assert run("--version").stdout.startswith("eventstore ")
    helped = succeeded(run("--help"))
    for command in (
        "db",
        "assets",
        "activate",
        "get",
        "set",
        "history",
        "as-of",
        "restore",
        "compact",
        "demo",
    ):
        assert f"  {command} " in helped
    script = Path(sys.executable).with_name("eventstore")
    if script.exists():
        done = subprocess.run(
            [str(script), "--url", sqlite_url, "get", *ORDERS, "watermark"], capture_output=True, text=True
        )
        assert done.returncode == 0 and done.stdout == '"2024-06-01"\n'


def test_times_in_are_iso_8601_and_naive_means_utc(sqlite_url: str) -> None:
    results = batch(
        sqlite_url,
        ["history", *ORDERS, "--since", "2000-01-01T00:00:00", "--json"],
        ["history", *ORDERS, "--since", "2000-01-01T02:00:00+02:00", "--json"],
        ["history", *ORDERS, "--until", "2000-01-01", "--json"],
        ["as-of", *ORDERS, "--at", "1999-12-31T23:59:59Z", "--json"],
    )
    naive, offset, before, empty = (json.loads(succeeded(r)) for r in results)
    assert naive == offset and len(naive) == 2  # activate and set
    assert before == [] and empty == {}


def test_the_debug_variable_shows_the_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eventstore", "--url", "not a url", "assets"],
        capture_output=True,
        text=True,
        env={**_env(), "EVENTSTORE_DEBUG": "1"},
    )
    assert done.returncode == 1 and "Traceback" in done.stderr
