"""The data model (eventstore/schema.py): the migrations create exactly the tables, columns, keys and
indexes `schema.metadata` declares, and its shared definitions (`is_active`, `asset_id_by_identity`)
answer as documented; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from eventstore import Asset, Store, schema
from eventstore.migrate import VERSION_TABLE


def _not_the_version_table(name: str | None, type_: str, parent_names: Any) -> bool:
    return not (type_ == "table" and name == VERSION_TABLE)


def test_the_migrated_database_matches_the_metadata(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": False,
                    "include_name": _not_the_version_table,
                },
            )
            differences = compare_metadata(context, schema.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_is_active_and_asset_id_by_identity(store: Store, db_url: str) -> None:
    active, inactive, unknown = Asset("active"), Asset("inactive"), Asset("unknown")
    store.activate(active)
    store.activate(inactive)
    store.deactivate(inactive)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            ids = {
                a: conn.execute(schema.asset_id_by_identity(a.identity_hash)).scalar()
                for a in (active, inactive, unknown)
            }
            flagged = dict(conn.execute(sa.select(schema.assets.c.id, schema.is_active)).all())
    finally:
        engine.dispose()
    assert ids[unknown] is None
    assert {
        asset.name: info.id for asset in (active, inactive) for info in store.assets(name=asset.name)
    } == {
        "active": ids[active],
        "inactive": ids[inactive],
    }
    assert {key: bool(value) for key, value in flagged.items()} == {ids[active]: True, ids[inactive]: False}
