"""`eventstore --url "$AIRFLOW_DB" airflow install` and its undoing.

install(url), idempotent, on Airflow's metadata database (after `airflow db migrate`):
1. eventstore's own tables, by eventstore's migrations (version table `es_alembic_version`);
2. eventstore's Airflow part, by the migrations of eventstore/airflow/migrations (version table
   `es_airflow_alembic_version`): the triggers on `asset_state_store` and `asset_active`
   (eventstore.airflow.sqlite / .postgresql) and the log's starting point (eventstore.airflow.mirror);
3. the identity hashes SQLite's triggers leave as placeholders.

It connects with a plain engine: nothing about Airflow's connection settings (SQLite's journal mode,
say) is changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from eventstore import migrate
from eventstore.dialects import WRITE_OPTION, backend_for
from eventstore.errors import StateStoreError, StoreUnavailableError

VERSION_TABLE = "es_airflow_alembic_version"
INSTALL_COMMAND = "eventstore --url <Airflow's sql_alchemy_conn> airflow install"

_MIGRATIONS = Path(__file__).with_name("migrations")


class NotInstalledError(StateStoreError):
    """Airflow's database lacks eventstore's Airflow part (or has an older one)."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The Airflow part's revision in this database (None if never installed). Issues no failing
    statement, so it is safe inside a PostgreSQL transaction."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def require_installed(conn: Connection) -> None:
    """Raise NotInstalledError, naming the command to run, unless the Airflow part is at this code's head."""
    current = current_revision(conn)
    if current == head_revision():
        return
    state = (
        "is not installed" if current is None else f"is at revision {current}, older than this eventstore's"
    )
    raise NotInstalledError(
        f"eventstore's Airflow integration {state} in this Airflow database, so asset-state changes "
        f"would not be recorded. Run `{INSTALL_COMMAND}` (after `airflow db migrate`), then retry."
    )


def _engine(url: str) -> Engine:
    try:
        return sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as error:
        raise StateStoreError(f"Cannot use the database URL: {error}") from None


def _require_airflow(engine: Engine) -> None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("asset_state_store"):
            raise StateStoreError(
                "This database has no Airflow 3.3 tables (asset_state_store): run `airflow db migrate` "
                "against it first, and give eventstore the same URL as Airflow's sql_alchemy_conn."
            )


def install(url: str) -> str:
    """Install eventstore into Airflow's database at `url` (idempotent). Returns what it did, in one line."""
    engine = _engine(url)
    try:
        with _reachable(engine, "install"):
            return _install(engine)
    finally:
        engine.dispose()


def _install(engine: Engine) -> str:
    from eventstore.airflow.writer_context import dialect_module

    dialect_module(engine.dialect.name)  # an unsupported database fails here, before any change
    _require_airflow(engine)
    migrate.upgrade(engine)
    config = _config()
    with migrate.ALEMBIC_LOCK, engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
        with backend_for(engine.dialect.name).migration_lock(conn):
            before = current_revision(conn)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            from eventstore.airflow.mirror import refresh_identities

            refresh_identities(conn)
        conn.commit()
    head = head_revision()
    if before == head:
        return f"eventstore is already installed in this Airflow database (revision {head}); nothing to do"
    return (
        f"eventstore installed in this Airflow database (eventstore schema {migrate.head_revision()}, "
        f"Airflow triggers {head}): every asset-state change is now recorded. Set "
        "AIRFLOW__STATE_STORE__BACKEND=eventstore.airflow.EventStoreBackend."
    )


def uninstall(url: str) -> str:
    """Remove the triggers (and the writer-context table): Airflow runs as before eventstore. The log and
    eventstore's other tables stay (drop them by hand if you want them gone: docs/airflow.md)."""
    engine = _engine(url)
    try:
        with _reachable(engine, "uninstall"):
            config = _config()
            writes = engine.connect().execution_options(**{WRITE_OPTION: True})
            with migrate.ALEMBIC_LOCK, writes as conn:
                before = current_revision(conn)
                config.attributes["connection"] = conn
                command.downgrade(config, "base")
                conn.commit()
    finally:
        engine.dispose()
    if before is None:
        return "eventstore's Airflow triggers are not installed here; nothing to do"
    return "eventstore's Airflow triggers removed; its tables and log are kept"


@contextmanager
def _reachable(engine: Engine, action: str) -> Iterator[None]:
    """A database that cannot be used (unreachable, missing, refusing the login) is StoreUnavailableError
    with a message saying what to do, not the driver's error. Both actions are idempotent."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        cause = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        raise StoreUnavailableError(
            f"Cannot use the database at {engine.url.render_as_string(hide_password=True)}: {cause}. "
            f"Check that it is running and that the URL is Airflow's sql_alchemy_conn, then run "
            f"`eventstore airflow {action}` again (it is idempotent)."
        ) from None
