"""Everything that differs between SQLite, PostgreSQL and MariaDB/MySQL, and nothing else.

- `base`: the `Backend` interface and `backend_for(dialect_name)`;
- `sqlite`, `postgresql`, `mysql`: one module per database, each with its `BACKEND`: engine set-up,
  upserts, locking, retryable errors, how global positions are handed out (eventstore.ordering) and,
  on PostgreSQL, the single-statement set (eventstore.single_set);
- `types`: the column types that must behave alike everywhere, each asking the backend what it needs.

The rest of eventstore is dialect-free SQLAlchemy Core.
"""

from eventstore.dialects.base import AUTOCOMMIT_OPTION, WRITE_OPTION, Backend, backend_for
from eventstore.dialects.types import TABLE_OPTIONS, JsonText, StateKey, UtcDateTime

__all__ = [
    "AUTOCOMMIT_OPTION",
    "TABLE_OPTIONS",
    "WRITE_OPTION",
    "Backend",
    "JsonText",
    "StateKey",
    "UtcDateTime",
    "backend_for",
]
