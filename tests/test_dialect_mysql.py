"""MariaDB/MySQL (eventstore/dialects/mysql.py): the single-statement set's packet and the connections
that may send it.

What the packet records, and when it declines, is tested with PostgreSQL's one statement in
tests/test_single_set.py; here, what only a packet of several statements can get wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import PoolProxiedConnection

from eventstore import Asset, OutcomeUnknownError, Store, StoreUnavailableError, Writer, schema
from eventstore.database import Database
from eventstore.dialects import mysql as mysql_dialect
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


def _procedures(db_url: str) -> list[str]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.text(
                        "SELECT routine_name FROM information_schema.routines "
                        "WHERE routine_schema = DATABASE() AND routine_name LIKE 'es\\_set\\_%'"
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


def _drop_procedures(db_url: str) -> None:
    """The test session's database outlives each test: procedures earlier tests created are dropped."""
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            for name in _procedures(db_url):
                conn.execute(sa.text(f"DROP PROCEDURE {name}"))
    finally:
        engine.dispose()


def test_a_set_runs_as_one_stored_procedure_created_once_and_again_if_dropped(
    store: Store, db_url: str, inspector: LogInspector
) -> None:
    _drop_procedures(db_url)
    store.activate(ASSET)
    store.asset(ASSET).set("k", 1)
    (name,) = _procedures(db_url)
    _drop_procedures(db_url)
    store.asset(ASSET).set("k", 2)  # dropped (a restore without routines, say): created again
    assert _procedures(db_url) == [name]
    store.asset(ASSET).set("k", 3)
    assert [(c.value, c.previous) for c in store.history(ASSET, "k")] == [(1, None), (2, 1), (3, 2)]
    log = inspector.log()
    assert [row.position for row in log] == [1, 2, 3, 4]
    assert inspector.view() == fold_log(log)


