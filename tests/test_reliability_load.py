"""The load run (reliability/load.py) in small: the same code as `make reliability`, 8 s per database.

A real `eventstore serve` process on SQLite and on PostgreSQL, 2 task writers through the HTTP client,
a history poller, a feed follower and a compactor every 2 s. Every route kind must have been called,
no client may have seen an error, and every invariant the long run checks must hold (the view is the
fold of the log, no lost update, the feed missed nothing, each deactivated asset compacted once, no
5xx in the server's log).

Memory: 8 s is too short to tell a leak from the warm-up (the RSS still rises a few MB while caches
and the allocator's arenas fill), so the slope limit here is only a gross one (over 600 MB/min,
i.e. a leak of 10 MB a second), and the final RSS may be at most 50% over the warm-up level. The long
run holds the real limits (docs/reliability.md).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from benchmarks import databases
from reliability import load
from tests.databases import unavailable


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_short_load_has_no_error_and_breaks_no_invariant(kind: databases.DbName, tmp_path: Path) -> None:
    options = load.Options(
        seconds=8,
        clients=4,
        compact_every=2,
        slope_limit=600.0,
        growth_limit=0.5,
        workdir=tmp_path,
        database=f"reliability_load_test_{os.getpid()}",
    )
    try:
        run = load.run_database(kind, options)
    except databases.DatabaseUnavailable as error:
        unavailable(kind, str(error))
    assert run.errors == {}
    assert {route: summary.count > 0 for route, summary in run.routes.items()} == dict.fromkeys(
        run.routes, True
    )
    assert set(load.ROUTES) <= set(run.routes)
    assert run.failures == []
    assert run.memory is not None and run.memory.samples >= 6
    assert run.requests_per_second > 0
    assert not any(status.startswith("5") for status in run.server_statuses)

    out = io.StringIO()
    load.report(run, Console(file=out, width=140))
    assert "compact" in out.getvalue() and "FAIL" not in out.getvalue()
    assert json.loads(json.dumps(load.to_json(run)))["failures"] == []
