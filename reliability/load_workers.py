"""The client processes of the load run (reliability/load.py), one role each, each its own interpreter.

- `task_writer`: Airflow-like tasks writing watermarks through the HTTP client
  (`eventstore.client.connect`, `Writer.task`): on a random asset of the pool, `set` (one PUT),
  `update` of a counter (GET with ETag, then PATCH with If-Match, again on 412) or `set_many` (a PATCH).
  The client is made with `retries=0`, so a 503 or a dropped connection reaches the tally as an error
  instead of being retried away. It counts its successful increments per asset, for the
  no-lost-update check.
- `history_reader`: polls `GET /api/v2/assets/{id}/state-history` (a key's last 20 changes, or the
  asset's last 50) with raw httpx, as the web page and dashboards do.
- `feed_follower`: follows `GET /api/v2/state-events?after=` from 0 as a tailing consumer does, checks
  that each page continues strictly after the last, and reports every position it saw, so the parent
  can check it missed no event.
- `compactor`: every few seconds activates a fresh asset, writes to it, deactivates it and compacts
  (`POST /api/v2/state-store/compact`; the server's grace is 0), so each compaction has work to do while
  the others load the server.

Every role times each call into a `Tally` per route kind (latencies in ms, errors by kind) and puts it
on the result queue when the parent sets `stop`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import httpx

from eventstore import Asset, Writer

HISTORY_LIMITS = (
    {"key": "watermark", "newest_first": "true", "limit": 20},
    {"newest_first": "true", "limit": 50},
)
FEED_PAGE = 500


@dataclass
class Tally:
    """One route kind as one worker saw it."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class WorkerResult:
    """What one worker process measured and saw."""

    role: str
    index: int
    tallies: dict[str, Tally] = field(default_factory=dict)
    requests: int = 0
    conflicts: int = 0
    """412 answers to conditional writes (decided again by the client: normal under contention)."""
    retries: int = 0
    increments: dict[str, int] = field(default_factory=dict)
    """Writers: successful `update(+1)`s of the counter, per asset name."""
    unknown_increments: dict[str, int] = field(default_factory=dict)
    """Writers: `update`s whose outcome is unknown (OutcomeUnknownError): each may or may not count."""
    positions: list[int] = field(default_factory=list)
    """Feed followers: every position seen."""
    compacted: list[str] = field(default_factory=list)
    """The compactor: the names of the assets its compactions reported."""
    churned: list[str] = field(default_factory=list)
    """The compactor: the assets it deactivated for compaction."""
    fatal: str | None = None
    """An exception that ended the worker early (then the run fails)."""

    def tally(self, route: str) -> Tally:
        return self.tallies.setdefault(route, Tally())


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    url: str
    token: str
    assets: tuple[str, ...]
    asset_ids: tuple[int, ...]
    compact_every: float
    seed: int


def _error(error: BaseException) -> str:
    first = str(error).splitlines()[0][:160] if str(error) else ""
    return f"{type(error).__name__}: {first}"


def _timed(result: WorkerResult, route: str, call: Any, *args: Any) -> Any:
    """Run `call(*args)`, append its latency to the route's tally, record an exception as an error of that
    route (and return None then)."""
    tally = result.tally(route)
    started = time.perf_counter()
    try:
        value = call(*args)
    except Exception as error:
        tally.errors[_error(error)] += 1
        return None
    finally:
        tally.latencies_ms.append((time.perf_counter() - started) * 1e3)
    return value


def _checked(response: httpx.Response, expected: int) -> httpx.Response:
    if response.status_code != expected:
        raise UnexpectedStatus(response.status_code, response.text[:120])
    return response


def _get(http: httpx.Client, path: str, params: dict[str, Any]) -> httpx.Response:
    return _checked(http.get(path, params=params), 200)


def _compact(http: httpx.Client) -> httpx.Response:
    return _checked(http.post("/api/v2/state-store/compact"), 200)


class UnexpectedStatus(Exception):
    """The server answered with a status the route should not give here."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status} {body}")


def run_worker(
    role: str, index: int, config: WorkerConfig, ready: Queue[Any], go: Event, stop: Event, done: Event
) -> None:
    """A process's entry point: set up, say ready, wait for `go`, work until `stop`, report."""
    result = WorkerResult(role, index)
    rng = random.Random(config.seed * 1000 + index)
    try:
        ROLES[role](config, result, rng, ready, go, stop, done)
    except Exception as error:  # reported, so the parent fails the run with the reason
        result.fatal = _error(error)
        ready.put(("ready", role, index))  # in case it failed before saying so: the parent must not wait
    ready.put(("result", result))


