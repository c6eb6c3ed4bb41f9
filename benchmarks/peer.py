"""The peer: eventsourcing 9.5 (pyeventsourcing) doing the write eventstore's `set` does.

One aggregate per asset, one event per set, `app.save(aggregate)`, on the same database as eventstore
(its own tables beside es_*). eventsourcing ships recorders for SQLite and PostgreSQL only; it has no
MySQL/MariaDB recorder, so the peer is not measured there.

The aggregate is created once and kept in memory, so each op is `aggregate.set(key, value)` plus
`app.save(aggregate)`: one transaction inserting one stored event with its optimistic version check (and,
on PostgreSQL, eventsourcing's table lock that keeps its notification log gap-free). That is the peer's
cheapest write: it does not read the aggregate back. eventstore's `set` does more in its transaction (it
locks the asset's stream, reads the key's previous value, updates the current-state view), so the
comparison favours the peer.

eventsourcing is a bench-only dependency (`make bench` installs `eventsourcing[postgres]==9.5.*`); when
it is missing, the peer rows say so instead of failing the run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import sqlalchemy as sa

from benchmarks.databases import BenchDatabase, DbName

NO_MYSQL = "eventsourcing 9.5 has no MySQL/MariaDB recorder (it ships SQLite and PostgreSQL only)"


def unavailable(kind: DbName) -> str | None:
    """Why the peer cannot run on `kind`, or None if it can."""
    if kind == "mysql":
        return NO_MYSQL
    if importlib.util.find_spec("eventsourcing") is None:
        return "eventsourcing is not installed (`make bench` installs eventsourcing[postgres]==9.5.*)"
    if kind == "postgres" and importlib.util.find_spec("psycopg_pool") is None:
        return "psycopg_pool is not installed (`make bench` installs eventsourcing[postgres]==9.5.*)"
    return None


def version() -> str | None:
    try:
        from importlib.metadata import version as package_version

        return package_version("eventsourcing")
    except Exception:
        return None


def _env(db: BenchDatabase) -> dict[str, str]:
    if db.kind == "sqlite":
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": db.sqlite_path}
    url = sa.make_url(db.url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.database or "",
        "POSTGRES_HOST": url.host or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_POOL_SIZE": "2",
    }


class PeerWriter:
    """An eventsourcing application with one aggregate (one asset) that records one event per `set`."""

    def __init__(self, db: BenchDatabase, asset_name: str = "bench-set") -> None:
        from benchmarks.peer_model import AssetState, StateApp

        self._app: Any = StateApp(env=_env(db))
        self._aggregate: Any = AssetState(asset_name)
        self._app.save(self._aggregate)

    def set(self, key: str, value: Any) -> None:
        self._aggregate.set(key, value)
        self._app.save(self._aggregate)

    def close(self) -> None:
        self._app.close()
