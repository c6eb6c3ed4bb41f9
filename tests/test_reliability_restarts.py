"""The short version of `python -m reliability restarts` (reliability/restarts.py, the same code with
small sizes): two faults per database under a Store's and a REST server's load, then the checks.

PostgreSQL and MariaDB run as private instances (reliability/instances.py), never the shared servers;
SQLite's disks need root (mount). Where these cannot be created the test skips with the reason, except
under CI=true, where it fails."""

from __future__ import annotations

import os

import pytest

from reliability import instances, restarts

OPTIONS = restarts.Options(dbs=[], restarts=2, seed=17, down=0.8, up=0.8, writers=2, clients=1)


@pytest.mark.parametrize("db", ["sqlite", "postgres", "mysql"])
def test_callers_see_store_unavailable_and_everything_recovers(db: str) -> None:
    try:
        reports = restarts.run_database(db, OPTIONS, log=lambda line: None)
    except instances.InstanceError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the {db} faults could not be set up: {error}", pytrace=False)
        pytest.skip(f"the {db} faults could not be set up here: {error}")
    for report in reports:
        summary = "\n".join(report.lines())
        assert report.ok, summary
        assert report.checks and all(report.checks.values()), summary
        # The faults really hit the callers, each time as StoreUnavailableError (or OutcomeUnknownError).
        assert report.faults == (1 if "read-only" in report.name else OPTIONS.restarts), summary
        assert any(kind.startswith("store write") for kind in report.outcomes.errors), summary
        assert all(
            kind.endswith(("StoreUnavailableError", "OutcomeUnknownError")) for kind in report.outcomes.errors
        )
        assert report.outcomes.acknowledged, summary
        if "restart" in report.name:
            assert report.outcomes.health[503] > 0, summary  # the server said so, /health included
            assert len(report.recovery) == OPTIONS.restarts and max(report.recovery) < 30, summary
        if "full" in report.name:
            assert len(report.recovery) == OPTIONS.restarts, summary
