"""A writer of the kill -9 run, killed and restarted by the parent (`reliability.kill`) hundreds of times.

`python -m reliability.kill_worker local|remote URL JOURNAL NAME SEED THINK`: opens the store
(`open_store(URL)`, or `eventstore.client.connect(URL)` for a REST server) and loops until SIGKILLed over
three operations, pausing a random 0..THINK seconds between two (as a pipeline's task does between its
writes; it also leaves the CPU to the processes being restarted):

- `update`: +1 on COUNTER's key "n" (the acknowledged result is the new value);
- `set_many`: MANY's keys a, b, c all set to the operation's id in one call (a half-applied one would
  leave the id on some keys only);
- `restore`: MANY rewound to one of its recent positions (the acknowledged result: how many changes).

Each is journaled before and after (reliability.kill_journal). A StoreUnavailableError (the REST server
is down, say) is journaled and the writer carries on after a short pause, as a worker would; any other
exception ends the process with a traceback, which the parent reports as a failure. A writer whose parent
has gone (the run was interrupted) stops by itself.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from eventstore import Asset, Writer, open_store
from eventstore.errors import OutcomeUnknownError, StoreUnavailableError
from reliability.kill_journal import DAG_ID, Journal

COUNTER = Asset("kill9-counter")
MANY = Asset("kill9-many")
MANY_KEYS = ("a", "b", "c")
KINDS = ("update", "set_many", "restore")
WEIGHTS = (5, 4, 1)


def perform(store: Any, journal: Journal, op: str, kind: str, rng: random.Random) -> str:
    """One operation with its journal lines; StoreUnavailableError is journaled, not raised. Returns the
    outcome: "A" (acknowledged), "U" (unknown), "F" (not applied) or "" (a restore with no target)."""
    writer = Writer.task(DAG_ID, op, kind)
    try:
        begun: dict[str, Any] = {"t": "B", "op": op, "kind": kind}
        if kind == "restore":
            recent = store.history(MANY, newest_first=True, limit=30)
            if not recent:
                return ""
            begun["target"] = rng.choice(recent).position
        journal.write(begun)
        result: Any = None
        if kind == "update":
            result = store.asset(COUNTER, writer).update("n", lambda n: n + 1, default=0)
        elif kind == "set_many":
            store.asset(MANY, writer).set_many(dict.fromkeys(MANY_KEYS, op))
        else:
            result = len(store.restore(MANY, position=begun["target"], writer=writer))
    except OutcomeUnknownError:
        journal.write({"t": "U", "op": op}, sync=True)
        return "U"
    except StoreUnavailableError:
        journal.write({"t": "F", "op": op}, sync=True)
        time.sleep(rng.uniform(0.02, 0.2))
        return "F"
    journal.write({"t": "A", "op": op, "result": result}, sync=True)
    return "A"


def run(mode: str, url: str, journal_path: Path, name: str, seed: int, think: float) -> None:
    rng = random.Random(seed)
    journal = Journal(journal_path)
    if mode == "remote":
        from eventstore.client import connect

        store: Any = connect(url, timeout=5.0, retries=3)
    else:
        store = open_store(url)
    journal.write({"t": "R"})
    parent, sequence = os.getppid(), 0
    while os.getppid() == parent:  # an orphan stops: nobody would kill it any more
        sequence += 1
        perform(store, journal, f"{name}.{sequence}", rng.choices(KINDS, WEIGHTS)[0], rng)
        time.sleep(rng.uniform(0, think))


if __name__ == "__main__":
    mode, url, journal_path, name, seed, think = sys.argv[1:7]
    run(mode, url, Path(journal_path), name, int(seed), float(think))
