"""The append-only log: the code that writes events, stream versions and global positions.

(One other place writes them, with the same locks in the same order: `eventstore.single_set`, the
single-round-trip `set` of PostgreSQL and MariaDB, which declines whenever it could differ from this
path.)

An append runs inside the caller's transaction, on either kind of connection (`eventstore.prepared`),
in this order:

1. `claim` locks the asset's row and reserves the stream's next versions in one statement (UPDATE ...
   RETURNING). Writers of one asset queue here, and only here; writers of other assets go on. Holding
   the lock, the caller reads the current state and decides the events, so no update is ever lost and
   versions are consecutive. If it decides that nothing changes, it raises `NothingToRecord` and the
   transaction rolls back, versions and all.
2. `append` stamps the events (the claimed versions, a time no earlier than the stream's last) and
   lets every inline projection apply them.
3. Last, it takes the events' global positions (`eventstore.ordering`: where that is the ordering lock
   of `es_log_head`, it is held only from there to COMMIT) and inserts the events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from eventstore import schema
from eventstore.errors import StateStoreError
from eventstore.events import NewEvent, PendingEvent
from eventstore.ordering import Ordering
from eventstore.prepared import Connectable, Prepared
from eventstore.writers import Writer, writer_columns

if TYPE_CHECKING:
    from eventstore.single_set import SetPart


class InlineProjection(Protocol):
    """A view kept in step with the log: `apply` runs in the appending transaction, before commit, and
    `single_set_part` says how it takes part in a single-statement set (eventstore.single_set)."""

    def apply(self, conn: Connectable, events: Sequence[NewEvent]) -> None: ...

    def single_set_part(self) -> SetPart: ...


@dataclass(frozen=True, slots=True)
class Stream:
    """The head of one asset's stream, read under its row lock."""

    asset_id: int
    version: int
    last_recorded_at: datetime | None


@dataclass(frozen=True, slots=True)
class Claim:
    """Versions reserved in a locked stream, and the time its new events are stamped with."""

    asset_id: int
    versions: range
    recorded_at: datetime
    current: dict[str, str] | None = None
    """The current JSON text of the key read together with the claim ({} if the key has none); None if
    the claim read no key (see `EventLog.claim`)."""


CurrentValue = Callable[[sa.ColumnElement[int]], sa.ColumnElement[Any]]
"""Given the claimed asset's id column, the current JSON text of the key bound as `key`: a column the
claim can read in the same statement. Supplied by the composition (the log knows no projection)."""


class NothingToRecord(StateStoreError):
    """Raised inside a write transaction that claimed versions but has no change to record.

    The transaction rolls back, so the stream's head is as it was; callers treat it as a no-op (it
    never reaches the user). An eventstore error, so the connection is kept (eventstore.database).
    """


_assets = schema.assets
_events = schema.events

_is_active = schema.is_active

_lock_stream = (
    sa.select(_assets.c.id, _assets.c.version, _assets.c.last_recorded_at)
    .where(_assets.c.identity_hash == sa.bindparam("identity_hash"))
    .with_for_update()
)
_lock_active_stream = _lock_stream.where(_is_active)

