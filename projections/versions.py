"""Finding a version of one asset's stream by position or by time, through the (asset_id, version) key.

Within a stream, positions grow with versions (a writer holds the asset's row lock from claiming its
versions until it commits, and takes its positions under it), and `recorded_at` never decreases with
version (the claim stamps no earlier than the stream's last event). So "the last version at or before a
position" and "the last version recorded at or before a time" are searches over an ordered column, and
the unique (asset_id, version) key answers them without an index of their own: a k-ary search that
fetches the column for up to `PROBES` evenly spaced versions per query (four queries for a million
versions). That is why es_events has no (asset_id, recorded_at) index, which every write would pay for.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema

PROBES = 32
"""Versions probed per query."""

_events = schema.events


def _probe(column: sa.Column[Any]) -> sa.Select[Any]:
    return sa.select(_events.c.version, column).where(
        _events.c.asset_id == sa.bindparam("asset_id"),
        _events.c.version.in_(sa.bindparam("versions", expanding=True)),
    )


# Built once per column (SQLAlchemy then compiles each once).
_PROBE_BY_COLUMN = {column.name: _probe(column) for column in (_events.c.position, _events.c.recorded_at)}


def last_version_at_or_before(
    conn: Connection,
    asset_id: int,
    column: sa.Column[Any],
    bound: Any,
    *,
    base: int,
    head: int,
    inclusive: bool = True,
) -> int:
    """The last version in base+1..head whose `column` (position or recorded_at) is <= `bound` (< with
    `inclusive=False`); `base` if there is none.

    Versions that no longer exist (compacted meanwhile) end the search where it stands.
    """
    probe = _PROBE_BY_COLUMN[column.name]
    # Invariant: version `low` is at or before the bound (or is the base); versions >= `high` are after.
    low, high = base, head + 1
    while high - low > 1:
        step = max(1, (high - low) // PROBES)
        versions = sorted({*range(low + step, high, step), high - 1})
        narrowed = False
        for version, value in conn.execute(probe, {"asset_id": asset_id, "versions": versions}):
            before = value <= bound if inclusive else value < bound
            if before and version > low:
                low, narrowed = version, True
            elif not before and version < high:
                high, narrowed = version, True
        if not narrowed:
            break
    return low


def position_of(conn: Connection, asset_id: int, version: int) -> int | None:
    """The position of one version of the stream (None if it does not exist)."""
    row = conn.execute(_PROBE_BY_COLUMN["position"], {"asset_id": asset_id, "versions": [version]}).first()
    return None if row is None else int(row.position)
