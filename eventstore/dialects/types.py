"""Column types that must behave exactly alike on every database.

Each asks the database's backend (`eventstore.dialects.backend_for`) for the type and the conversions it
needs there, so that what differs stays in that database's own module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


def _backend(dialect: Dialect) -> Any:
    from eventstore.dialects.base import backend_for  # the backends import the schema, which imports this

    return backend_for(dialect.name)


class StateKey(sa.types.TypeDecorator[str]):
    """A state key, compared exactly (case, trailing spaces) on every database (`Backend.state_key_type`)."""

    impl = sa.String(512)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(_backend(dialect).state_key_type())

    def bind_processor(self, dialect: Dialect) -> Callable[[str | None], Any] | None:
        # Only where the backend stores keys differently; elsewhere no per-value Python call at all.
        return _backend(dialect).state_key_processors()[0]  # type: ignore[no-any-return]

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], str | None] | None:
        return _backend(dialect).state_key_processors()[1]  # type: ignore[no-any-return]


class JsonText(sa.types.TypeDecorator[str]):
    """JSON text of any size (`Backend.json_text_type`): values are stored as text, never a JSON type."""

    impl = sa.Text()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(_backend(dialect).json_text_type())


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime with microseconds on every database (stored as naive UTC)."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        return dialect.type_descriptor(_backend(dialect).datetime_type())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    # A backend may convert datetimes faster than the generic path (SQLite: `Backend.datetime_processors`).
    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        processors = _backend(dialect).datetime_processors()
        return processors[0] if processors else super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], datetime | None] | None:
        processors = _backend(dialect).datetime_processors()
        if processors:
            return processors[1]  # type: ignore[no-any-return]
        return super().result_processor(dialect, coltype)


def naive_utc(value: datetime) -> datetime:
    """`value` as naive UTC; a naive input is refused (eventstore stores aware UTC times only)."""
    if value.tzinfo is None:
        raise ValueError(f"{value!r} is a naive datetime; eventstore stores aware UTC times only")
    return value.astimezone(UTC).replace(tzinfo=None)


# MariaDB/MySQL table options (InnoDB, utf8mb4); SQLAlchemy's other dialects ignore `mysql_*` keywords.
TABLE_OPTIONS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}
