"""The writer context: how eventstore's code, running inside Airflow's transaction, tells the database
triggers who is making the change that follows (each database's part: eventstore.airflow.sqlite and
eventstore.airflow.postgresql)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from eventstore.errors import StateStoreError
from eventstore.writers import Writer


def dialect_module(dialect_name: str) -> ModuleType:
    """The module holding this database's triggers and writer context."""
    if dialect_name == "sqlite":
        from eventstore.airflow import sqlite

        return sqlite
    if dialect_name == "postgresql":
        from eventstore.airflow import postgresql

        return postgresql
    raise StateStoreError(
        "eventstore's Airflow integration supports SQLite and PostgreSQL metadata databases, "
        f"not {dialect_name}"
    )


def dialect_name(conn: Any) -> str:
    """The database of a SQLAlchemy Connection or ORM Session."""
    bind = conn.get_bind() if hasattr(conn, "get_bind") else conn
    return str(bind.dialect.name)


@contextlib.contextmanager
def writer_context(conn: Any, writer: Writer) -> Iterator[None]:
    """Within the block, the triggers record `writer` for every change made on `conn` (a Connection or
    an ORM Session, inside its transaction). The context ends with the block, before any commit."""
    module = dialect_module(dialect_name(conn))
    module.set_writer(conn, writer)
    try:
        yield
    except BaseException:
        # On PostgreSQL a failed statement aborts the transaction (and the setting with it).
        with contextlib.suppress(Exception):
            module.clear_writer(conn)
        raise
    module.clear_writer(conn)
