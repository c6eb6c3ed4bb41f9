"""MariaDB/MySQL: READ COMMITTED, utf8mb4, exact (binary) keys, positions through LAST_INSERT_ID, and
`set` in one round trip, as a stored procedure.

Global positions come from the `es_log_head` row (eventstore.ordering.HeadRowOrdering). MariaDB has no
UPDATE ... RETURNING, so the new head comes back through LAST_INSERT_ID(x), which stores x and returns it
in the statement's OK packet: no second round trip.

The single-statement set (`eventstore.single_set`) is the log's own transaction, statement for
statement and in its order, sent as one multi-statement packet (one round trip instead of seven):

    BEGIN;
    SET @eventstore_version = NULL, @eventstore_previous = NULL;
    UPDATE es_assets SET version = (@eventstore_version := version + 1), last_recorded_at = <no earlier>
      WHERE identity_hash = :asset AND <active> AND <every projection's condition>;
    WITH claim AS (SELECT id, version, last_recorded_at FROM es_assets
                   WHERE identity_hash = :asset AND version = @eventstore_version)
      SELECT @eventstore_previous := (SELECT value FROM es_state WHERE asset_id = claim.id AND key = :key)
      FROM claim;
    <each projection's writes, e.g. INSERT INTO es_state ... WITH claim AS (...) SELECT ... FROM claim
      ON DUPLICATE KEY UPDATE ...>;
    UPDATE es_log_head SET position = LAST_INSERT_ID(position + 1)
      WHERE id = 1 AND @eventstore_version IS NOT NULL;
    INSERT INTO es_events ... WITH claim AS (...) SELECT LAST_INSERT_ID(), claim.id, claim.version, 'set',
      :key, :value, @eventstore_previous, claim.last_recorded_at, <writer> FROM claim;
    COMMIT

Why it is exact: it takes the same locks in the same order as the log's transaction (the asset's row
first, the head row last, held to COMMIT: the feed stays gap-free), and each statement sees what
committed before it (READ COMMITTED), so the old value is read after the asset's lock is held, as the
log's read-back does: no decline is needed for a concurrent writer, who is simply waited for. If the
claim matches no row (unknown or inactive asset, a projection's condition unmet), the user variable
stays NULL, every later statement matches nothing, and the transaction commits nothing: the store then
runs the log's transaction. An error stops the packet where it occurs; the transaction is then rolled
back (or the connection discarded) before the error is raised, as after a failed statement of the log's.

The server runs these statements as a stored procedure (`_Procedure`): the same text from BEGIN to
COMMIT, created once under a name that hashes it, and called as `SET @es_<parameter> = ...; CALL
es_set_<hash>()`, one variable per parameter of the set (the key, the value, the writer's fields, ...).
A packet's statements are parsed again at every set, and that parsing was a large part of what a set
cost the server beyond its commit (docs/performance.md). Where the procedure cannot be created (no
CREATE ROUTINE privilege), the packet is sent as it is.

Only the autocommit engine's connections (`Database.run_direct`, where the packet runs) may send several
statements at once (`CLIENT.MULTI_STATEMENTS`, set in `configure`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from pymysql.constants import CLIENT
from pymysql.converters import escape_item
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from eventstore import schema
from eventstore.connections import socket_closed
from eventstore.dialects.base import AUTOCOMMIT_OPTION, Backend, Processors
from eventstore.events import Op
from eventstore.log import claim_versions
from eventstore.ordering import HeadRowOrdering, Ordering
from eventstore.prepared import Connectable, Prepared, Row, driver_error
from eventstore.single_set import KEY, VALUE, WRITER, SetParts, SingleSet
from eventstore.writers import WRITER_FIELDS

_head = schema.log_head
_assets = schema.assets
_events = schema.events


class LastInsertIdOrdering(HeadRowOrdering):
    """The head row, advanced with LAST_INSERT_ID(x) so its new value comes back in the OK packet."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        advanced = sa.func.last_insert_id(_head.c.position + sa.bindparam("n"))
        self._advance_to_last_insert_id = Prepared(
            _head.update().where(_head.c.id == 1).values(position=advanced), dialect
        )

    def reserve(self, conn: Connectable, n: int) -> list[int]:
        last = self._advance_to_last_insert_id.run_for_insert_id(conn, {"n": n})  # locked until commit
        return list(range(last - n + 1, last + 1))


