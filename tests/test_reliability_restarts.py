"""The short version of `python -m reliability restarts` (reliability/restarts.py, the same code with
small sizes): two faults per database under a Store's and a REST server's load, then the checks. The
three databases run at the same time (most of the time is spent waiting for servers to start and stop),
each reported by its own test.

PostgreSQL and MariaDB run as private instances (reliability/instances.py), never the shared servers;
SQLite's disks need root (mount). Where these cannot be created the test skips with the reason, except
under CI=true, where it fails."""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator

import pytest

from reliability import instances, restarts

OPTIONS = restarts.Options(dbs=[], restarts=2, seed=17, down=0.8, up=0.8, writers=2, clients=1)


DATABASES = ("sqlite", "postgres", "mysql")


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, concurrent.futures.Future[list[restarts.Report]]]]:
    with concurrent.futures.ThreadPoolExecutor(len(DATABASES)) as pool:
        yield {db: pool.submit(restarts.run_database, db, OPTIONS, lambda line: None) for db in DATABASES}


@pytest.mark.parametrize("db", DATABASES)
def test_callers_see_store_unavailable_and_everything_recovers(
    db: str, runs: dict[str, concurrent.futures.Future[list[restarts.Report]]]
) -> None:
    try:
        reports = runs[db].result()
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
