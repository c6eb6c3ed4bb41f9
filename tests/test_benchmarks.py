"""The benchmark harness still runs (no timing assertions: numbers are only checked to be positive)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import bulk, databases, readwrite, replay, rest
from benchmarks.stats import interleave, paired_ratio
from eventstore import open_store


def test_set_and_get_measurements_run_on_sqlite(tmp_path: Path) -> None:
    db = databases.create("sqlite", "bench_smoke", workdir=tmp_path)
    try:
        sets = readwrite.measure_set(db, ops=3, reps=2, with_peer=False, warmup=1)
        gets = readwrite.measure_get(db, ops=3, reps=2, warmup=1)
    finally:
        databases.drop(db)
    assert set(sets.samples) == {"eventstore", "sqlalchemy", "raw"}
    assert set(gets.samples) == {"eventstore", "sqlalchemy", "raw"}
    for samples in (*sets.samples.values(), *gets.samples.values()):
        assert len(samples) == 2
        assert all(sample > 0 for sample in samples)
    assert paired_ratio(sets.samples["eventstore"], sets.samples["sqlalchemy"]).median > 0


@pytest.mark.slow
def test_compaction_under_writes_runs_on_sqlite(tmp_path: Path) -> None:
    db = databases.create("sqlite", "bench_busy", workdir=tmp_path)
    try:
        open_store(db.url).close()
        data = bulk.load_large(db.url, 1_000)
        found = replay.Replay(dataset=data)
        replay.measure_compaction_under_writes(
            db,
            written=[bulk.small_asset(0)],
            assets=100,
            events_each=50,
            reps=1,
            idle_seconds=0.3,
            write_rate=100,
            found=found,
        )
        with open_store(db.url, migrate=False) as store:
            assert store.verify_projections() == []
    finally:
        databases.drop(db)
    assert found.problems == []
    assert found.write_problems == []
    assert found.samples["writes idle median ms"][0] > 0
    assert found.samples["busy compaction events/s"][0] > 0
    assert found.samples["writes during count"][0] >= 1


def test_interleave_rotates_the_order() -> None:
    order: list[str] = []

    def variant(name: str) -> Callable[[], float]:
        def run() -> float:
            order.append(name)
            return 1.0

        return run

    samples = interleave({name: variant(name) for name in "abc"}, reps=3)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert samples == {"a": [1.0] * 3, "b": [1.0] * 3, "c": [1.0] * 3}


def test_rest_measurements_run_on_sqlite(tmp_path: Path) -> None:
    db = databases.create("sqlite", "bench_rest", workdir=tmp_path)
    try:
        found = rest.measure_rest(db, ops=3, reps=2, seconds=0.2, probes=3, warmup=1)
    finally:
        databases.drop(db)
    assert found.problems == []
    assert set(found.latency) == {
        "noop get",
        "read get",
        "rest get",
        "api get",
        "noop put",
        "rest put",
        "api put",
    }
    assert set(found.throughput) == {"noop get", "rest get", "rest put"}
    for samples in (*found.latency.values(), *found.throughput.values(), *found.loop_ms.values()):
        assert samples and all(sample > 0 for sample in samples)


@pytest.mark.slow
def test_the_client_measurements_run_on_sqlite(tmp_path: Path) -> None:
    from benchmarks import client

    db = databases.create("sqlite", "bench_client", workdir=tmp_path)
    try:
        open_store(db.url).close()
        found = client.measure(db, set_ops=3, get_ops=3, update_ops=3, reps=2, warmup=1)
    finally:
        databases.drop(db)
    assert set(found.samples) == {"set client", "set raw", "get client", "get raw"}
    assert all(len(s) == 2 and all(x > 0 for x in s) for s in found.samples.values())
    assert found.lost_updates == 0
    assert len(found.retries_per_op) == 2 and all(r >= 0 for r in found.retries_per_op)
