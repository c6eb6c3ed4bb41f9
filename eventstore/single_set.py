"""`set` of one key in one round trip: the commonest write, where the database can.

The log's transaction (eventstore.log) takes seven round trips on a server database: BEGIN, claim, read
the old value, upsert the view, advance the positions, insert the event, COMMIT. Where the database can
(`Backend.single_set`), `set` first tries one round trip that writes exactly the rows the log's
transaction would, and declines (writes nothing) whenever it could differ: the asset is unknown or
inactive, another writer changed it since the statement's snapshot (PostgreSQL), or an inline projection
says it cannot take part this time. The caller then runs the log's transaction. Two forms:

- PostgreSQL: one statement of data-modifying CTEs, in autocommit (eventstore.dialects.postgresql);
- MariaDB/MySQL: the log's own statements, in its order, between BEGIN and COMMIT, run as a stored
  procedure (or, where it cannot be created, sent as one multi-statement packet)
  (eventstore.dialects.mysql).

The inline projections take part through the same hook as every other write (`InlineProjection`): each
gives a `SetPart` (the rows it writes, given the claimed stream, and a condition it needs), so the
statement keeps every projection in step without knowing any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.pool import PoolProxiedConnection

from eventstore import schema
from eventstore.dialects.types import JsonText, StateKey
from eventstore.log import CurrentValue, utcnow
from eventstore.prepared import Connectable, Row
from eventstore.writers import WRITER_FIELDS, Writer, writer_columns

KEY = sa.bindparam("key", type_=StateKey())
"""The key being set, as the statement binds it."""
VALUE = sa.bindparam("value", type_=JsonText())
"""The new value's JSON text, as the statement binds it."""
WRITER = [sa.bindparam(f"writer_{f}", type_=schema.events.c[f"writer_{f}"].type) for f in WRITER_FIELDS]
"""The writer's columns, in WRITER_FIELDS order, as the statement binds them."""


@dataclass(frozen=True)
class SetPart:
    """What one inline projection adds to the single-statement set."""

    writes: Callable[[sa.CTE], sa.CTE] | None = None
    """A data-modifying CTE that applies the set, given the claim (a CTE of the claimed stream with
    columns `id`, `version`, `last_recorded_at`) and the binds KEY, VALUE and WRITER. A database that
    cannot run data-modifying CTEs (MariaDB) runs the statement inside it (the CTE's `element`) on its
    own, with the claim as a plain CTE that reads the stream the transaction has just claimed."""
    only_if: sa.ColumnElement[bool] | None = None
    """A condition on the asset's `es_assets` row without which the statement declines."""
    params: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    """Values of the part's own binds, read at every call."""


@dataclass(frozen=True)
class SetParts:
    """Everything the statement needs from the composition: each projection's part, and how to read the
    key's current value (the event's `previous`)."""

    projections: Sequence[SetPart]
    current_value: CurrentValue


class SetStatement(Protocol):
    """What the backend prepares: one statement (`eventstore.prepared.Prepared`) or several sent in one
    round trip, taking the binds `SingleSet.try_set` gives; `first` returns a row (the event's position)
    if the set was recorded, None if it declined and wrote nothing."""

    def first(self, conn: Connectable, params: Mapping[str, Any]) -> Row | None: ...


class SingleSet:
    """A prepared single-statement set (built by the backend), run on a connection in autocommit."""

    def __init__(
        self,
        statement: SetStatement,
        parts: SetParts,
        prepare: Callable[[PoolProxiedConnection], None] | None = None,
    ) -> None:
        """`prepare(conn)`, where the statement needs something on the server before its first run
        (MariaDB: its stored procedure)."""
        self._statement = statement
        self._params = [part.params for part in parts.projections]
        self._prepare = prepare
        self.unprepared = prepare is not None
        """True until `prepare` has run: the caller runs it first, as a read (a connection lost during it
        is simply tried again), so that the set itself is the only thing sent as a write."""

    def prepare(self, conn: PoolProxiedConnection) -> None:
        if self._prepare is not None:
            self._prepare(conn)
        self.unprepared = False

    def try_set(
        self, conn: PoolProxiedConnection, identity_hash: str, key: str, text: str, writer: Writer
    ) -> bool:
        """True if the set was recorded; False if the log's transaction must do it (see the module doc)."""
        params: dict[str, Any] = {
            "asset_identity": identity_hash,
            "n": 1,
            "now": utcnow(),
            "key": key,
            "value": text,
            **writer_columns(writer, "writer_"),
        }
        for extra in self._params:
            params.update(extra())
        return self._statement.first(conn, params) is not None
