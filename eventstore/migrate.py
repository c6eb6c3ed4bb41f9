"""Bringing a database to the schema this code expects, and refusing one that does not match."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from eventstore.dialects import WRITE_OPTION, backend_for
from eventstore.errors import SchemaVersionError

# Our own version table, so eventstore can share a database with Airflow (which has alembic_version).
VERSION_TABLE = "es_alembic_version"

_MIGRATIONS = Path(__file__).with_name("migrations")

ALEMBIC_LOCK = threading.Lock()
"""Held while an alembic command runs: one at a time in this process. Alembic keeps the running
migration's context in module globals (`alembic.context`, `alembic.op`), so two threads migrating at once,
even two different databases, run each other's revisions on the wrong connection. The database's
migration lock covers other processes; this covers the threads of this one. Take it before the
database's migration lock, never inside it."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "eventstore ships at least one migration"
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def check(conn: Connection, url: str | None = None) -> None:
    """Raise SchemaVersionError unless the database is exactly at this code's schema version.

    The message names the database and the command that upgrades it: `url` (password hidden), by default
    the URL of `conn`'s engine.
    """
    current, head = current_revision(conn), head_revision()
    if current == head:
        return
    url = url or conn.engine.url.render_as_string(hide_password=True)
    upgrade_command = f"eventstore --url {shlex.quote(url)} db upgrade"
    if current is None:
        raise SchemaVersionError(
            f"The database at {url} has no eventstore schema. Run `{upgrade_command}` "
            "(or open_store() without migrate=False) to create it."
        )
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(current)
    except CommandError:
        raise SchemaVersionError(
            f"The eventstore schema of the database at {url} ({current}) is newer than this eventstore "
            f"knows ({head}). Upgrade the eventstore package."
        ) from None
    raise SchemaVersionError(
        f"The eventstore schema of the database at {url} ({current}) is older than this eventstore "
        f"({head}). Run `{upgrade_command}`."
    )


def upgrade(engine: Engine) -> None:
    """Migrate to the newest schema. Safe to run from several processes at once."""
    with engine.connect() as probe:
        try:
            check(probe)
            return
        except SchemaVersionError as error:
            if "newer" in str(error):
                raise
    backend = backend_for(engine.dialect.name)
    config = alembic_config()
    with (
        ALEMBIC_LOCK,
        engine.connect().execution_options(**{WRITE_OPTION: True}) as conn,
        backend.migration_lock(conn),
    ):
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        # Commit before the lock goes: on MariaDB the last revision's version row is not committed by
        # its DDL, and a process let in before the commit read the older version and re-ran it.
        conn.commit()