# Lock the stream and reserve n versions; recorded_at never moves backwards within a stream.
claim_versions = _assets.update().values(
    version=_assets.c.version + sa.bindparam("n"),
    last_recorded_at=sa.case(
        (_assets.c.last_recorded_at > sa.bindparam("now"), _assets.c.last_recorded_at),
        else_=sa.bindparam("now"),
    ),
)
_asset_identity: sa.BindParameter[str] = sa.bindparam("asset_identity")
_claim_any = claim_versions.where(_assets.c.identity_hash == _asset_identity)
_claim_active = _claim_any.where(_is_active)
_claimed_columns = (_assets.c.id, _assets.c.version, _assets.c.last_recorded_at)
_insert_events = _events.insert()


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventLog:
    """Appends events to asset streams and keeps the inline projections in the same transaction."""

    def __init__(
        self,
        ordering: Ordering,
        dialect: Dialect,
        projections: Sequence[InlineProjection],
        current_value: CurrentValue | None = None,
    ) -> None:
        """`current_value`, where given, lets `claim` read one key's current value in the statement that
        claims (or reads the claim back): only where that read happens after the asset's lock is held."""
        self.projections = tuple(projections)
        self._ordering = ordering
        # MariaDB has no UPDATE ... RETURNING: there the claim is read back after updating.
        self._returning = dialect.update_returning
        self.reads_current_with_claim = current_value is not None
        reads = (False, True) if current_value is not None else (False,)
        self._claims: dict[tuple[bool, bool], tuple[Prepared, Prepared | None]] = {}
        for active_only, claim in ((True, _claim_active), (False, _claim_any)):
            for read in reads:
                columns: list[sa.ColumnElement[Any]] = list(_claimed_columns)
                if read:
                    assert current_value is not None
                    columns.append(current_value(_assets.c.id).label("current"))
                if self._returning:
                    self._claims[active_only, read] = (Prepared(claim.returning(*columns), dialect), None)
                else:
                    read_back = sa.select(*columns).where(_assets.c.identity_hash == _asset_identity)
                    self._claims[active_only, read] = (Prepared(claim, dialect), Prepared(read_back, dialect))
        self._insert_events = Prepared(_insert_events, dialect)

    def lock_stream(self, conn: Connection, identity_hash: str, *, active_only: bool) -> Stream | None:
        """Lock the asset's stream head; None if the asset is unknown (or, with active_only, inactive)."""
        query = _lock_active_stream if active_only else _lock_stream
        row = conn.execute(query, {"identity_hash": identity_hash}).first()
        return None if row is None else Stream(row.id, row.version, row.last_recorded_at)

    def claim(
        self, conn: Connectable, identity_hash: str, n: int, *, active_only: bool, key: str | None = None
    ) -> Claim | None:
        """Lock the asset's stream and reserve its next `n` versions; None if the asset is unknown (or,
        with active_only, inactive). With `key` (only where `reads_current_with_claim`), the same
        statement also reads that key's current value (`Claim.current`)."""
        params: dict[str, object] = {"asset_identity": identity_hash, "n": n, "now": utcnow()}
        if key is not None:
            params["key"] = key
        claim, read_back = self._claims[active_only, key is not None]
        if read_back is None:
            row = claim.first(conn, params)
        elif claim.run(conn, params):
            row = read_back.first(conn, params)
        else:
            row = None
        if row is None:
            return None
        asset_id, version, recorded_at, *read = row
        current = None if key is None else ({} if read[0] is None else {key: read[0]})
        return Claim(asset_id, range(version - n + 1, version + 1), recorded_at, current)

    def append(
        self, conn: Connectable, claim: Claim, pending: Sequence[PendingEvent], writer: Writer
    ) -> list[NewEvent]:
        """Append `pending` (exactly as many events as `claim` reserved) in the caller's transaction."""
        if not pending:
            raise NothingToRecord
        if len(pending) != len(claim.versions):
            raise ValueError(f"claimed {len(claim.versions)} versions for {len(pending)} events")
        events = [
            NewEvent(claim.asset_id, version, claim.recorded_at, p.op, p.key, p.value, p.previous, writer)
            for version, p in zip(claim.versions, pending, strict=True)
        ]
        for projection in self.projections:
            projection.apply(conn, events)
        # Where this is the ordering lock, nothing may follow it in the transaction but the insert and COMMIT.
        positions = self._ordering.reserve(conn, len(events))
        self._insert_events.run_many(
            conn,
            [
                {
                    "position": position,
                    "asset_id": e.asset_id,
                    "version": e.version,
                    "op": e.op.value,
                    "key": e.key,
                    "value": e.value,
                    "previous": e.previous,
                    "recorded_at": e.recorded_at,
                    **writer_columns(e.writer, "writer_"),
                }
                for position, e in zip(positions, events, strict=True)
            ],
        )
        return events
