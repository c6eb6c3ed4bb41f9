"""Wall-clock shares of one `set` or `get`, sampled by py-spy (no profiler overhead in the process).

`python -m benchmarks.pyspy --db sqlite|postgres|mysql --op set|get|rebuild [--ops N]` runs N ops on a fresh
`eventstore_spy` database under `py-spy record --idle --format raw` (idle samples included, so time
spent waiting for a flush or for the server counts) and sorts every sample taken inside the accessor
call into buckets: COMMIT, waiting for the server, the driver, SQLAlchemy's execute machinery, its
compile/cache lookup, pool checkout and return, eventstore's own Python, the JSON codec. With
`--op rebuild` it bulk-loads N events (`benchmarks.bulk`) and reports, per function, the share of
`rebuild_projections`' samples it appears in (inclusive).
Needs `pip install py-spy` (root, or ptrace permission). `--workload` is the process py-spy runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks import databases
from benchmarks.databases import DbName

_BUCKETS: tuple[tuple[str, str], ...] = (
    ("_compile_w_cache", "SQLAlchemy compile/cache lookup"),
    ("_generate_cache_key", "SQLAlchemy compile/cache lookup"),
    ("Engine.connect (", "SQLAlchemy pool checkout"),
    ("_checkout", "SQLAlchemy pool checkout"),
    ("Connection.close (", "SQLAlchemy close + pool return"),
    ("_execute_context", "SQLAlchemy execute machinery"),
    ("_execute_clauseelement", "SQLAlchemy execute machinery"),
    ("codec.py", "eventstore codec (JSON)"),
)


def bucket(stack: str) -> str | None:
    """The bucket of one sampled stack (frames root;...;leaf), None if outside the measured calls."""
    if "eventstore/accessor.py" not in stack:
        return None
    frames = stack.split(";")
    leaf = frames[-1]
    if "do_commit" in stack or "commit (psycopg/connection.py" in stack or "commit (pymysql" in stack:
        return "COMMIT (flush + round trip)"
    if "wait (psycopg" in stack or "recv_into" in stack or "_read_packet" in stack or "sendall" in stack:
        return "waiting for the server (round trips)"
    if ".do_execute (" in leaf or ".do_executemany (" in leaf or "Prepared._execute (" in leaf:
        return "driver execute (C): statements, and COMMIT on SQLite"
    if "psycopg/" in leaf or "pymysql/" in leaf:
        return "driver Python"
    for needle, name in _BUCKETS:
        if needle in stack:
            return name
    return "eventstore and other Python"


def inclusive(raw: Path, marker: str, top: int = 25) -> list[tuple[str, float]]:
    """Share of the samples under `marker` that each function is on the stack for (inclusive time)."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if marker not in stack or not n.isdigit():
            continue
        total += int(n)
        for frame in set(stack.split(";")):
            counts[frame] += int(n)
    return [(frame, 100 * n / (total or 1)) for frame, n in counts.most_common(top)]


def summarize(raw: Path) -> list[tuple[str, float]]:
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        name = bucket(stack)
        if name is not None and n.isdigit():
            counts[name] += int(n)
    total = sum(counts.values()) or 1
    return [(name, 100 * n / total) for name, n in counts.most_common()]


def workload(kind: DbName, op: str, ops: int) -> None:
    from eventstore import Asset, open_store

    db = databases.create(kind, "eventstore_spy")
    try:
        if op == "rebuild":
            from benchmarks import bulk

            open_store(db.url).close()
            bulk.load_large(db.url, ops)
            bulk.analyze(db.url)
            with open_store(db.url, migrate=False) as store:
                report = store.rebuild_projections()
            print(f"rebuild on {kind}: {report.events / report.seconds:,.0f} events/s", file=sys.stderr)
            return
        with open_store(db.url) as store:
            asset = Asset("spy")
            store.activate(asset)
            state = store.asset(asset)
            state.set_many({f"k{i}": {"i": i} for i in range(10)})
            started = time.perf_counter()
            for i in range(ops):
                if op == "set":
                    state.set(f"k{i % 10}", {"i": i})
                else:
                    state.get(f"k{i % 10}")
            print(f"{op} on {kind}: {(time.perf_counter() - started) / ops * 1e6:.0f} µs/op", file=sys.stderr)
    finally:
        databases.drop(db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pyspy", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=databases.DATABASES, required=True)
    parser.add_argument("--op", choices=("set", "get", "rebuild"), required=True)
    parser.add_argument("--ops", type=int, default=3000, help="ops; for rebuild: events to load")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload:
        workload(args.db, args.op, args.ops)
        return 0
    spy = Path(sys.executable).with_name("py-spy")
    with tempfile.TemporaryDirectory() as directory:
        raw = Path(directory) / "samples.txt"
        command = [str(spy), "record", "--idle", "--rate", "500", "--format", "raw", "-o", str(raw), "--"]
        command += [sys.executable, "-m", "benchmarks.pyspy", "--workload"]
        command += ["--db", args.db, "--op", args.op, "--ops", str(args.ops)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        if args.op == "rebuild":
            print(f"rebuild on {args.db}: share of rebuild_projections' wall time per function (inclusive)")
            for frame, share in inclusive(raw, "rebuild_projections"):
                print(f"  {share:5.1f}%  {frame}")
            return 0
        print(f"{args.op} on {args.db}: share of wall time inside the accessor call (py-spy --idle)")
        for name, share in summarize(raw):
            print(f"  {share:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