class MySQLBackend(Backend):
    names = ("mysql", "mariadb")
    claim_reads_current = True  # the claim is read back by a later statement (READ COMMITTED)

    def state_key_type(self) -> sa.types.TypeEngine[Any]:
        # MariaDB/MySQL collations ignore case or trailing spaces: keys are stored as VARBINARY of their
        # UTF-8 bytes (512 characters of up to 4 bytes each), which compares them exactly.
        return mysql.VARBINARY(2048)

    def state_key_processors(self) -> Processors:
        return (_encode_utf8, _decode_utf8)

    def json_text_type(self) -> sa.types.TypeEngine[Any]:
        return mysql.LONGTEXT()  # TEXT holds only 64 KiB here

    def datetime_type(self) -> sa.types.TypeEngine[Any]:
        return mysql.DATETIME(fsp=6)  # microseconds

    def make_ordering(self, dialect: Dialect) -> Ordering:
        return LastInsertIdOrdering(dialect)

    def single_set(self, dialect: Dialect, ordering: Ordering, parts: SetParts) -> SingleSet:
        packet = _Packet(_single_set_statements(parts), dialect)
        return SingleSet(packet, parts, prepare=packet.prepare)

    def engine_options(self, url: URL) -> dict[str, Any]:
        # READ COMMITTED: each statement sees what committed before it, as on PostgreSQL, and InnoDB
        # takes no gap locks, so concurrent appends to different assets do not block each other.
        return {"isolation_level": "READ COMMITTED", "connect_args": {"charset": "utf8mb4"}}

    def configure(self, engine: Engine) -> None:
        if engine.get_execution_options().get(AUTOCOMMIT_OPTION):

            @sa.event.listens_for(engine, "do_connect")
            def _allow_packets(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
                # The single-statement set's packet (module doc). SQLAlchemy's own flags (FOUND_ROWS) stay.
                params["client_flag"] = params.get("client_flag", 0) | CLIENT.MULTI_STATEMENTS

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Also for the transactions that `BEGIN` starts on an autocommit connection
            # (Database.run_direct_transaction), which the engine's isolation_level does not cover.
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def upsert(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        stmt = mysql.insert(table)
        updates = {c.name: stmt.inserted[c.name] for c in table.columns if c.name not in keys}
        return stmt.on_duplicate_key_update(updates)

    def insert_if_absent(self, table: sa.Table, keys: Sequence[str]) -> sa.Executable:
        first_key = table.c[keys[0]]
        return mysql.insert(table).on_duplicate_key_update({first_key.name: first_key})

    def is_retryable(self, error: DBAPIError) -> bool:
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        return code in (1213, 1205)  # deadlock found; lock wait timeout exceeded

    def is_lost_connection(self, error: DBAPIError) -> bool:
        # A server session killed during the handshake: "Lost connection to MySQL server" (2013) or "MySQL
        # server has gone away" (2006) while connecting, which SQLAlchemy does not mark as a disconnect.
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        return code in (2006, 2013, 2055)

    def is_closed(self, dbapi_connection: Any) -> bool:
        sock = dbapi_connection._sock  # PyMySQL's socket; None once the connection is closed
        return sock is None or socket_closed(sock.fileno())

    def rest_after_batch(self, batch_seconds: float) -> float:
        # Deleting flat out, batch after batch, InnoDB (default 128 MiB buffer pool, 96 MiB redo log) falls
        # behind flushing, and every writer's commit waits for it. Resting as long as the batch took keeps
        # writes' latency during compaction low (docs/garbage-collection.md has the measurements).
        return batch_seconds

    @contextlib.contextmanager
    def migration_lock(self, conn: Connection) -> Iterator[None]:
        # MariaDB/MySQL have no transaction-scoped advisory lock, and DDL commits implicitly anyway.
        got = conn.execute(sa.text("SELECT GET_LOCK('eventstore_migrations', 120)")).scalar()
        if got != 1:
            raise TimeoutError("waited 120 s for another process to finish migrating this database")
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK('eventstore_migrations')"))


class _Packet:
    """Statements sent together in one round trip and run in order (a multi-statement packet): one
    transaction, from its BEGIN to its COMMIT. Parameters by name, as for `Prepared`."""

    def __init__(self, statements: Sequence[sa.Executable], dialect: Dialect) -> None:
        self._statements = [Prepared(statement, dialect) for statement in statements]
        # PyMySQL's placeholders are named (`%(name)s`), and each statement names its own anonymous
        # binds (`param_1`, ...): in the packet, statement i's are renamed `s<i>_<name>`.
        self.sql = ";\n".join(
            _BIND.sub(functools.partial(_renamed, f"s{i}_"), statement.sql)
            for i, statement in enumerate(self._statements)
        )
        self._dialect = dialect
        self._rollback = Prepared(sa.text("ROLLBACK"), dialect)
        # The statements between BEGIN and COMMIT, as the server-side procedure's body. Each of the set's
        # parameters (the key, the value, the writer, ...) is one user variable, `@es_<name>`, however
        # many statements read it; a statement's literals (e.g. the `1` of `id = 1`) are written in
        # place where they read the same under every sql_mode, else kept in a variable of their own,
        # `@es_s<i>_<name>`. A SELECT keeps its row in the session (INTO) instead of sending it.
        self._sources: dict[str, tuple[int, str]] = {}
        """Each user variable of the procedure (without its `@es_`): the first statement that binds it,
        and the bind's name there."""
        body = []
        for i, (original, statement) in enumerate(zip(statements, self._statements, strict=True)):
            if i in (0, len(self._statements) - 1):
                continue
            text = _BIND.sub(functools.partial(self._variable, i, statement), statement.sql)
            body.append(f"{text} INTO {_DISCARDED}" if isinstance(original, sa.Select) else text)
        self._source_statements = sorted({i for i, _ in self._sources.values()})
        self._procedure = _Procedure(body, list(self._sources), dialect, self._rollback)

    def _variable(self, i: int, statement: Prepared, match: re.Match[str]) -> str:
        """A placeholder of statement `i`, matched by _BIND, as the procedure's text has it: a literal's
        value, else the user variable of the parameter (and an escaped `%` as the `%` it stands for: the
        procedure's text is sent without parameters)."""
        name = match[1]
        if name is None:
            return "%"
        variable = name
        if name in statement.literals:
            literal = statement.literals[name]
            # A number, or a word: no quote or backslash whose escaping would depend on the sql_mode.
            if isinstance(literal, int) or (isinstance(literal, str) and literal.isidentifier()):
                return str(escape_item(literal, "utf8mb4"))
            variable = f"s{i}_{name}"
        self._sources.setdefault(variable, (i, name))
        return f"@es_{variable}"

    def first(self, conn: Connectable, params: Mapping[str, Any]) -> Row | None:
        """(the event's position,) if the set was recorded; None if the claim matched no row."""
        pooled = conn.connection if isinstance(conn, Connection) else conn
        if self._procedure.usable is not False:
            # Each variable's value from the first statement binding it: every statement binding a
            # parameter binds it with the same type, so the same value (tests/test_dialect_mysql.py).
            bound = {i: self._parameters(i, params) for i in self._source_statements}
            variables = {variable: bound[i][name] for variable, (i, name) in self._sources.items()}
            found = self._procedure.call(pooled, variables)
            if found is not _NO_PROCEDURE:
                return cast(Row | None, found)
        packet = {
            f"s{i}_{name}": value
            for i in range(len(self._statements))
            for name, value in self._parameters(i, params).items()
        }
        return self._send(pooled, packet)

    def _parameters(self, i: int, params: Mapping[str, Any]) -> dict[str, Any]:
        """Statement i's parameters, as PyMySQL takes them (by name)."""
        values = self._statements[i]._parameters(params)
        assert isinstance(values, dict), "PyMySQL takes named parameters"
        return values

    def prepare(self, pooled: PoolProxiedConnection) -> None:
        """Create the procedure (or find it refused) before the first set."""
        dbapi_connection = pooled.dbapi_connection
        assert dbapi_connection is not None, "the connection was invalidated"
        self._procedure.ensure(dbapi_connection)

    def _send(self, pooled: PoolProxiedConnection, values: Mapping[str, Any]) -> Row | None:
        """The packet itself (where the procedure cannot be created)."""
        dbapi_connection = pooled.dbapi_connection
        assert dbapi_connection is not None, "the connection was invalidated"
        # Each statement's (rows changed, insert id), read from its OK packet.
        results: list[tuple[int, int]] = []
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, values)
            results.append((cursor.rowcount, cursor.lastrowid))
            while cursor.nextset():  # every reply is read: nothing is left for the next call
                results.append((cursor.rowcount, cursor.lastrowid))
        except self._dialect.loaded_dbapi.Error as error:
            gone = self._dialect.is_disconnect(error, dbapi_connection, cursor)
            cursor.close()
            # The server ran the statements up to the failed one and sent nothing after it.
            if not gone:
                _roll_back(pooled, self._rollback)
            raise driver_error(self._dialect, error, statement=self.sql, gone=gone) from error
        finally:
            cursor.close()
        # BEGIN, SET, the claim, ..., the head's advance, the event's insert, COMMIT.
        claimed, events, position = results[2][0], results[-2][0], results[-3][1]
        if events != 1:
            assert claimed == 0, "a claimed stream always gets its event"
            return None
        return (position,)


class _Procedure:
    """The packet's statements, from its BEGIN to its COMMIT, as a stored procedure: the server parses
    them once per connection instead of at every set (docs/performance.md). Its name hashes its text and
    the session's sql_mode, which a procedure keeps from its creation: processes of two eventstore
    versions, or with two sql_modes, never run each other's. Created on first use with CREATE PROCEDURE
    IF NOT EXISTS (once per store, on its autocommit connection, before the first set is sent: a
    connection lost meanwhile is tried again like a read's), with SQL SECURITY INVOKER: it runs
    with the caller's rights, never its creator's, and works on after its creator's account is gone.

    A call is one round trip: `SET @es_<parameter> = ..., ...; CALL es_set_<hash>()`, the values in
    user variables of the session that the body reads where the packet has its parameters, and one
    row back (the final SELECT). An error
    inside rolls the transaction back (the EXIT HANDLER) and is raised again with its own code, so a
    deadlock is still retried like any other. `usable` becomes False, and the packet is sent as it is
    from then on, where the database refuses to create or run it (no CREATE ROUTINE or EXECUTE
    privilege), or where only a procedure fails: its values, in user variables, compare under the
    connection's collation, and a table of another collation refuses the comparison."""

    def __init__(
        self, body: Sequence[str], names: Sequence[str], dialect: Dialect, rollback: Prepared
    ) -> None:
        # The session keeps its variables: those holding a value are cleared, not kept to the next set.
        copies = [*(f"@es_{name}" for name in names if name.endswith("value")), _PREVIOUS, _DISCARDED]
        self._definition = "\n".join(
            [
                "BEGIN",
                "DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN ROLLBACK; RESIGNAL; END;",
                "START TRANSACTION;",
                *(f"{statement};" for statement in body),
                f"SET {_EVENTS} = ROW_COUNT();",  # the event's insert is the body's last statement
                "COMMIT;",
                "SET " + ", ".join(f"{variable} = NULL" for variable in copies) + ";",
                f"SELECT {_EVENTS}, LAST_INSERT_ID();",  # LAST_INSERT_ID(): the head's advance
                "END",
            ]
        )
        self._assignments = ", ".join(f"@es_{name} = %({name})s" for name in names)
        self.name = ""  # given at creation, with the session's sql_mode
        self.call_sql = ""
        self.usable: bool | None = None  # unknown until the first call
        self._dialect = dialect
        self._rollback = rollback

    def call(self, pooled: PoolProxiedConnection, values: Mapping[str, Any], *, again: bool = True) -> Any:
        """As `_Packet.first`, or _NO_PROCEDURE where the procedure cannot serve (the packet then does)."""
        dbapi_connection = pooled.dbapi_connection
        assert dbapi_connection is not None, "the connection was invalidated"
        if not self.ensure(dbapi_connection):
            return _NO_PROCEDURE
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.call_sql, values)
            # The SET's reply, the final SELECT, the CALL's own reply: every one is read, nothing is left
            # for the next call.
            last: tuple[Any, ...] | None = None
            while True:
                if cursor.description is not None:
                    last = cursor.fetchone() or last
                if not cursor.nextset():
                    break
            assert last is not None and len(last) == 2, "the procedure ends with SELECT events, position"
            events, position = last
        except self._dialect.loaded_dbapi.Error as error:
            gone = self._dialect.is_disconnect(error, dbapi_connection, cursor)
            cursor.close()
            code = error.args[0] if error.args else None
            # The EXIT HANDLER rolled back; the ROLLBACK is for an error it could not catch.
            if not gone and _roll_back(pooled, self._rollback):
                if code in _PROCEDURE_ONLY:  # nothing of this call was applied (the handler rolled back)
                    self.usable = False
                    return _NO_PROCEDURE
                if code == _NO_SUCH_PROCEDURE and again:
                    # Dropped since (say, a database restored from a dump without routines): nothing of
                    # this call ran, so create it again and call once more.
                    self.usable = None
                    return self.call(pooled, values, again=False)
            raise driver_error(self._dialect, error, statement=self.call_sql, gone=gone) from error
        finally:
            cursor.close()
        return (position,) if events == 1 else None

    def ensure(self, dbapi_connection: Any) -> bool:
        """Create the procedure on first use: whether it can serve."""
        if self.usable is None:
            self.usable = self.create(dbapi_connection)
        return self.usable

    def create(self, dbapi_connection: Any) -> bool:
        """Create the procedure unless it exists: True, or False where the database refuses it."""
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT @@SESSION.sql_mode")
            (sql_mode,) = cursor.fetchone()
            digest = hashlib.sha256(f"{sql_mode}\n{self._definition}".encode()).hexdigest()[:16]
            self.name = f"es_set_{digest}"
            self.call_sql = f"SET {self._assignments};\nCALL {self.name}()"
            # No parameters: the text is sent as it is.
            cursor.execute(
                f"CREATE PROCEDURE IF NOT EXISTS {self.name}() MODIFIES SQL DATA SQL SECURITY INVOKER\n"
                f"{self._definition}"
            )
        except self._dialect.loaded_dbapi.Error as error:
            code = error.args[0] if error.args else None
            if code == _ALREADY_EXISTS:  # created by another process at the same moment
                return True
            if code in _REFUSED:
                return False
            gone = self._dialect.is_disconnect(error, dbapi_connection, cursor)
            raise driver_error(self._dialect, error, statement="CREATE PROCEDURE", gone=gone) from error
        finally:
            cursor.close()
        return True


