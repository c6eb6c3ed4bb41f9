"""docs/operations.md, run as written: backup → restore → verify → write after the restore, on each database
with its real tools, and the SQL the guide gives for monitoring.

The shell blocks of the guide marked `<!-- checked: NAME -->` are extracted and run with bash, so the
guide cannot drift from what works. The store's history is made so that the highest positions belong to
compacted events: a restore that restarted positions from the largest surviving one would hand a
position out twice, and the test would see it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventstore import Asset, open_store
from eventstore.cli import main as cli
from eventstore.ordering import ordering_for
from tests import databases

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "operations.md"
_CHECKED = re.compile(r"<!-- checked: (?P<name>[\w-]+) -->\n\s*```(?P<lang>\w+)\n(?P<body>.*?)\n\s*```", re.S)
TOOLS = {
    "sqlite": ("sqlite3",),
    "postgres": ("pg_dump", "pg_restore", "createdb", "psql"),
    "mysql": ("mariadb-dump", "mariadb"),
}
ORDERS = Asset("orders", uri="s3://data/orders/")
PREFIX = {"sqlite": "sqlite", "postgres": "postgres", "mysql": "mariadb"}  # of the guide's block names
STEPS = ("backup", "restore", "advance-positions")
SCRATCH = Asset("scratch", uri="s3://tmp/scratch/")


def checked_blocks() -> dict[str, str]:
    """The blocks of the guide marked as checked, by name (each block's lines without indentation)."""
    blocks: dict[str, str] = {}
    for found in _CHECKED.finditer(GUIDE.read_text()):
        name = found["name"]
        assert name not in blocks, f"two blocks named {name} in {GUIDE}"
        blocks[name] = "\n".join(line.strip() for line in found["body"].splitlines())
    return blocks


BLOCKS = checked_blocks()


def run_block(name: str, env: dict[str, str]) -> str:
    """Run the guide's shell block `name` with bash (-e: the first failing command fails it)."""
    environment = {
        **os.environ,
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", BLOCKS[name]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (
        f"{name} failed ({done.returncode}):\n{BLOCKS[name]}\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def require_tools(backend: str) -> None:
    missing = [tool for tool in TOOLS[backend] if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (the {backend} client tools)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires every tool: {message}", pytrace=False)
    pytest.skip(message)


def last_assigned(url: str) -> int:
    """The last position the store handed out (the head row, or PostgreSQL's sequence)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return ordering_for(engine.dialect).last_assigned(conn)
    finally:
        engine.dispose()


def make_history(url: str) -> tuple[int, int]:
    """Writes whose highest positions are compacted away; returns (the last position assigned, the
    largest position left in the log)."""
    with open_store(url) as store:
        store.activate(ORDERS)
        store.activate(SCRATCH)
        store.asset(ORDERS).set("watermark", "2024-06-01")
        store.asset(ORDERS).update("runs", lambda n: n + 1, default=0)
        store.asset(SCRATCH).set_many({"a": 1, "b": 2})
        store.deactivate(SCRATCH)
        assert store.compact().events_deleted > 0
        surviving = max(event.position for event in store.events(0))
    head = last_assigned(url)
    assert surviving < head, "the highest positions must be compacted for this test to mean anything"
    return head, surviving


def write_after_backup(url: str) -> int:
    """Writes made after the backup (lost by the restore); returns the last position assigned."""
    with open_store(url) as store:
        store.asset(ORDERS).set("watermark", "2024-06-02")
        store.asset(ORDERS).update("runs", lambda n: n + 1, default=0)
    return last_assigned(url)


@contextlib.contextmanager
def writing(url: str) -> Iterator[None]:
    """A writer thread that keeps counting a key of ORDERS while the body runs (a backup taken live)."""
    started, stop = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with open_store(url) as store:
                while not stop.is_set():
                    store.asset(ORDERS).update("ticks", lambda n: n + 1, default=0)
                    started.set()
                    stop.wait(0.01)  # a steady writer, not one that takes the machine
        except BaseException as error:  # reported by the test's thread
            failures.append(error)
            started.set()

    thread = threading.Thread(target=write)
    thread.start()
    started.wait(30)
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures


def check_restored(
    url: str, positions: tuple[int, int], highest_seen: int, advance: str, env: dict[str, str]
) -> None:
    """The restored store carries on after the last position its log had handed out (between
    `positions`: the heads before and after the live backup), never from its largest surviving event;
    after the guide's advance-positions step, after the highest position readers saw; the next write gets
    that fresh position and the projections still match the log."""
    restored_head = last_assigned(url)
    assert positions[0] <= restored_head <= positions[1]
    with open_store(url, migrate=False) as store:
        assert store.asset(ORDERS).get("watermark") == "2024-06-01"  # the state at the backup
        before = {event.position for event in store.events(0)}
        assert max(before) <= restored_head
    run_block(advance, {**env, "HIGHEST_SEEN": str(highest_seen)})
    with open_store(url, migrate=False) as store:
        store.asset(ORDERS).set("watermark", "2024-06-03")
        new = [event.position for event in store.events(0) if event.position not in before]
        assert store.verify_projections() == []
    assert new == [highest_seen + 1], f"the write after the restore got position(s) {new}"


def test_the_guide_marks_exactly_the_blocks_this_test_runs() -> None:
    run_here = {f"{prefix}-{step}" for prefix in PREFIX.values() for step in STEPS}
    run_here |= {"sqlite-dot-backup", "compaction-lag"}
    assert set(BLOCKS) == run_here, f"{GUIDE.name}'s checked blocks differ from what this test runs"


def sqlite_environment(url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    db_file = sa.make_url(url).database or ""
    return url, {"DB_FILE": db_file, "BACKUP": str(tmp_path / "backup.db")}


def server_environment(backend: str, url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The restored database's URL (dropped first: the guide's restore creates it) and the variables."""
    server = sa.make_url(url)
    restored = f"{server.database}_restored"
    restored_url = server.set(database=restored).render_as_string(hide_password=False)
    databases.drop_database(backend, restored_url)
    common = {"DATABASE": server.database or "", "RESTORED": restored, "EVENTSTORE_URL": restored_url}
    if backend == "postgres":
        return restored_url, {
            **common,
            "PGHOST": server.host or "127.0.0.1",
            "PGPORT": str(server.port or 5432),
            "PGUSER": server.username or "postgres",
            "BACKUP": str(tmp_path / "eventstore.dump"),
        }
    return restored_url, {
        **common,
        "DB_HOST": server.host or "127.0.0.1",
        "DB_USER": server.username or "root",
        "BACKUP": str(tmp_path / "eventstore.sql"),
    }


def test_backup_restore_verify_then_write_gets_a_fresh_position(
    backend: str, db_url: str, tmp_path: Path
) -> None:
    require_tools(backend)
    if backend == "sqlite":  # the restore replaces the file the store used, as the guide says
        restored_url, env = sqlite_environment(db_url, tmp_path)
    else:  # into a new database beside it
        restored_url, env = server_environment(backend, db_url, tmp_path)
    prefix = PREFIX[backend]
    head, _ = make_history(db_url)
    try:
        with writing(db_url):  # the guide says the backup is taken while writers go on
            run_block(f"{prefix}-backup", env)
        after_backup = last_assigned(db_url)
        if backend == "sqlite":
            dot_backup = tmp_path / "dot-backup.db"
            run_block("sqlite-dot-backup", {**env, "BACKUP": str(dot_backup)})
            assert cli(["--url", f"sqlite:///{dot_backup}", "verify"]) == 0
        lost_head = write_after_backup(db_url)  # lost by the restore
        out = run_block(f"{prefix}-restore", env)  # ends with `eventstore ... verify`
        assert "consistent: the view and the snapshots match the log" in out
        positions = (head, after_backup)
        check_restored(restored_url, positions, lost_head, f"{prefix}-advance-positions", env)
    finally:
        if backend != "sqlite":
            databases.drop_database(backend, restored_url)


def test_the_compaction_lag_query_counts_what_compaction_will_remove(db_url: str) -> None:
    query = sa.text(BLOCKS["compaction-lag"])
    engine = sa.create_engine(db_url)
    try:
        with open_store(db_url) as store:
            make_history(db_url)  # compacts the scratch asset: nothing waits
            with engine.connect() as conn:
                assert tuple(conn.execute(query).one())[:2] == (0, 0)
            store.asset(ORDERS).set("watermark", "2024-06-04")
            store.deactivate(ORDERS)
            version = next(a.version for a in store.assets() if a.name == ORDERS.name)
            with engine.connect() as conn:
                waiting, events, oldest = conn.execute(query).one()
            assert (waiting, int(events)) == (1, version)  # every event of its stream, none compacted yet
            assert oldest is not None
            assert store.compact().events_deleted == version
            with engine.connect() as conn:
                assert tuple(conn.execute(query).one())[:2] == (0, 0)
    finally:
        engine.dispose()
