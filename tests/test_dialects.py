"""The backends (eventstore.dialects): chosen by dialect name, and an unsupported database is named."""

from __future__ import annotations

import pytest

from eventstore import Asset, open_store
from eventstore.dialects import backend_for


def test_an_unsupported_database_is_named(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="does not support the 'oracle' database"):
        open_store("oracle://scott@127.0.0.1/x")


def test_each_dialect_name_has_its_backend_module() -> None:
    assert type(backend_for("sqlite")).__module__ == "eventstore.dialects.sqlite"
    assert type(backend_for("postgresql")).__module__ == "eventstore.dialects.postgresql"
    assert backend_for("mysql") is backend_for("mariadb")
    assert type(backend_for("mariadb")).__module__ == "eventstore.dialects.mysql"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_can_be_told_never_to_prepare_statements(db_url: str) -> None:
    # Behind PgBouncer in transaction mode (docs/operations.md): `?prepare_threshold=none`.
    with open_store(f"{db_url}?prepare_threshold=none") as store:
        store.activate(Asset("orders"))
        state = store.asset(Asset("orders"))
        for n in range(10):  # more executions than psycopg's default threshold (5)
            state.set("n", n)
            assert state.get("n") == n
        with store._db.engine.connect() as conn:  # the driver's own setting, on a pooled connection
            assert conn.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"prepare_threshold='often'.*whole number"):
        open_store(f"{db_url}?prepare_threshold=often")