def _roll_back(pooled: PoolProxiedConnection, rollback: Prepared) -> bool:
    """After an error the server answered in a packet or a call, which stops where it occurs and may leave
    the transaction open (a lock wait timeout rolls back only its statement): roll back. True if done;
    False if the ROLLBACK failed too, and the connection, maybe still in the transaction, was discarded."""
    try:
        rollback.run(pooled, {})
    except DBAPIError:
        pooled.invalidate()
        return False
    return True


_NO_PROCEDURE: Any = object()
_NO_SUCH_PROCEDURE = 1305  # ER_SP_DOES_NOT_EXIST
_ALREADY_EXISTS = 1304  # ER_SP_ALREADY_EXISTS
# Access denied (database, command, privilege, routine), and binary logging's SUPER requirement.
_REFUSED = frozenset({1044, 1142, 1227, 1370, 1419})
# Errors only the procedure meets: EXECUTE denied (1370), a definer that no longer exists (1449),
# an illegal mix of collations (1267, 1270, 1271).
_PROCEDURE_ONLY = frozenset({1370, 1449, 1267, 1270, 1271})
_EVENTS = "@eventstore_events"
_DISCARDED = "@es_discarded"
"""Where a SELECT of the procedure's body puts its row instead of sending it (the old value's read, which
sets @eventstore_previous as it runs)."""


