"""Alembic environment. Runs on the connection eventstore.migrate hands over (see migrate.upgrade)."""

from __future__ import annotations

from alembic import context

from eventstore.migrate import VERSION_TABLE
from eventstore.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through `eventstore db upgrade` or eventstore.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
