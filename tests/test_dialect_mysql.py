"""MariaDB/MySQL (eventstore/dialects/mysql.py): the single-statement set's packet and the connections
that may send it.

What the packet records, and when it declines, is tested with PostgreSQL's one statement in
tests/test_single_set.py; here, what only a packet of several statements can get wrong.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import PoolProxiedConnection

from eventstore import Asset, Store, Writer, schema
from eventstore.database import Database
from tests.logcheck import LogInspector, fold_log

pytestmark = pytest.mark.parametrize("backend", ["mysql"], indirect=True)

ASSET = Asset("orders")
WRITER = Writer.api()


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.dispose()


def _in_transaction(conn: PoolProxiedConnection) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SELECT @@in_transaction")
        return int(cursor.fetchone()[0])


def test_an_error_in_the_middle_of_the_packet_applies_nothing_and_leaves_the_connection_usable(
    store: Store, database: Database, db_url: str
) -> None:
    store.activate(ASSET)
    store.asset(ASSET).set("k", 1)
    conn = database.autocommit_engine.raw_connection()
    try:
        _fail_in_the_middle_and_go_on(store, database, conn)
    except BaseException:
        conn.invalidate()  # a transaction left open would hold the asset's row, and the next test
        raise
    conn.close()
    history = store.history(ASSET, "k")
    assert [(c.value, c.previous, c.version) for c in history] == [(1, None, 2), (2, 1, 3)]
    inspector = LogInspector(db_url)
    try:
        log = inspector.log()
        assert [row.position for row in log] == [1, 2, 3]
        assert inspector.view() == fold_log(log)
    finally:
        inspector.close()


def _fail_in_the_middle_and_go_on(store: Store, database: Database, conn: PoolProxiedConnection) -> None:
    fast = Store(database)._single_set
    assert fast is not None
    with conn.cursor() as cursor:
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
    with database.engine.connect() as holder:
        holder.begin()
        # The head row locked elsewhere: the packet claims the asset and upserts the view, then times out
        # at the head's advance, which rolls back only that statement.
        holder.execute(sa.select(schema.log_head.c.position).with_for_update())
        with pytest.raises(sa.exc.OperationalError) as raised:
            fast.try_set(conn, ASSET.identity_hash, "k", "2", WRITER)
        assert database.backend.is_retryable(raised.value)  # Database.run_direct would run it again
        assert conn.is_valid
        assert _in_transaction(conn) == 0  # rolled back: the asset's row is not left locked
        holder.rollback()
    assert store.asset(ASSET).get("k") == 1
    assert [c.value for c in store.history(ASSET, "k")] == [1]
    assert fast.try_set(conn, ASSET.identity_hash, "k", "2", WRITER)  # the same connection serves on


def test_only_the_autocommit_connections_send_several_statements_at_once(database: Database) -> None:
    with database.engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError):
        conn.exec_driver_sql("SELECT 1; SELECT 2")
    raw = database.autocommit_engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute("SELECT 1; SELECT 2")
            assert cursor.fetchall() == ((1,),)
            assert cursor.nextset()
            assert cursor.fetchall() == ((2,),)
    finally:
        raw.close()


@pytest.mark.parametrize("autocommit", [False, True])
def test_both_engines_count_the_rows_an_update_matched(database: Database, autocommit: bool) -> None:
    # SQLAlchemy's FOUND_ROWS flag survives the flag the packet needs: an UPDATE that changes nothing
    # still reports the row it matched.
    engine = database.autocommit_engine if autocommit else database.engine
    head = schema.log_head
    with engine.begin() as conn:
        result = conn.execute(head.update().where(head.c.id == 1).values(position=head.c.position))
        assert result.rowcount == 1
