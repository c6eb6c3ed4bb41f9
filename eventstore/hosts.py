"""Hosts: applications whose database eventstore is installed into, and whose table is the current-state
view (Airflow: `eventstore.airflow.hosted`, CONTRACT §9).

A host's integration installs, beside eventstore's tables, a version table `es_<name>_alembic_version`
and registers an entry point `<name>` in the group `eventstore.hosts` (pyproject.toml) naming a factory
`(Database) -> Host`. `open_store` finds the version table and opens the store in that host's mode: the
log is read as always, while current state is read from and written to the host's table, whose database
triggers append the events (one path for every writer). The store never imports a host: the entry point
is how a lower layer reaches an interface's code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib.metadata import entry_points
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore.errors import StateStoreError
from eventstore.events import PendingEvent
from eventstore.writers import Writer

GROUP = "eventstore.hosts"
_VERSION_TABLE = re.compile(r"^es_(?P<name>[a-z0-9_]+)_alembic_version$")


class Host(Protocol):
    """What a store in a host's mode asks the host (every method runs in the store's transaction)."""

    name: str
    """For people: "Airflow"."""

    def refresh(self, conn: Connection) -> None:
        """Bring eventstore's mirror of the host's assets up to date before it is used (a write)."""

    def needs_refresh(self, conn: Connection) -> bool:
        """Whether `refresh` has anything to do (a read)."""

    def lookup(self, conn: Connection, identity_hash: str, key: str) -> tuple[bool, str | None]:
        """(is the asset active, the key's JSON text or None)."""

    def read(self, conn: Connection, asset_id: int, keys: Sequence[str] | None) -> dict[str, str]:
        """The asset's current JSON texts by key in the host's table: all, or only `keys`."""

    def entries(
        self, conn: Connection, asset_id: int, keys: Sequence[str] | None, limit: int | None, offset: int
    ) -> tuple[list[tuple[str, str, datetime, Writer]], int]:
        """The asset's rows in the host's table sorted by key (all, or only `keys`), paged, as
        (key, JSON text, updated at, the writer the row names), and how many there are before paging."""

    def read_view(self, conn: Connection, asset_ids: Sequence[int]) -> Mapping[int, Mapping[str, str]]:
        """The host's current rows of these assets (what `verify` compares with the log's fold)."""

    def apply(self, conn: Connection, asset_id: int, pending: Sequence[PendingEvent], writer: Writer) -> None:
        """Make these changes in the host's table, telling its triggers that `writer` makes them."""

    def refusal(self, action: str) -> StateStoreError:
        """The error for an action the host owns (`activate`, `deactivate`, `rebuild`)."""


def installed_host(conn: Connection) -> str | None:
    """The name of the host installed in this database (its version table), or None."""
    for table in sa.inspect(conn).get_table_names():
        found = _VERSION_TABLE.match(table)
        if found is not None:
            return found.group("name")
    return None


def load_host(name: str) -> object:
    """The factory registered for host `name` (entry point group `eventstore.hosts`)."""
    for point in entry_points(group=GROUP, name=name):
        return point.load()
    raise StateStoreError(
        f"This database has eventstore's {name} integration installed (table es_{name}_alembic_version), "
        f"but this installation of eventstore registers no {GROUP!r} entry point {name!r}: reinstall "
        "eventstore (pip install 'eventstore[...]') so that its entry points are registered."
    )