def _renamed(prefix: str, match: re.Match[str]) -> str:
    """A placeholder matched by _BIND with `prefix` before its name (an escaped `%` as it was)."""
    return match[0] if match[1] is None else f"%({prefix}{match[1]})s"


def _assign(variable: str, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """`(@variable := value)`: a MariaDB/MySQL user variable set where the expression is evaluated."""
    return sa.literal_column(variable).op(":=")(value).self_group()


_BIND = re.compile(r"%%|%\((\w+)\)s")
"""A placeholder of PyMySQL's named style (its name in group 1), or an escaped `%`."""

_VERSION, _PREVIOUS = "@eventstore_version", "@eventstore_previous"


def _single_set_statements(parts: SetParts) -> list[sa.Executable]:
    """The statements of the single-statement set's packet (module doc)."""
    conditions = [part.only_if for part in parts.projections if part.only_if is not None]
    claim_stream = claim_versions.values(
        version=_assign(_VERSION, _assets.c.version + sa.bindparam("n"))
    ).where(_assets.c.identity_hash == sa.bindparam("asset_identity"), schema.is_active, *conditions)
    claim = (
        sa.select(_assets.c.id, _assets.c.version, _assets.c.last_recorded_at)
        .where(
            _assets.c.identity_hash == sa.bindparam("asset_identity"),
            _assets.c.version == sa.literal_column(_VERSION),
        )
        .cte("claim")
    )
    read_previous = sa.select(_assign(_PREVIOUS, parts.current_value(claim.c.id))).select_from(claim)
    # MariaDB cannot run a data-modifying CTE: each projection's runs as a statement of its own.
    writes = [part.writes(claim).element for part in parts.projections if part.writes is not None]
    assert all(isinstance(write, sa.Executable) for write in writes), "data-modifying CTEs"
    advance_head = (
        _head.update()
        .where(_head.c.id == 1, sa.literal_column(_VERSION).is_not(None))
        .values(position=sa.func.last_insert_id(_head.c.position + 1))
    )
    event_row = sa.select(
        sa.func.last_insert_id(),
        claim.c.id,
        claim.c.version,
        sa.literal(Op.SET.value),
        KEY,
        VALUE,
        sa.literal_column(_PREVIOUS),
        claim.c.last_recorded_at,
        *WRITER,
    ).select_from(claim)
    columns = ["position", "asset_id", "version", "op", "key", "value", "previous", "recorded_at"]
    insert_event = _events.insert().from_select(
        [*columns, *(f"writer_{field}" for field in WRITER_FIELDS)], event_row
    )
    return [
        sa.text("BEGIN"),
        sa.text(f"SET {_VERSION} = NULL, {_PREVIOUS} = NULL"),
        claim_stream,
        read_previous,
        *cast(list[sa.Executable], writes),
        advance_head,
        insert_event,
        sa.text("COMMIT"),
    ]


def _encode_utf8(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def _decode_utf8(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).decode()


BACKEND = MySQLBackend()
