"""`python -m benchmarks.airflow` (issue 13, docs/performance.md "Inside Airflow"), tiny: it runs, its report
has the PUT and GET rows, ratios and targets, and both variants wrote what they should (its own checks:
the EventStoreBackend's PUTs are events of the log, the MetastoreBackend's database has no eventstore).

A child process: the benchmark points Airflow's ORM at its own two databases, which this session's
Airflow must not see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.airflow.conftest import DB, PG_SERVER

ROOT = Path(__file__).resolve().parents[2]


def test_the_airflow_benchmark_runs_and_reports(tmp_path: Path) -> None:
    env = {**os.environ, "EVENTSTORE_BENCH_POSTGRES": PG_SERVER}
    places = ["--workdir", str(tmp_path), "--results", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.airflow", "--tiny", "--db", DB, *places],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [path] = tmp_path.glob("airflow-*.json")
    [report] = json.loads(path.read_text())["databases"]
    assert report["db"] == f"Airflow 3.3 on {DB}"
    rows = {row["key"]: row for row in report["rows"]}
    for key in (
        "put.eventstore",
        "put.metastore",
        "put.ratio",
        "get.eventstore",
        "get.metastore",
        "get.ratio",
    ):
        assert len(rows[key]["stats"]["samples"]) == 2, key  # --tiny: two repetitions
        assert rows[key]["stats"]["median"] > 0
    assert rows["statements.eventstore"]["stats"]["median"] == rows["statements.metastore"]["stats"]["median"]
    assert {t["key"] for t in report["targets"]} == {"put.ratio", "get.ratio"}
    assert all(t["status"] in ("met", "missed") for t in report["targets"])
    checks = {c["name"]: c for c in report["checks"]}
    assert len(checks) == 4 and all(c["ok"] for c in checks.values()), checks
    logged = next(c for name, c in checks.items() if name.startswith("EventStoreBackend"))
    assert logged["detail"].startswith("40 task set events for 30 PUTs and 10 raw UPDATEs")
    # The benchmark's databases are gone; the work directory holds only the results.
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
