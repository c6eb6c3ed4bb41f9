"""Finding versions of a stream (projections/versions.py): `last_version_at_or_before` by position and by
time agrees with a scan of the stream, within its base and head, however few versions a query probes;
`position_of` a version; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from eventstore import Asset, Store, schema
from projections import versions

ORDERS = Asset("orders")
_events = schema.events


@pytest.mark.parametrize("probes", [2, 32])
def test_last_version_at_or_before_agrees_with_a_scan(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch, probes: int
) -> None:
    monkeypatch.setattr(versions, "PROBES", probes)
    store.activate(ORDERS)
    store.activate(Asset("other"))
    for n in range(40):
        store.asset(ORDERS).set_many({"a": n, "b": n} if n % 3 else {"a": n})  # some versions share a time
        if n % 4 == 0:
            store.asset(Asset("other")).set("k", n)  # positions of the stream are not consecutive
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            asset_id = conn.execute(schema.asset_id_by_identity(ORDERS.identity_hash)).scalar_one()
            rows = conn.execute(
                sa.select(_events.c.version, _events.c.position, _events.c.recorded_at)
                .where(_events.c.asset_id == asset_id)
                .order_by(_events.c.version)
            ).all()
            head = rows[-1].version

            def scan(column: str, bound: Any, base: int, inclusive: bool) -> int:
                found = [
                    r.version
                    for r in rows
                    if base < r.version <= head
                    and (getattr(r, column) <= bound if inclusive else getattr(r, column) < bound)
                ]
                return max(found, default=base)

            for base in (0, 7):
                for row in rows[::3]:
                    for column in ("position", "recorded_at"):
                        for inclusive in (True, False):
                            got = versions.last_version_at_or_before(
                                conn,
                                asset_id,
                                _events.c[column],
                                getattr(row, column),
                                base=base,
                                head=head,
                                inclusive=inclusive,
                            )
                            assert got == scan(column, getattr(row, column), base, inclusive), (
                                column,
                                row.version,
                                base,
                                inclusive,
                            )
                assert (
                    versions.last_version_at_or_before(
                        conn, asset_id, _events.c.position, 0, base=base, head=head
                    )
                    == base
                )
            assert [versions.position_of(conn, asset_id, r.version) for r in rows] == [
                r.position for r in rows
            ]
            assert versions.position_of(conn, asset_id, head + 1) is None
    finally:
        engine.dispose()
