"""Snapshots: an asset's state every `SNAPSHOT_INTERVAL` versions, so as-of never folds a whole stream.

A snapshot row (es_snapshots) holds the fold of one asset's stream right after one version, as a JSON
object mapping each key to its value's JSON text exactly as the log stores it. It is an optimisation,
never the truth: as-of starts from the newest snapshot at or before the version it wants and folds the
few events after it; `projections.rebuild` recomputes every snapshot from the log and `verify` reports
one that disagrees with it.

`SnapshotProjection` keeps them inline: it runs after the current-state view in the appending
transaction, and when a batch of events crosses a multiple of the interval it copies the view's rows
(the state right after the batch's last event) into a snapshot at that event's version. So between two
snapshots lie at most `SNAPSHOT_INTERVAL` versions plus one batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from eventstore import schema
from eventstore.dialects import Backend
from eventstore.events import NewEvent
from eventstore.prepared import Connectable, Prepared
from eventstore.single_set import SetPart
from projections.current_state import CurrentStateView

SNAPSHOT_INTERVAL = 1000
"""Versions between snapshots. Read at every use, so tests can lower it.

Costs: every `SNAPSHOT_INTERVAL` versions one read of the asset's view rows and one row written; as-of
then folds at most this many events (plus one batch) after the snapshot it starts from.
"""

logger = logging.getLogger("eventstore")

_snapshots = schema.snapshots
_assets = schema.assets


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of one asset right after `version`: JSON texts by key."""

    version: int
    state: dict[str, str]


def encode_state(state: Mapping[str, str]) -> str:
    """The snapshot text of a state (JSON texts by key), keys sorted."""
    return orjson.dumps(dict(sorted(state.items()))).decode()


def decode_state(text: str) -> dict[str, str] | None:
    """The state a snapshot text holds, or None if it is not a JSON object of strings."""
    try:
        state = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(state, dict) or not all(isinstance(value, str) for value in state.values()):
        return None
    return state


def snapshot_due(first_version: int, last_version: int, interval: int) -> bool:
    """True if the versions first..last (inclusive) include a multiple of `interval`."""
    return last_version // interval > (first_version - 1) // interval


def latest_snapshot(conn: Connection, asset_id: int, *, at_or_before: int, after: int) -> Snapshot | None:
    """The newest readable snapshot with `after` < version <= `at_or_before`.

    Snapshots at or before `after` (the asset's last compacted version) describe a stream that no longer
    exists and are never used. An unreadable snapshot is skipped with a warning; the next older one is
    used instead (`rebuild_projections` replaces it).
    """
    query = (
        sa.select(_snapshots.c.version, _snapshots.c.state)
        .where(
            _snapshots.c.asset_id == asset_id,
            _snapshots.c.version > after,
            _snapshots.c.version <= sa.bindparam("upto"),
        )
        .order_by(_snapshots.c.version.desc())
        .limit(1)
    )
    upto = at_or_before
    while upto > after:
        row = conn.execute(query, {"upto": upto}).first()
        if row is None:
            return None
        state = decode_state(row.state)
        if state is not None:
            return Snapshot(row.version, state)
        logger.warning(
            "Snapshot of asset id %d at version %d is unreadable and was skipped; run `eventstore rebuild`",
            asset_id,
            row.version,
        )
        upto = row.version - 1
    return None


class SnapshotProjection:
    """Keeps es_snapshots inline. Register it after `view`: it copies the view's rows."""

    def __init__(self, view: CurrentStateView, backend: Backend, dialect: Dialect) -> None:
        self._view = view
        # An upsert, not an insert: a stale row must never make a write fail, as snapshots are not the truth.
        self._upsert = Prepared(backend.upsert(_snapshots, keys=["asset_id", "version"]), dialect)

    def apply(self, conn: Connectable, events: Sequence[NewEvent]) -> None:
        """Take a snapshot of each asset whose events in this batch cross a multiple of the interval."""
        rows = [
            {
                "asset_id": asset_id,
                "version": last.version,
                "state": encode_state(self._view.read(conn, asset_id)),
            }
            for asset_id, first, last in _version_ranges(events)
            if snapshot_due(first.version, last.version, SNAPSHOT_INTERVAL)
        ]
        self.write(conn, rows)

    def single_set_part(self) -> SetPart:
        """In a single-statement set: only when the new version is not due for a snapshot (which needs
        the view's rows after the set: the log's transaction takes it)."""
        due = (_assets.c.version + 1) % sa.bindparam("snapshot_interval") == 0
        return SetPart(only_if=sa.not_(due), params=lambda: {"snapshot_interval": SNAPSHOT_INTERVAL})

    def write(self, conn: Connectable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace snapshot rows (`asset_id`, `version`, `state`)."""
        if rows:
            self._upsert.run_many(conn, rows)


def _version_ranges(events: Iterable[NewEvent]) -> list[tuple[int, NewEvent, NewEvent]]:
    """(asset id, first event, last event) for each asset's run of events in the batch."""
    ranges = []
    for asset_id, run in groupby(events, key=lambda event: event.asset_id):
        batch = list(run)
        ranges.append((asset_id, batch[0], batch[-1]))
    return ranges
