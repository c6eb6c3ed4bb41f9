"""Hosts (eventstore/hosts.py): the host installed in a database is found by its version table
`es_<name>_alembic_version`, its factory through the `eventstore.hosts` entry points, and a host this
installation does not register is refused with what to do; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from eventstore import StateStoreError, open_store
from eventstore.hosts import GROUP, installed_host, load_host
from eventstore.migrate import VERSION_TABLE


@pytest.fixture
def raw(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


def _create_table(engine: sa.Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (version_num VARCHAR(32) NOT NULL)"))


def _drop_table(engine: sa.Engine, name: str) -> None:
    """Drop a table this test created (the server databases are shared by the session's tests)."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def test_a_plain_store_has_no_host(raw: sa.Engine) -> None:
    with raw.connect() as conn:
        assert VERSION_TABLE in sa.inspect(conn).get_table_names()  # eventstore's own: not a host's
        assert installed_host(conn) is None


def test_the_version_table_names_the_host(raw: sa.Engine) -> None:
    for table in ("alembic_version", "es__alembic_version", "es_other_alembic_versions"):
        _create_table(raw, table)
    try:
        with raw.connect() as conn:
            assert installed_host(conn) is None
        _create_table(raw, "es_my_host2_alembic_version")
        with raw.connect() as conn:
            assert installed_host(conn) == "my_host2"
    finally:
        for table in (
            "alembic_version",
            "es__alembic_version",
            "es_other_alembic_versions",
            "es_my_host2_alembic_version",
        ):
            _drop_table(raw, table)


def test_a_host_without_an_entry_point_is_refused_naming_what_to_do(raw: sa.Engine, db_url: str) -> None:
    with pytest.raises(StateStoreError, match=r"table es_nosuch_alembic_version.*reinstall") as refused:
        load_host("nosuch")
    assert repr(GROUP) in str(refused.value) and "'nosuch'" in str(refused.value)
    _create_table(raw, "es_nosuch_alembic_version")
    try:
        with pytest.raises(StateStoreError, match="integration installed"):
            open_store(db_url)
    finally:
        _drop_table(raw, "es_nosuch_alembic_version")
    open_store(db_url).close()


def test_airflow_is_registered_as_a_host() -> None:
    factory = load_host("airflow")
    assert (getattr(factory, "__module__", None), getattr(factory, "__name__", None)) == (
        "eventstore.airflow.hosted",
        "AirflowHost",
    )
