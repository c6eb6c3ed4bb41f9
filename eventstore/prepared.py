"""Hot-path statements: built with SQLAlchemy Core, compiled once, run on the DBAPI cursor.

`get` and the statements of every write (claim the stream, read the current values, upsert the view,
advance the head, insert the events) run millions of times with the same shape. Through
`Connection.execute` each costs tens of µs of Python on top of the driver (cache key, parameter
processing, result wrapping): on SQLite that is more than the statement itself (docs/performance.md
has the figures). A `Prepared` statement keeps what SQLAlchemy compiled (the SQL
text for the dialect, the order of positional parameters, the type processors of each parameter and
result column) and runs it on the cursor of the connection the caller already holds, so it takes part
in the caller's transaction.

A driver error is raised as SQLAlchemy's `DBAPIError` (`connection_invalidated` set when the driver
says the connection is gone), so `eventstore.database` handles it like any other. Statements run here
bypass SQLAlchemy's engine events and logging (`echo=True` does not show them).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

Connectable = Connection | PoolProxiedConnection
"""Where prepared statements run: a SQLAlchemy connection (in its transaction), or a pooled DBAPI
connection (`Database.run_direct` and `Database.run_direct_transaction`)."""
Row = tuple[Any, ...]
Processor = Callable[[Any], Any]


class Prepared:
    """One Core statement compiled for one dialect. Parameters by name, rows as plain tuples."""

    __slots__ = (
        "_dialect",
        "_literal_slots",
        "_names",
        "_pick",
        "_processors",
        "_results",
        "literals",
        "sql",
    )

    def __init__(self, statement: sa.Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        assert isinstance(compiled, SQLCompiler)
        self.sql: str = compiled.string
        self._dialect = dialect
        processors: dict[str, Processor] = {}
        literals: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
            if not bind.required:
                literals[name] = _process(processor, bind.effective_value)  # a literal, e.g. `id = 1`
        # Positional drivers (sqlite3, PyMySQL) take a tuple in the order the placeholders appear; the
        # others (psycopg) a dict.
        if compiled.positional:
            names = tuple(compiled.positiontup or ())  # a name appears once per placeholder
        else:
            names = tuple(dict.fromkeys(compiled.bind_names.values()))  # once per name
        self._names: tuple[str, ...] | None = None if compiled.positional else names
        picked = tuple(name for name in names if name not in literals)
        self._pick: Callable[[Mapping[str, Any]], tuple[Any, ...]] = _picker(picked)
        # Where the picked values need a processor (e.g. a datetime as the driver takes it), by index.
        self._processors = tuple((i, processors[name]) for i, name in enumerate(picked) if name in processors)
        # The literals' indexes among all placeholders, to put them back in place.
        self._literal_slots = tuple((i, literals[name]) for i, name in enumerate(names) if name in literals)
        self.literals: Mapping[str, Any] = literals
        """The binds whose value the statement itself fixes (e.g. the `1` of `id = 1`), not the caller's
        parameters: name -> value as the driver takes it."""
        # The columns as compiled: a DML statement's `exported_columns` can be stale (SQLAlchemy 2.1 keeps
        # the value memoized on the statement that `.returning()` was called on).
        results = tuple(
            entry.type.dialect_impl(dialect).result_processor(dialect, None)
            for entry in compiled._result_columns
        )
        self._results: tuple[Processor | None, ...] | None = results if any(results) else None

    # --- running ---------------------------------------------------------------------------------

    def first(self, conn: Connectable, params: Mapping[str, Any]) -> Row | None:
        """The first row the statement returns, or None."""
        cursor = self._execute(conn, self._parameters(params))
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else self._row(row)

    def all(self, conn: Connectable, params: Mapping[str, Any]) -> list[Row]:
        """Every row the statement returns."""
        cursor = self._execute(conn, self._parameters(params))
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return [self._row(row) for row in rows]

    def run(self, conn: Connectable, params: Mapping[str, Any]) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""
        cursor = self._execute(conn, self._parameters(params))
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_for_insert_id(self, conn: Connectable, params: Mapping[str, Any]) -> int:
        """Run a statement that returns no rows; the id the server reports for it (the cursor's
        `lastrowid`: on MariaDB/MySQL also the x of a `LAST_INSERT_ID(x)` the statement evaluated)."""
        cursor = self._execute(conn, self._parameters(params))
        try:
            return int(cursor.lastrowid)
        finally:
            cursor.close()

    def run_many(self, conn: Connectable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement that returns no rows once per parameter set (the driver's executemany)."""
        if len(rows) == 1:
            self.run(conn, rows[0])
            return
        self._execute(conn, [self._parameters(row) for row in rows], many=True).close()

    # --- internals -------------------------------------------------------------------------------

    def _parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...] | list[Any] | dict[str, Any]:
        values: tuple[Any, ...] | list[Any] = self._pick(params)
        if self._processors or self._literal_slots:
            values = list(values)
            for index, processor in self._processors:
                values[index] = processor(values[index])
            for index, literal in self._literal_slots:
                values.insert(index, literal)
        if self._names is None:
            return values
        return dict(zip(self._names, values, strict=True))

    def _row(self, row: Sequence[Any]) -> Row:
        if self._results is None:
            return tuple(row)
        return tuple(
            value if processor is None else processor(value)
            for value, processor in zip(row, self._results, strict=True)
        )

    def _execute(self, conn: Connectable, parameters: Any, *, many: bool = False) -> Any:
        """A cursor that has run the statement with `parameters` as the driver takes them (`_parameters`),
        or once per item of them with `many`."""
        pooled = conn.connection if isinstance(conn, Connection) else conn
        dbapi_connection = pooled.dbapi_connection
        assert dbapi_connection is not None, "the connection was invalidated"
        cursor = dbapi_connection.cursor()
        try:
            if many:
                cursor.executemany(self.sql, parameters)
            else:
                cursor.execute(self.sql, parameters)
        except self._dialect.loaded_dbapi.Error as error:
            gone = self._dialect.is_disconnect(error, dbapi_connection, cursor)
            cursor.close()
            raise driver_error(self._dialect, error, statement=self.sql, gone=gone) from error
        except BaseException:
            cursor.close()
            raise
        return cursor


def _process(processor: Processor | None, literal: Any) -> Any:
    """A literal as the driver takes it (processed once, when the statement is prepared)."""
    return literal if processor is None else processor(literal)


def _picker(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function taking the values of `names` from a mapping, as a tuple (`itemgetter` runs in C)."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    if names:
        (name,) = names
        return lambda params: (params[name],)
    return lambda params: ()


def driver_error(
    dialect: Dialect, error: Exception, *, statement: str | None = None, gone: bool = False
) -> DBAPIError:
    """The driver's `error` as SQLAlchemy's DBAPIError (OperationalError, IntegrityError, ...), as
    `Connection.execute` would have raised it; `gone`: the connection is broken."""
    wrapped = DBAPIError.instance(
        statement, None, error, dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=dialect
    )
    assert isinstance(wrapped, DBAPIError)
    return wrapped
