"""As-of: an asset's state right after the last of its events at or before a position or a time.

How a point becomes a state, without folding the whole stream:

1. The point becomes a stream version: the last version at or before the position, or recorded at or
   before the time, found in a handful of queries through the (asset_id, version) key
   (projections.versions).
2. The newest snapshot at or before that version (projections.snapshots) gives a starting state.
3. The events after the snapshot, up to that version, are folded onto it (eventstore.events.fold).

Compaction removes an asset's events up to a version and records the highest global position assigned
at that moment. A point at or before that position (or, by time, before the first surviving event and
no later than the compaction) cannot be answered any more: CompactedError, giving the compaction date.
After it the surviving events are folded from the empty state.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import codec, schema
from eventstore.assets import Asset
from eventstore.codec import JSON
from eventstore.compaction import CompactionMark, compacted_error
from eventstore.errors import AssetNotFoundError
from eventstore.events import Op, fold
from projections import versions
from projections.snapshots import latest_snapshot

_events = schema.events
_assets = schema.assets
_compactions = schema.compactions


# Built once (SQLAlchemy then compiles each once). One round trip finds the asset, its stream head, the
# head event's position and its latest compaction.
_latest = _compactions.alias("latest")
_stream = (
    sa.select(
        _assets.c.id,
        _assets.c.version,
        sa.select(_events.c.position)
        .where(_events.c.asset_id == _assets.c.id, _events.c.version == _assets.c.version)
        .scalar_subquery()
        .label("head_position"),
        _compactions.c.last_version,
        _compactions.c.position,
        _compactions.c.compacted_at,
    )
    .select_from(
        _assets.outerjoin(
            _compactions,
            sa.and_(
                _compactions.c.asset_id == _assets.c.id,
                _compactions.c.last_version
                == sa.select(sa.func.max(_latest.c.last_version))
                .where(_latest.c.asset_id == _assets.c.id)
                .scalar_subquery(),
            ),
        )
    )
    .where(_assets.c.identity_hash == sa.bindparam("identity_hash"))
)
_events_between = (
    sa.select(_events.c.op, _events.c.key, _events.c.value)
    .where(
        _events.c.asset_id == sa.bindparam("asset_id"),
        _events.c.version > sa.bindparam("after"),
        _events.c.version <= sa.bindparam("upto"),
    )
    .order_by(_events.c.version)
)


def check_point(at: object, position: object) -> None:
    """Raise ValueError unless exactly one of `at` (an aware datetime) and `position` (an int >= 0) is set."""
    if (at is None) == (position is None):
        raise ValueError("Give exactly one of at= (an aware datetime) or position= (a global position)")
    if at is not None and (not isinstance(at, datetime) or at.utcoffset() is None):
        raise ValueError(f"at= must be an aware datetime (with a timezone, e.g. UTC), got {at!r}")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 0):
        raise ValueError(f"position= must be a global position, an int >= 0, got {position!r}")


def state_as_of(
    conn: Connection, asset: Asset, *, at: datetime | None = None, position: int | None = None
) -> dict[str, JSON]:
    """The asset's state (values by key, keys sorted) right after its last event at or before the point.

    `{}` before its first event. Raises AssetNotFoundError for an unknown asset and CompactedError for a
    point compaction removed. The caller has checked the arguments with `check_point`.
    """
    state = state_texts_as_of(conn, asset, at=at, position=position)
    return {key: codec.decode(text) for key, text in sorted(state.items())}


def state_texts_as_of(
    conn: Connection, asset: Asset, *, at: datetime | None = None, position: int | None = None
) -> dict[str, str]:
    """`state_as_of`, as the JSON texts the log stores (what `restore` writes back)."""
    stream = conn.execute(_stream, {"identity_hash": asset.identity_hash}).first()
    if stream is None:
        raise AssetNotFoundError(f"{asset!r} is not known to this store")
    mark = None if stream.last_version is None else CompactionMark(*stream[3:])
    base = mark.last_version if mark else 0
    if position is not None:
        if mark is not None and position <= mark.position:
            raise compacted_error(asset, mark, f"at position {position}")
        if stream.head_position is not None and stream.head_position <= position:
            version = stream.version
        else:
            version = versions.last_version_at_or_before(
                conn, stream.id, _events.c.position, position, base=base, head=stream.version
            )
    else:
        assert at is not None
        version = versions.last_version_at_or_before(
            conn, stream.id, _events.c.recorded_at, at, base=base, head=stream.version
        )
        if version == base:  # no surviving event at or before `at`
            if mark is not None and at <= mark.compacted_at:
                raise compacted_error(asset, mark, f"at {at.isoformat()}")
            return {}
    return fold_stream(conn, stream.id, version, base)


def fold_stream(conn: Connection, asset_id: int, version: int, base: int = 0) -> dict[str, str]:
    """The fold of the asset's stream up to `version` (JSON texts by key): the newest snapshot at or before
    it, then the events after that. `base` is the last compacted version: the stream starts after it."""
    if version <= base:
        return {}
    snapshot = latest_snapshot(conn, asset_id, at_or_before=version, after=base)
    state = snapshot.state if snapshot else {}
    start = snapshot.version if snapshot else base
    for op, key, value in conn.execute(
        _events_between, {"asset_id": asset_id, "after": start, "upto": version}
    ):
        fold(state, Op(op), key, value)
    return state
