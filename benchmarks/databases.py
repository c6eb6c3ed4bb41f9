"""The databases a benchmark runs on: created for the run, dropped after it, reachable two ways.

Every benchmark gets a `BenchDatabase`: a SQLAlchemy URL for eventstore and the SQLAlchemy baselines,
and `raw_connect()` for the raw-driver baselines (sqlite3, psycopg, PyMySQL in autocommit). PostgreSQL
and MariaDB servers come from EVENTSTORE_BENCH_POSTGRES / EVENTSTORE_BENCH_MYSQL (server URLs without a
database), defaulting to this machine's 127.0.0.1 services. SQLite files go to a work directory on the
same disk as the repository (not /tmp, which may be a RAM disk where fsync costs nothing).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

DbName = Literal["sqlite", "postgres", "mysql"]
DATABASES: tuple[DbName, ...] = ("sqlite", "postgres", "mysql")

SERVERS: dict[str, str] = {
    "postgres": os.environ.get("EVENTSTORE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mysql": os.environ.get("EVENTSTORE_BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306"),
}

DEFAULT_WORKDIR = Path(__file__).parent / "results" / "db"


class DatabaseUnavailable(RuntimeError):
    """The server for a benchmark database cannot be reached."""


@dataclass(frozen=True, slots=True)
class BenchDatabase:
    """One benchmark database: `kind` (sqlite/postgres/mysql), its SQLAlchemy `url` and a name."""

    kind: DbName
    url: str
    name: str

    @property
    def sqlite_path(self) -> str:
        database = sa.make_url(self.url).database
        assert self.kind == "sqlite" and database, "only SQLite databases are files"
        return database

    def raw_connect(self) -> Any:
        """A DBAPI connection in autocommit mode, with eventstore's settings where they matter (SQLite)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(
                self.sqlite_path, isolation_level=None, timeout=30, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn
        url = sa.make_url(self.url)
        if self.kind == "postgres":
            import psycopg

            return psycopg.connect(
                host=url.host,
                port=url.port or 5432,
                user=url.username,
                password=url.password or "",
                dbname=url.database,
                autocommit=True,
            )
        import pymysql

        return pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
            autocommit=True,
        )

    @property
    def paramstyle(self) -> str:
        """The raw driver's placeholder."""
        return "?" if self.kind == "sqlite" else "%s"


def _admin_engine(kind: DbName) -> sa.Engine:
    database = "postgres" if kind == "postgres" else ""
    return sa.create_engine(f"{SERVERS[kind]}/{database}", isolation_level="AUTOCOMMIT")


def _drop_statement(kind: DbName, name: str) -> str:
    if kind == "postgres":
        return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    return f"DROP DATABASE IF EXISTS `{name}`"


def create(kind: DbName, name: str, workdir: Path = DEFAULT_WORKDIR) -> BenchDatabase:
    """(Re-)create an empty database `name` (a file in `workdir` for SQLite). Not migrated."""
    if kind == "sqlite":
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return BenchDatabase(kind, f"sqlite:///{path}", name)
    admin = _admin_engine(kind)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(_drop_statement(kind, name)))
            if kind == "postgres":
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            else:
                conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except sa.exc.OperationalError as error:
        first = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseUnavailable(f"{kind} at {SERVERS[kind]} is not reachable: {first}") from error
    finally:
        admin.dispose()
    return BenchDatabase(kind, f"{SERVERS[kind]}/{name}", name)


def drop(database: BenchDatabase) -> None:
    if database.kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database.sqlite_path}{suffix}").unlink(missing_ok=True)
        return
    admin = _admin_engine(database.kind)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(_drop_statement(database.kind, database.name)))
    finally:
        admin.dispose()


def settings(database: BenchDatabase) -> dict[str, str]:
    """The durability settings in force, read from the database itself."""
    if database.kind == "sqlite":
        conn = database.raw_connect()
        try:
            journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
            synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                conn.execute("PRAGMA synchronous").fetchone()[0], "?"
            )
            fresh = sqlite3.connect(":memory:")
            default = fresh.execute("PRAGMA synchronous").fetchone()[0]
            fresh.close()
            return {
                "sqlite_version": sqlite3.sqlite_version,
                "driver_default_synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                    default, "?"
                ),
                "journal_mode": str(journal),
                "synchronous": synchronous,
                "note": "eventstore sets WAL + synchronous=FULL on every connection (dialects/sqlite.py)",
            }
        finally:
            conn.close()
    engine = sa.create_engine(database.url)
    try:
        with engine.connect() as conn:
            if database.kind == "postgres":
                names = (
                    "server_version",
                    "fsync",
                    "synchronous_commit",
                    "wal_sync_method",
                    "full_page_writes",
                )
                return {name: str(conn.exec_driver_sql(f"SHOW {name}").scalar()) for name in names}
            row = conn.exec_driver_sql(
                "SELECT @@version, @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin, "
                "@@innodb_flush_method, @@tx_isolation"
            ).one()
            return {
                "server_version": str(row[0]),
                "innodb_flush_log_at_trx_commit": str(row[1]),
                "sync_binlog": str(row[2]),
                "log_bin": str(row[3]),
                "innodb_flush_method": str(row[4]),
                "server_default_isolation": str(row[5]),
                "note": "eventstore sessions use READ COMMITTED (eventstore/dialects/mysql.py)",
            }
    finally:
        engine.dispose()
