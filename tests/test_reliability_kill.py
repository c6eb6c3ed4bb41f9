"""The short version of `python -m reliability kill` (docs/reliability.md, "kill -9"): the same code with
a few kills per phase on each database, and proof that its checks do fail when an invariant is broken."""

from __future__ import annotations

import json
import random
from pathlib import Path

import sqlalchemy as sa

from eventstore import Writer, open_store, schema
from reliability.kill import Options, Run, run_database
from reliability.kill_checks import check_store
from reliability.kill_journal import DAG_ID, Journal, read_journals
from reliability.kill_worker import COUNTER, MANY, perform

# lock_limit: 5 s, for `make test`'s workers sharing 2 cores; a lock left behind holds a write far longer
# (SQLite's busy timeout is 30 s, InnoDB's lock wait 50 s, PostgreSQL's unbounded).
SHORT = Options(kills=2, writers=2, clients=1, max_delay=0.3, check_every=100, lock_limit=5.0)


def test_writers_and_server_killed_lose_nothing(backend: str, db_url: str, tmp_path: Path) -> None:
    report = run_database(backend, db_url, SHORT, tmp_path)

    assert report.failures == []
    assert (report.kills_local, report.kills_server, report.kills_client) == (2, 1, 1)
    assert report.checks_failed == 0 and report.checks_passed == 2 * 9  # after each phase
    assert (
        report.acknowledged > 0 and report.probes == 2 * (2 + 1) + 2
    )  # after each local and server kill, and at the end
    assert report.probe_max_seconds < SHORT.lock_limit


def _written(db_url: str, directory: Path) -> Journal:
    """A store with a few journaled operations of each kind, as a run leaves it."""
    journal = Journal(directory / "test.journal")
    rng = random.Random(1)
    with open_store(db_url) as store:
        for asset in (COUNTER, MANY):
            store.activate(asset, Writer.task(DAG_ID, "set-up", "activate"))
        for number, kind in enumerate(["set_many", "update", "set_many", "update", "restore", "set_many"]):
            assert perform(store, journal, f"t.{number}", kind, rng) == "A"
    return journal


def _failed(db_url: str, directory: Path) -> set[str]:
    with open_store(db_url) as store:
        checks = check_store(store, db_url, read_journals([directory / "test.journal"]))
    return {check.name for check in checks if not check.ok}


def test_checks_fail_when_an_invariant_is_broken(db_url: str, tmp_path: Path) -> None:
    journal = _written(db_url, tmp_path)
    assert _failed(db_url, tmp_path) == set()

    # A write acknowledged to its caller, yet absent from the log; one that failed, yet present.
    journal.write({"t": "B", "op": "ghost", "kind": "set_many"})
    journal.write({"t": "A", "op": "ghost", "result": None})
    journal.write({"t": "F", "op": "t.1"})
    assert _failed(db_url, tmp_path) == {"acknowledged writes present", "StoreUnavailableError = not applied"}


def test_checks_find_holes_half_writes_and_drift(db_url: str, tmp_path: Path) -> None:
    _written(db_url, tmp_path)
    engine = sa.create_engine(db_url)
    events, state = schema.events, schema.state
    try:
        with engine.begin() as conn:
            # One key of the last set_many goes: a hole in the versions and a half-applied set_many.
            conn.execute(events.delete().where(events.c.writer_run_id == "t.5", events.c.key == "b"))
            conn.execute(state.update().where(state.c.key == "n").values(value="41"))
    finally:
        engine.dispose()
    assert {"versions without holes", "set_many all or none", "view = fold(log)"} <= _failed(db_url, tmp_path)


def test_a_lock_left_behind_fails_the_probe(db_url: str, tmp_path: Path) -> None:
    options = Options(lock_limit=0.5, hang_limit=2.0)
    run = Run("test", db_url, options, tmp_path)
    engine = sa.create_engine(db_url)
    try:
        run.set_up()
        with engine.begin() as conn:  # a writer's transaction holding the counter's stream lock
            assets = schema.assets
            conn.execute(
                assets.update()
                .where(assets.c.identity_hash == COUNTER.identity_hash)
                .values(version=assets.c.version)
            )
            run.probe(run.store, "held lock")
        assert run.report.failures and all("held lock" in failure for failure in run.report.failures)
        assert run.report.probe_max_seconds >= options.lock_limit
    finally:
        engine.dispose()
        run.close()


def test_journal_ignores_a_line_cut_short_by_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "w.journal"
    path.write_text(json.dumps({"t": "B", "op": "w.1", "kind": "update"}) + '\n{"t": "A", "op": "w.1"')
    outcomes = read_journals([path])
    assert set(outcomes.begun) == {"w.1"} and outcomes.acked == {}
