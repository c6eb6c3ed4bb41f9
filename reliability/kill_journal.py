"""The journal of the kill -9 run: what each writer began, and what it was told happened.

A writer appends one JSON line per step to its own file, with `os.write` on an O_APPEND descriptor (no
Python buffer a SIGKILL could lose):

- `{"t": "R"}` once the writer has opened its store (the parent kills only ready writers);
- `{"t": "B", "op": ID, "kind": K, ...}` before a call (restore: with its `target` position);
- `{"t": "A", "op": ID, "result": ...}` after the call returned, then fsync: an acknowledged write;
- `{"t": "U", "op": ID}` for OutcomeUnknownError (may or may not have landed);
- `{"t": "F", "op": ID}` for StoreUnavailableError (nothing may have landed).

Every operation's writer is `Writer.task(DAG_ID, run_id=ID, task_id=K)`, so its events are found in the
log by their run_id. A line cut short by a kill is ignored: it was never acknowledged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DAG_ID = "kill9"


class Journal:
    """One writer's journal file, append-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, entry: dict[str, Any], *, sync: bool = False) -> None:
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())
        if sync:
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def is_ready(path: Path) -> bool:
    """Whether the writer of this journal has opened its store (its first line is written)."""
    try:
        with path.open("rb") as file:
            return file.readline().endswith(b"\n")
    except FileNotFoundError:
        return False


def in_flight(path: Path) -> bool:
    """Whether the journal's writer was inside a call: its last complete line is "begun"."""
    try:
        lines = path.read_bytes().split(b"\n")[:-1]  # the part after the last newline is cut short
    except FileNotFoundError:
        return False
    return bool(lines) and json.loads(lines[-1])["t"] == "B"


@dataclass
class Outcomes:
    """Every journal of a run, merged: operations by id."""

    begun: dict[str, dict[str, Any]] = field(default_factory=dict)
    acked: dict[str, Any] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)

    def kinds(self, kind: str) -> set[str]:
        return {op for op, entry in self.begun.items() if entry["kind"] == kind}


def read_journals(paths: Iterable[Path]) -> Outcomes:
    outcomes = Outcomes()
    for path in paths:
        for line in path.read_text().splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # cut short by the kill: never acknowledged
            entry = json.loads(line)
            if entry["t"] == "B":
                outcomes.begun[entry["op"]] = entry
            elif entry["t"] == "A":
                outcomes.acked[entry["op"]] = entry["result"]
            elif entry["t"] == "U":
                outcomes.unknown.add(entry["op"])
            elif entry["t"] == "F":
                outcomes.failed.add(entry["op"])
    return outcomes
