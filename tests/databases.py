"""The three databases every storage test runs on, and how tests get a clean one.

PostgreSQL and MariaDB servers come from EVENTSTORE_TEST_POSTGRES / EVENTSTORE_TEST_MYSQL (server URLs
without a database), defaulting to this machine's 127.0.0.1 services. Each test session uses its own
database on each server, migrated once; every test starts from empty tables.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from eventstore import open_store, schema
from eventstore.dialects import backend_for

SERVERS = {
    "postgres": os.environ.get("EVENTSTORE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mysql": os.environ.get("EVENTSTORE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306"),
}
BACKENDS = ("sqlite", "postgres", "mysql")


def unavailable(backend: str, reason: str) -> None:
    """Skip a test whose database cannot be reached, except under CI=true, where that is a failure."""
    message = f"{backend} is not reachable ({reason}); run `make databases` to start it"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires every database: {message}", pytrace=False)
    pytest.skip(message)


def _admin(backend: str) -> sa.Engine:
    database = "postgres" if backend == "postgres" else ""
    return sa.create_engine(f"{SERVERS[backend]}/{database}", isolation_level="AUTOCOMMIT")


def _drop_statement(backend: str, name: str) -> str:
    if backend == "postgres":
        return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    return f"DROP DATABASE IF EXISTS `{name}`"


def create_database(backend: str, name: str) -> str:
    """Create (or re-create) database `name` on the backend's server and migrate it; return its URL."""
    url = create_empty_database(backend, name)
    open_store(url).close()
    return url


def create_empty_database(backend: str, name: str) -> str:
    """Create (or re-create) database `name` on the backend's server, without any table."""
    admin = _admin(backend)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(_drop_statement(backend, name)))
            if backend == "postgres":
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except sa.exc.OperationalError as error:
        unavailable(backend, str(error.orig).splitlines()[0])
    finally:
        admin.dispose()
    return f"{SERVERS[backend]}/{name}"


def drop_database(backend: str, url: str) -> None:
    admin = _admin(backend)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(_drop_statement(backend, sa.make_url(url).database or "")))
    finally:
        admin.dispose()


def create_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    open_store(f"sqlite:///{path}").close()
    return path


def sqlite_copy(template: Path, directory: Path, name: str = "store.db") -> str:
    path = directory / name
    shutil.copy(template, path)
    return f"sqlite:///{path}"


def restart_positions(conn: sa.Connection) -> None:
    """Make the next global position 1 again: only for emptying a store between tests (positions must
    never be handed out twice in a store in use)."""
    if backend_for(conn.dialect.name).ordering == "sequence":
        conn.execute(sa.select(sa.func.setval(schema.event_positions.name, 1, False)))
    else:
        conn.execute(schema.log_head.update().where(schema.log_head.c.id == 1).values(position=0))


def empty_tables(url: str) -> None:
    """Delete every row eventstore wrote and reset the log head (or the position sequence): a migrated,
    empty store."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(schema.metadata.sorted_tables):
                if table is not schema.log_head:
                    conn.execute(table.delete())
            restart_positions(conn)
    finally:
        engine.dispose()