def test_the_procedure_reads_each_parameter_from_one_variable_that_every_statement_binds_alike(
    store: Store, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The procedure takes a parameter that several statements bind (the key, the value, the writer)
    # from one of them: every statement must turn it into the same value.
    fast = Store(database)._single_set
    assert fast is not None
    packet = fast._statement  # type: ignore[attr-defined]
    captured: list[dict[str, Any]] = []
    first = packet.first
    monkeypatch.setattr(
        packet, "first", lambda conn, params: captured.append(dict(params)) or first(conn, params)
    )
    store.activate(ASSET)
    conn = database.autocommit_engine.raw_connection()
    try:
        assert fast.try_set(conn, ASSET.identity_hash, "k é", '{"a": 1}', Writer.task("d", "r", "t"))
    finally:
        conn.close()
    (params,) = captured
    bound = [packet._parameters(i, params) for i in range(len(packet._statements))]
    for source, name in packet._sources.values():
        assert {repr(values[name]) for values in bound if name in values} == {repr(bound[source][name])}
    assert store.asset(ASSET).get("k é") == {"a": 1}
    # Only the final SELECT sends a row: the old value's read keeps its row in the session.
    assert packet._procedure._definition.count("INTO @es_discarded") == 1


def test_a_literal_that_is_not_a_number_or_a_word_stays_a_variable(database: Database) -> None:
    # Its escaping would depend on the sql_mode (NO_BACKSLASH_ESCAPES), which the procedure's text cannot.
    statements = [
        sa.text("BEGIN"),
        sa.select(sa.literal("it's"), sa.literal("set"), sa.literal(7), sa.bindparam("key")),
        sa.text("COMMIT"),
    ]
    packet = mysql_dialect._Packet(statements, database.dialect)
    body = packet._procedure._definition
    assert "@es_s1_param_1" in body and "'set'" in body and " 7" in body and "@es_key" in body
    assert packet._sources == {"s1_param_1": (1, "param_1"), "key": (1, "key")}


def test_no_copy_of_a_value_stays_in_the_session_after_a_set(store: Store, database: Database) -> None:
    fast = Store(database)._single_set
    assert fast is not None
    store.activate(ASSET)
    conn = database.autocommit_engine.raw_connection()
    try:
        for text in ('"first"', '"second"'):  # the second set reads the first as the old value
            assert fast.try_set(conn, ASSET.identity_hash, "k", text, WRITER)
        with conn.cursor() as cursor:
            cursor.execute("SELECT @es_value, @eventstore_previous, @es_discarded")
            assert cursor.fetchone() == (None, None, None)
    finally:
        conn.close()
    history = store.history(ASSET, "k")
    assert [(c.value, c.previous) for c in history] == [("first", None), ("second", "first")]


def test_without_the_privilege_to_create_it_the_packet_is_sent_instead(store: Store, db_url: str) -> None:
    _drop_procedures(db_url)
    store.activate(ASSET)
    with _user(db_url, "SELECT, INSERT, UPDATE, DELETE") as limited_url:
        limited = Store(Database(limited_url))
        try:
            for value in (1, 2):
                limited.asset(ASSET).set("k", value)
            fast = limited._single_set
            assert fast is not None and fast._statement._procedure.usable is False  # type: ignore[attr-defined]
        finally:
            limited.close()
    assert _procedures(db_url) == []
    assert [(c.value, c.previous) for c in store.history(ASSET, "k")] == [(1, None), (2, 1)]


def test_processes_that_create_it_at_the_same_moment_all_record_their_sets(
    store: Store, db_url: str, inspector: LogInspector
) -> None:
    from tests import workers

    _drop_procedures(db_url)
    store.activate(workers.SHARED)
    workers.run_processes(workers.set_one_key, [(db_url, worker, 25) for worker in range(4)])
    assert len(_procedures(db_url)) == 1
    log = inspector.log()
    assert len(log) == 1 + 4 * 25
    assert inspector.view() == fold_log(log)


@contextmanager
def _user(db_url: str, privileges: str) -> Iterator[str]:
    """A server account with `privileges` on the test's database; its URL. Dropped afterwards."""
    url = sa.engine.make_url(db_url)
    user = f"es_user_{os.getpid()}"  # accounts are the server's: one per test process
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
            conn.execute(sa.text(f"CREATE USER '{user}'@'%'"))
            conn.execute(sa.text(f"GRANT {privileges} ON `{url.database}`.* TO '{user}'@'%'"))
        yield url.set(username=user).render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'%'"))
        engine.dispose()


def test_the_procedure_runs_with_the_callers_rights_not_its_creators(store: Store, db_url: str) -> None:
    _drop_procedures(db_url)
    store.activate(ASSET)
    store.asset(ASSET).set("k", 1)  # created by root
    created = store._single_set._statement._procedure  # type: ignore[union-attr]
    with _user(db_url, "SELECT, EXECUTE") as reader_url:
        reader = Store(Database(reader_url))
        try:
            # An account that may run the procedure but not write the tables (eventstore itself would
            # not call it from such an account: its CREATE ... IF NOT EXISTS is refused first).
            calls = reader._single_set._statement._procedure  # type: ignore[union-attr]
            calls.name, calls.call_sql, calls.usable = created.name, created.call_sql, True
            with pytest.raises(StoreUnavailableError, match="command denied") as raised:
                reader.asset(ASSET).set("k", 2)
            # The server answered with an error: the write surely was not applied.
            assert not isinstance(raised.value, OutcomeUnknownError)
        finally:
            reader.close()
    assert store.asset(ASSET).get("k") == 1
    assert [c.value for c in store.history(ASSET, "k")] == [1]


def test_a_session_of_another_sql_mode_gets_a_procedure_of_its_own(store: Store, db_url: str) -> None:
    _drop_procedures(db_url)
    store.activate(ASSET)
    store.asset(ASSET).set("k", 1)
    lax = Store(Database(f"{db_url}?init_command=SET+sql_mode%3D%27%27"))
    try:
        lax.asset(ASSET).set("k", 2)
    finally:
        lax.close()
    assert len(_procedures(db_url)) == 2
    assert [(c.value, c.previous) for c in store.history(ASSET, "k")] == [(1, None), (2, 1)]


def test_where_only_the_procedure_fails_the_packet_takes_over(store: Store, db_url: str) -> None:
    # A table of another collation than the connection's: the procedure's values, in session variables,
    # cannot be compared with it (as after a server upgrade that changed the default collation).
    _drop_procedures(db_url)
    store.activate(ASSET)
    engine = sa.create_engine(db_url)
    column = "identity_hash VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE es_assets MODIFY {column} COLLATE utf8mb4_unicode_ci"))
        store.asset(ASSET).set("k", 1)
        store.asset(ASSET).set("k", 2)
        fast = store._single_set
        assert fast is not None and fast._statement._procedure.usable is False  # type: ignore[attr-defined]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE es_assets MODIFY {column} COLLATE utf8mb4_general_ci"))
        engine.dispose()
    assert [(c.value, c.previous) for c in store.history(ASSET, "k")] == [(1, None), (2, 1)]


def test_a_connection_lost_while_creating_the_procedure_is_tried_again_before_the_set_is_sent(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drop_procedures(db_url)
    store.activate(ASSET)
    create = mysql_dialect._Procedure.create
    killed: list[int] = []

    def create_on_a_killed_session(procedure: Any, dbapi_connection: Any) -> bool:
        if not killed:  # the first time, the server ends the session first
            killed.append(dbapi_connection.thread_id())
            admin = sa.create_engine(db_url)
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f"KILL {killed[0]}"))
            finally:
                admin.dispose()
        return create(procedure, dbapi_connection)

    monkeypatch.setattr(mysql_dialect._Procedure, "create", create_on_a_killed_session)
    store.asset(ASSET).set("k", 1)  # not OutcomeUnknownError: the set itself had not been sent
    assert killed
    assert len(_procedures(db_url)) == 1
    assert [(c.value, c.previous) for c in store.history(ASSET, "k")] == [(1, None)]
