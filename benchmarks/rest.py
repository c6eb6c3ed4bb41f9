"""The REST server over loopback: eventstore's GET and PUT of a key against a no-op route on the same
ASGI server and against the Python API on the same database; one client and 16 concurrent clients; and
whether a slow database call holds up other requests (the event loop).

The server is a real uvicorn process (`python -c "...serve_for_bench(...)"`) on 127.0.0.1, serving
`eventstore.server.create_app(url)` plus routes only this benchmark adds: `GET /bench/noop` (a tiny
JSON answer) and `PUT /bench/noop` (reads the body, answers 204), both `async def` with no
dependency: the floor of uvicorn + FastAPI on this machine; and `GET /bench/read/{asset_id}/{key}`,
which reads the key once (`Store.entry`) in a worker thread, as every database call of the server is
made, with no token check and no validation, and answers the same tiny JSON: the floor of any route
that reads the database without blocking the event loop. The access log is off (as behind a load
balancer that logs); the database has one write-scope token, sent by every request, so each eventstore
request looks its token up as in production.

Clients: one `httpx.Client` (keep-alive) for the single-client latencies; 16 threads with a client
each for the throughput. Client and server share the machine's cores, so req/s is a floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
from fastapi import Request, Response

from benchmarks.databases import BenchDatabase
from benchmarks.stats import interleave
from eventstore import Asset, open_store
from eventstore.tokens import create_token

ASSET = Asset("bench-rest")
OTHER = Asset("bench-rest-other")
KEYS = tuple(f"key-{i}" for i in range(10))
CLIENTS = 16
BLOCKED_WRITES = 8


def value_for(i: int) -> dict[str, Any]:
    return {"watermark": "2024-06-01T00:00:00+00:00", "rows": i, "ok": True}


async def noop_get() -> Response:
    return Response(b'{"value":1}', media_type="application/json")


async def noop_put(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


async def read_floor(request: Request) -> Response:
    store = request.app.state.store
    asset_id, key = int(request.path_params["asset_id"]), request.path_params["key"]
    await asyncio.get_running_loop().run_in_executor(None, store.entry, asset_id, key)
    return Response(b'{"value":1}', media_type="application/json")


def serve_for_bench(url: str, port: int) -> None:
    """The benchmark's server process: eventstore's app plus the benchmark's routes, on 127.0.0.1:port."""
    import uvicorn

    from eventstore.server import create_app

    app = create_app(url)
    app.add_api_route("/bench/noop", noop_get, methods=["GET"], include_in_schema=False)
    app.add_api_route("/bench/noop", noop_put, methods=["PUT"], include_in_schema=False)
    app.add_route("/bench/read/{asset_id}/{key}", read_floor, methods=["GET"], include_in_schema=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Server:
    base: str
    pid: int


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far; 0 where /proc does not say (not Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running_server(url: str) -> Iterator[Server]:
    """A benchmark server process for `url`, once `/health` answers."""
    port = _free_port()
    code = f"from benchmarks.rest import serve_for_bench; serve_for_bench({url!r}, {port})"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the benchmark server did not start: {process.stderr.read()[-500:]}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield Server(base, process.pid)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@dataclass
class RestMeasured:
    """µs per request (one client), the server's CPU µs per request (one client), requests per second
    (16 clients) and event-loop latencies (ms)."""

    latency: dict[str, list[float]] = field(default_factory=dict)
    server_cpu: dict[str, list[float]] = field(default_factory=dict)
    throughput: dict[str, list[float]] = field(default_factory=dict)
    loop_ms: dict[str, list[float]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _batch(
    op: Callable[[int], object], ops: int, counter: Iterator[int], cpu: tuple[int, list[float]] | None = None
) -> Callable[[], float]:
    """A repetition: `ops` calls; µs per call. With `cpu` (a pid and a list), also appends the CPU µs
    that process spent per call (the server's cost, which other load on the machine barely changes)."""

    def run() -> float:
        used = cpu_seconds(cpu[0]) if cpu else 0.0
        start = perf_counter()
        for _ in range(ops):
            op(next(counter))
        elapsed = perf_counter() - start
        if cpu:
            cpu[1].append((cpu_seconds(cpu[0]) - used) / ops * 1e6)
        return elapsed / ops * 1e6

    return run


def measure_rest(
    db: BenchDatabase, *, ops: int, reps: int, seconds: float, probes: int = 50, warmup: int = 50
) -> RestMeasured:
    """Everything this module measures, on one database (see the module doc)."""
    found = RestMeasured()
    with open_store(db.url) as store:
        for asset in (ASSET, OTHER):
            store.activate(asset)
            store.asset(asset).set_many({key: value_for(n) for n, key in enumerate(KEYS)})
        asset_id = {a.name: a.id for a in store.assets()}[ASSET.name]
        other_id = {a.name: a.id for a in store.assets()}[OTHER.name]
        token = create_token(store, "bench", "write")
        headers = {"Authorization": f"Bearer {token}"}
        state = store.asset(ASSET)
        with running_server(db.url) as server, httpx.Client(base_url=server.base, headers=headers) as client:
            base = server.base
            key_url = f"/api/v2/assets/{asset_id}/state-store/"

            def check(response: httpx.Response, status: int, what: str) -> None:
                if response.status_code != status:
                    found.problems.append(f"{what}: {response.status_code} {response.text[:100]}")

            def rest_get(i: int) -> None:
                check(client.get(key_url + KEYS[i % len(KEYS)]), 200, "GET")

            def rest_put(i: int) -> None:
                check(client.put(key_url + KEYS[i % len(KEYS)], json={"value": value_for(i)}), 204, "PUT")

            def noop_get(i: int) -> None:
                check(client.get("/bench/noop"), 200, "no-op GET")

            def read_get(i: int) -> None:
                check(client.get(f"/bench/read/{asset_id}/{KEYS[i % len(KEYS)]}"), 200, "read floor GET")

            def noop_put(i: int) -> None:
                check(client.put("/bench/noop", json={"value": value_for(i)}), 204, "no-op PUT")

            def api_get(i: int) -> None:
                state.get(KEYS[i % len(KEYS)])

            def api_put(i: int) -> None:
                state.set(KEYS[i % len(KEYS)], value_for(i))

            if client.get(key_url + KEYS[0]).json()["value"] != value_for(0):
                found.problems.append("REST GET read a wrong value")
            variants: dict[str, Callable[[int], object]] = {
                "noop get": noop_get,
                "read get": read_get,
                "rest get": rest_get,
                "api get": api_get,
                "noop put": noop_put,
                "rest put": rest_put,
                "api put": api_put,
            }
            counter = itertools.count()
            for op in variants.values():
                _batch(op, warmup, counter)()
            found.server_cpu = {name: [] for name in variants if not name.startswith("api")}
            batches = {
                name: _batch(
                    op,
                    ops,
                    counter,
                    (server.pid, found.server_cpu[name]) if name in found.server_cpu else None,
                )
                for name, op in variants.items()
            }
            found.latency = interleave(batches, reps)

            concurrent = {
                "noop get": lambda c, i: c.get("/bench/noop"),
                "rest get": lambda c, i: c.get(key_url + KEYS[i % len(KEYS)]),
                "rest put": lambda c, i: c.put(key_url + KEYS[i % len(KEYS)], json={"value": value_for(i)}),
            }
            with contextlib.ExitStack() as stack:
                clients = [
                    stack.enter_context(httpx.Client(base_url=base, headers=headers, timeout=30))
                    for _ in range(CLIENTS)
                ]
                for c in clients:
                    c.get("/health")  # connect before the clock starts
                found.throughput = interleave(
                    {
                        name: _throughput(clients, call, seconds, found.problems)
                        for name, call in concurrent.items()
                    },
                    reps,
                )
            found.loop_ms = _event_loop(db, base, headers, asset_id, other_id, probes, found.problems)
    return found


def _throughput(
    clients: list[httpx.Client], call: Callable[[Any, int], Any], seconds: float, problems: list[str]
) -> Callable[[], float]:
    """A repetition: one thread per client (each its own keep-alive connection), calling for `seconds`."""

    def run() -> float:
        start = threading.Barrier(len(clients) + 1)
        counts = [0] * len(clients)
        stop_at = [float("inf")]

        def work(n: int) -> None:
            client = clients[n]
            start.wait()
            i = n * 1_000_000
            while perf_counter() < stop_at[0]:
                response = call(client, i)
                if response.status_code >= 300:
                    problems.append(f"concurrent: {response.status_code} {response.text[:100]}")
                i += 1
                counts[n] += 1

        threads = [threading.Thread(target=work, args=(n,)) for n in range(len(clients))]
        for thread in threads:
            thread.start()
        stop_at[0] = perf_counter() + seconds + 60  # until the barrier, so no thread stops early
        start.wait()
        began = perf_counter()
        stop_at[0] = began + seconds
        for thread in threads:
            thread.join()
        return sum(counts) / (perf_counter() - began)

    return run


@contextlib.contextmanager
def _write_lock_held(db: BenchDatabase, asset_id: int) -> Iterator[None]:
    """Hold what a write to the asset waits for: SQLite's write lock, or the asset's row lock."""
    conn = db.raw_connect()
    try:
        cursor = conn.cursor()
        if db.kind == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        else:
            cursor.execute("BEGIN")
            cursor.execute(f"SELECT version FROM es_assets WHERE id = {int(asset_id)} FOR UPDATE")
            cursor.fetchall()
        yield
        cursor.execute("ROLLBACK")
    finally:
        conn.close()


def _event_loop(
    db: BenchDatabase,
    base: str,
    headers: dict[str, str],
    asset_id: int,
    other_id: int,
    probes: int,
    problems: list[str],
) -> dict[str, list[float]]:
    """Latency (ms) of `GET /health` and of a GET of another asset's key, idle and while BLOCKED_WRITES
    PUTs wait for a lock this benchmark holds: equal if no database call runs on the event loop."""

    def probe(client: httpx.Client) -> tuple[list[float], list[float]]:
        health, other = [], []
        for _ in range(probes):
            started = perf_counter()
            client.get("/health")
            health.append((perf_counter() - started) * 1e3)
            started = perf_counter()
            client.get(f"/api/v2/assets/{other_id}/state-store/{KEYS[0]}")
            other.append((perf_counter() - started) * 1e3)
        return health, other

    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        probe(client)  # warm up
        idle_health, idle_other = probe(client)
        with _write_lock_held(db, asset_id):
            writes: list[threading.Thread] = []
            statuses: list[int] = []

            def write(n: int) -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
                    url = f"/api/v2/assets/{asset_id}/state-store/blocked-{n}"
                    statuses.append(c.put(url, json={"value": n}).status_code)

            for n in range(BLOCKED_WRITES):
                writes.append(threading.Thread(target=write, args=(n,)))
                writes[-1].start()
            time.sleep(0.3)
            busy_health, busy_other = probe(client)
            if statuses:
                problems.append("event loop: the writes did not wait for the lock")
        for thread in writes:
            thread.join()
        if statuses != [204] * BLOCKED_WRITES:
            problems.append(f"event loop: blocked writes answered {statuses}")
    return {
        "idle health": idle_health,
        "idle other": idle_other,
        "busy health": busy_health,
        "busy other": busy_other,
    }
