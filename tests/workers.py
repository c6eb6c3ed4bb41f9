"""Functions that run in child processes of the concurrency tests (importable by the spawn start method)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from eventstore import Asset, Writer, open_store

COUNTER = Asset("counter")
SHARED = Asset("shared")


def run_processes(target: Callable[..., Any], args_per_process: list[tuple[Any, ...]]) -> None:
    """Start one spawned process per args tuple, all at once; fail if any of them failed."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=args) for args in args_per_process]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    codes = [process.exitcode for process in processes]
    assert codes == [0] * len(processes), f"worker exit codes: {codes}"


def increment(url: str, times: int) -> None:
    with open_store(url) as store:
        state = store.asset(COUNTER, Writer.watcher())
        for _ in range(times):
            state.update("n", lambda n: n + 1, default=0)


def write_own_and_shared(url: str, worker: int, times: int) -> None:
    own = Asset(f"worker-{worker}")
    with open_store(url) as store:
        store.activate(own)
        mine, shared = store.asset(own), store.asset(SHARED)
        for i in range(times):
            mine.set(f"k{i % 5}", i)
            shared.set_many({f"w{worker}": i, "last": worker})
            if i % 7 == 0:
                mine.delete(f"k{(i + 1) % 5}")


def open_and_close(url: str) -> None:
    open_store(url).close()


def set_one_key(url: str, worker: int, times: int) -> None:
    """Set the same key of SHARED over and over, each time to a value no other set writes."""
    with open_store(url) as store:
        state = store.asset(SHARED, Writer.watcher())
        for i in range(times):
            state.set("k", f"{worker}-{i}")


def remote_increment(server_url: str, times: int) -> None:
    """`update(+1)` through the HTTP client, as a worker holding no database credentials would."""
    from eventstore.client import connect

    with connect(server_url) as remote:
        state = remote.asset(COUNTER, Writer.task("dag", "run", "increment"))
        for _ in range(times):
            state.update("n", lambda n: n + 1, default=0)
