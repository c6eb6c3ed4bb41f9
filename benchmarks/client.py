"""The HTTP client (`eventstore.client`) against the same REST routes called with raw httpx.

One `eventstore serve` process on the benchmark database; in this process, per repetition and in
rotating order (`stats.interleave`):
- set: `remote.asset(a).set(key, value)` vs `httpx.Client.put(".../state-store/{key}", {"value": ...})`
  (the route the client uses), each checking the 204;
- get: `state.get(key)` vs `httpx.Client.get(".../state-store/{key}").json()["value"]`.
The sample of a repetition is the mean latency in µs per op; the ratio client / raw is the client's
own overhead (validation, encoding, the retry wrapper, the version bookkeeping).

Then 8 processes, each with its own client, `update(+1)` one key at once: the 412 conflicts each
update needed before it landed (retries per op), the throughput, and whether the counter is exact.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import httpx
import orjson

from benchmarks.databases import BenchDatabase
from benchmarks.readwrite import KEYS, value_for
from benchmarks.stats import interleave
from eventstore import Asset

SET_ASSET = Asset("bench-client-set")
GET_ASSET = Asset("bench-client-get")
COUNTER = Asset("bench-client-counter")
UPDATERS = 8


@dataclass
class ClientBench:
    samples: dict[str, list[float]] = field(default_factory=dict)
    retries_per_op: list[float] = field(default_factory=list)
    updates_per_second: list[float] = field(default_factory=list)
    lost_updates: int = 0


class Server:
    """`eventstore serve` on a free loopback port, in a child process (its own interpreter and GIL)."""

    def __init__(self, url: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        code = f"from eventstore.server import serve; serve({url!r}, '127.0.0.1', {port})"
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop(); a pipe could fill up)
        self._process = subprocess.Popen([sys.executable, "-c", code], stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("eventstore serve did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()


def _timed(ops: int, op: Callable[[int], object]) -> Callable[[], float]:
    counter = iter(range(10**9))

    def run() -> float:
        started = perf_counter()
        for _ in range(ops):
            op(next(counter))
        return (perf_counter() - started) / ops * 1e6

    return run


def measure(
    db: BenchDatabase, *, set_ops: int, get_ops: int, update_ops: int, reps: int, warmup: int = 20
) -> ClientBench:
    from eventstore.client import connect

    found = ClientBench()
    server = Server(db.url)
    try:
        with connect(server.url) as remote, httpx.Client(base_url=server.url) as raw:
            for asset in (SET_ASSET, GET_ASSET, COUNTER):
                remote.activate(asset)
            set_state, get_state = remote.asset(SET_ASSET), remote.asset(GET_ASSET)
            ids = {info.asset: info.id for info in remote.assets()}
            set_id, get_id = ids[SET_ASSET], ids[GET_ASSET]
            for key in KEYS:
                get_state.set(key, value_for(0))

            def client_set(i: int) -> None:
                set_state.set(KEYS[i % len(KEYS)], value_for(i))

            def raw_set(i: int) -> None:
                body = orjson.dumps({"value": value_for(i)})
                response = raw.put(
                    f"/api/v2/assets/{set_id}/state-store/{KEYS[i % len(KEYS)]}",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                if response.status_code != 204:
                    raise RuntimeError(f"raw PUT answered {response.status_code}: {response.text}")

            def client_get(i: int) -> object:
                return get_state.get(KEYS[i % len(KEYS)])

            def raw_get(i: int) -> object:
                response = raw.get(f"/api/v2/assets/{get_id}/state-store/{KEYS[i % len(KEYS)]}")
                if response.status_code != 200:
                    raise RuntimeError(f"raw GET answered {response.status_code}: {response.text}")
                return response.json()["value"]

            for i in range(warmup):
                client_set(i), raw_set(i), client_get(i), raw_get(i)
            sets = interleave({"client": _timed(set_ops, client_set), "raw": _timed(set_ops, raw_set)}, reps)
            gets = interleave({"client": _timed(get_ops, client_get), "raw": _timed(get_ops, raw_get)}, reps)
            found.samples = {
                "set client": sets["client"],
                "set raw": sets["raw"],
                "get client": gets["client"],
                "get raw": gets["raw"],
            }
            _updates(remote, server.url, update_ops, reps, found)
    finally:
        server.stop()
    return found


def _updates(remote: Any, url: str, ops: int, reps: int, found: ClientBench) -> None:
    counter = remote.asset(COUNTER)
    context = multiprocessing.get_context("spawn")
    with context.Pool(UPDATERS) as pool:
        pool.map(_warm, [url] * UPDATERS)
        for _ in range(reps):
            before = counter.get("n", 0)
            started = perf_counter()
            conflicts = pool.map(_update, [(url, ops)] * UPDATERS)
            elapsed = perf_counter() - started
            done = UPDATERS * ops
            found.lost_updates += abs(counter.get("n", 0) - before - done)
            found.retries_per_op.append(sum(conflicts) / done)
            found.updates_per_second.append(done / elapsed)


def _warm(url: str) -> None:
    from eventstore.client import connect

    with connect(url) as remote:
        remote.is_active(COUNTER)


def _update(args: tuple[str, int]) -> int:
    """`ops` updates of one key through a client of its own; returns the 412 conflicts it met."""
    from eventstore.client import connect

    url, ops = args
    with connect(url) as remote:
        state = remote.asset(COUNTER)
        for _ in range(ops):
            state.update("n", lambda n: n + 1, default=0)
        conflicts: int = remote.stats.conflicts
        return conflicts
