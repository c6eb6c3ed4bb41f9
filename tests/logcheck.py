"""Raw-SQL views of what a store has written, for checking invariants independently of the store's code."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from eventstore import schema
from eventstore.events import Op, fold


@dataclass(frozen=True)
class LogRow:
    position: int
    asset_id: int
    version: int
    op: Op
    key: str | None
    value: str | None


class LogInspector:
    """Reads es_events, es_state and es_assets with plain SQL."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def log(self) -> list[LogRow]:
        e = schema.events
        query = sa.select(e.c.position, e.c.asset_id, e.c.version, e.c.op, e.c.key, e.c.value)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(e.c.position)).all()
        return [LogRow(r.position, r.asset_id, r.version, Op(r.op), r.key, r.value) for r in rows]

    def view(self) -> dict[int, dict[str, str]]:
        """The current-state view: JSON texts by key, by asset id (assets without rows left out)."""
        s = schema.state
        result: dict[int, dict[str, str]] = defaultdict(dict)
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(s.c.asset_id, s.c.key, s.c.value)):
                result[row.asset_id][row.key] = row.value
        return dict(result)

    def stream_heads(self) -> dict[int, int]:
        a = schema.assets
        with self.engine.connect() as conn:
            return {row.id: row.version for row in conn.execute(sa.select(a.c.id, a.c.version))}

    def asset_ids(self) -> dict[tuple[str, str], int]:
        a = schema.assets
        with self.engine.connect() as conn:
            return {(r.name, r.uri): r.id for r in conn.execute(sa.select(a.c.id, a.c.name, a.c.uri))}


def fold_log(rows: list[LogRow]) -> dict[int, dict[str, str]]:
    """The view the log implies: every asset's events folded in position order."""
    states: dict[int, dict[str, str]] = defaultdict(dict)
    for row in rows:
        fold(states[row.asset_id], row.op, row.key, row.value)
    return {asset_id: state for asset_id, state in states.items() if state}
