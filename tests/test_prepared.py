"""Prepared statements convert what they return with the column types, as SQLAlchemy would."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from eventstore import open_store, schema
from eventstore.database import Database
from eventstore.prepared import Prepared


def test_returned_columns_are_converted_even_after_the_statement_was_inspected(tmp_path: Path) -> None:
    """SQLAlchemy 2.1 keeps a DML statement's `exported_columns` memoized across `.returning()`: a
    statement prepared once without RETURNING (as on MariaDB) must not leave its copies unconverted."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    open_store(url).close()
    database = Database(url)
    assets = schema.assets
    now = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)
    database.run(
        lambda conn: conn.execute(
            assets.insert().values(identity_hash="h", name="a", uri="a", version=0, created_at=now)
        ),
        write=True,
    )
    update = assets.update().where(assets.c.identity_hash == "h").values(last_recorded_at=now)
    Prepared(update, database.dialect)  # reads update.exported_columns: empty, and memoized
    returning = Prepared(update.returning(assets.c.last_recorded_at), database.dialect)

    row = database.run(lambda conn: returning.first(conn, {}), write=True)

    assert row == (now,)
    database.dispose()
