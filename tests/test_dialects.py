"""The backends (eventstore.dialects): chosen by dialect name, and an unsupported database is named."""

from __future__ import annotations

import pytest

from eventstore import open_store
from eventstore.dialects import backend_for


def test_an_unsupported_database_is_named(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="does not support the 'oracle' database"):
        open_store("oracle://scott@127.0.0.1/x")


def test_each_dialect_name_has_its_backend_module() -> None:
    assert type(backend_for("sqlite")).__module__ == "eventstore.dialects.sqlite"
    assert type(backend_for("postgresql")).__module__ == "eventstore.dialects.postgresql"
    assert backend_for("mysql") is backend_for("mariadb")
    assert type(backend_for("mariadb")).__module__ == "eventstore.dialects.mysql"