def task_writer(
    config: WorkerConfig,
    result: WorkerResult,
    rng: random.Random,
    ready: Any,
    go: Event,
    stop: Event,
    _: Event,
) -> None:
    from eventstore.client import connect

    with connect(config.url, token=config.token, retries=0) as remote:
        assets = [Asset(name) for name in config.assets]
        for asset in assets:
            remote.is_active(asset)  # resolve the ids before the clock starts
        ready.put(("ready", "writer", result.index))
        go.wait()
        run = 0
        while not stop.is_set():
            run += 1
            asset = rng.choice(assets)
            writer = Writer.task(
                dag_id=f"dag-{asset.name}", run_id=f"run-{result.index}-{run}", task_id="load"
            )
            state = remote.asset(asset, writer=writer)
            now = datetime.now(UTC).isoformat()
            kind = run % 4
            if kind in (0, 1):
                _timed(result, "set", state.set, "watermark", now)
            elif kind == 2:
                _update(result, state, asset)
            else:
                summary = {"rows": rng.randrange(10_000), "finished_at": now, "run": run}
                _timed(result, "set_many", state.set_many, {"watermark": now, "summary": summary})
        result.requests = remote.stats.requests
        result.conflicts = remote.stats.conflicts
        result.retries = remote.stats.retries


def _update(result: WorkerResult, state: Any, asset: Asset) -> None:
    from eventstore import OutcomeUnknownError

    tally = result.tally("update")
    started = time.perf_counter()
    try:
        state.update("counter", lambda n: n + 1, default=0)
    except OutcomeUnknownError as error:
        result.unknown_increments[asset.name] = result.unknown_increments.get(asset.name, 0) + 1
        tally.errors[_error(error)] += 1
    except Exception as error:
        tally.errors[_error(error)] += 1
    else:
        result.increments[asset.name] = result.increments.get(asset.name, 0) + 1
    finally:
        tally.latencies_ms.append((time.perf_counter() - started) * 1e3)


def history_reader(
    config: WorkerConfig,
    result: WorkerResult,
    rng: random.Random,
    ready: Any,
    go: Event,
    stop: Event,
    _: Event,
) -> None:
    headers = {"Authorization": f"Bearer {config.token}"}
    with httpx.Client(base_url=config.url, headers=headers, timeout=10) as http:
        _checked(http.get("/api/v2/assets", params={"limit": 1}), 200)
        ready.put(("ready", "history", result.index))
        go.wait()
        while not stop.is_set():
            asset_id = rng.choice(config.asset_ids)
            params = rng.choice(HISTORY_LIMITS)
            path = f"/api/v2/assets/{asset_id}/state-history"
            _timed(result, "history", _get, http, path, params)
            result.requests += 1


def feed_follower(
    config: WorkerConfig,
    result: WorkerResult,
    rng: random.Random,
    ready: Any,
    go: Event,
    stop: Event,
    done: Event,
) -> None:
    """Follows the feed until `stop`, then on until `done` (the writers have finished) and to its end."""
    headers = {"Authorization": f"Bearer {config.token}"}
    after = 0
    with httpx.Client(base_url=config.url, headers=headers, timeout=10) as http:
        _checked(http.get("/api/v2/assets", params={"limit": 1}), 200)
        ready.put(("ready", "feed", result.index))
        go.wait()
        draining = False
        while True:
            if stop.is_set() and done.is_set():
                draining = True
            params = {"after": after, "limit": FEED_PAGE}
            response = _timed(result, "feed", _get, http, "/api/v2/state-events", params)
            result.requests += 1
            if response is None:
                time.sleep(0.1)
                continue
            body = response.json()
            positions = [event["position"] for event in body["events"]]
            if any(p <= q for p, q in zip(positions, [after, *positions], strict=False)):
                result.tally("feed").errors["feed page out of order"] += 1
            result.positions += positions
            after = body["last_position"]
            if len(positions) < FEED_PAGE:
                if draining:
                    return
                time.sleep(0.05)  # caught up: poll again soon, as a live tail does


def compactor(
    config: WorkerConfig,
    result: WorkerResult,
    rng: random.Random,
    ready: Any,
    go: Event,
    stop: Event,
    _: Event,
) -> None:
    from eventstore.client import connect

    headers = {"Authorization": f"Bearer {config.token}"}
    with (
        connect(config.url, token=config.token, retries=0) as remote,
        httpx.Client(base_url=config.url, headers=headers, timeout=60) as http,
    ):
        _checked(http.get("/api/v2/assets", params={"limit": 1}), 200)
        ready.put(("ready", "compactor", result.index))
        go.wait()
        cycle = 0
        while not stop.wait(config.compact_every):
            cycle += 1
            asset = Asset(f"churn-{cycle}")
            writer = Writer.task(dag_id="churn", run_id=f"run-{cycle}", task_id="load")
            _timed(result, "activate", remote.activate, asset)
            values = {f"key-{n}": {"n": n, "cycle": cycle} for n in range(20)}
            _timed(result, "set_many", remote.asset(asset, writer=writer).set_many, values)
            _timed(result, "deactivate", remote.deactivate, asset)
            result.churned.append(asset.name)
            answer = _timed(result, "compact", _compact, http)
            result.requests += 1
            if answer is not None:
                result.compacted += [a["name"] for a in answer.json()["assets"]]
        result.requests += remote.stats.requests
        result.conflicts += remote.stats.conflicts
        result.retries += remote.stats.retries


ROLES = {"writer": task_writer, "history": history_reader, "feed": feed_follower, "compactor": compactor}
