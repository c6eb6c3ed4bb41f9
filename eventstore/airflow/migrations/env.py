"""Alembic environment of eventstore's Airflow part: its own version table beside eventstore's
(`es_alembic_version`) and Airflow's (`alembic_version`). Runs on the connection install() hands over."""

from __future__ import annotations

from alembic import context

from eventstore.airflow.installation import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Run these migrations through `eventstore airflow install` (eventstore.airflow.install)"
    )

context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
