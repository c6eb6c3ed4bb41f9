"""Bearer tokens for the REST server: created once and shown once, kept only as a SHA-256 hash.

Every replica of the server on the same database checks a token by looking up its hash (no state in the
server), so all of them accept the same tokens and a revoke takes effect on all of them at once. Scopes
are ordered: `read` < `write` < `admin`. Rows are never deleted, so once any token has been created the
server never again accepts anonymous requests, even when every token is revoked.

This module is core: it knows nothing of HTTP (eventstore.server uses it; so does the shell).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import weakref
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import IntegrityError

from eventstore import schema
from eventstore.errors import StateStoreError
from eventstore.log import utcnow
from eventstore.prepared import Prepared
from eventstore.store import Store

PREFIX = "es_"
"""Every token starts with this, so a leaked one is easy to recognise (and to search for in code)."""

_tokens = schema.tokens


class Scope(IntEnum):
    """What a token may do; each scope includes the ones below it."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Scope:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"Unknown scope {name!r}: use read, write or admin") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as the database knows it (never the token itself)."""

    name: str
    scope: Scope
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenError(StateStoreError, ValueError):
    """A token name that is already used, or unknown."""


def token_hash(token: str) -> str:
    """The hex SHA-256 the database keeps in place of `token`."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(store: Store, name: str, scope: Scope | str) -> str:
    """Create a token called `name` with `scope` and return it. It is shown only this once."""
    if not isinstance(name, str) or not name.strip() or len(name) > 250:
        raise ValueError("A token name must be a non-empty string of at most 250 characters")
    granted = scope if isinstance(scope, Scope) else Scope.parse(scope)
    token = PREFIX + secrets.token_urlsafe(32)
    row = {
        "name": name,
        "scope": str(granted),
        "token_hash": token_hash(token),
        "created_at": utcnow(),
        "revoked_at": None,
    }

    def insert(conn: Connection) -> None:
        if conn.execute(sa.select(_tokens.c.id).where(_tokens.c.name == name)).first() is not None:
            raise TokenError(f"A token named {name!r} already exists; choose another name")
        conn.execute(_tokens.insert(), row)

    try:
        store._db.run(insert, write=True)
    except IntegrityError:
        raise TokenError(f"A token named {name!r} already exists; choose another name") from None
    return token


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token ever created, revoked ones included, oldest first."""
    query = sa.select(_tokens).order_by(_tokens.c.id)
    rows = store._db.run(lambda conn: conn.execute(query).all())
    return [_info(row) for row in rows]


def revoke_token(store: Store, name: str) -> bool:
    """Revoke the token called `name`: True if it was valid until now, False if already revoked.
    TokenError if no token has that name."""

    def revoke(conn: Connection) -> bool:
        row = conn.execute(sa.select(_tokens.c.revoked_at).where(_tokens.c.name == name)).first()
        if row is None:
            raise TokenError(f"No token is named {name!r} (see `eventstore token list`)")
        if row.revoked_at is not None:
            return False
        conn.execute(_tokens.update().where(_tokens.c.name == name).values(revoked_at=utcnow()))
        return True

    return store._db.run(revoke, write=True)


_LOOKUP = sa.select(
    _tokens.c.name, _tokens.c.scope, _tokens.c.token_hash, _tokens.c.created_at, _tokens.c.revoked_at
).where(_tokens.c.token_hash == sa.bindparam("token_hash"))
_lookups: weakref.WeakKeyDictionary[Dialect, Prepared] = weakref.WeakKeyDictionary()
"""`_LOOKUP` compiled once per dialect (so once per store): every REST request runs it."""


def authenticate(store: Store, token: str) -> TokenInfo | None:
    """The valid (not revoked) token that `token` is, or None. One prepared statement (the REST server
    runs this on every request)."""
    wanted = token_hash(token)
    database = store._db
    lookup = _lookups.get(database.dialect)
    if lookup is None:
        lookup = _lookups.setdefault(database.dialect, Prepared(_LOOKUP, database.dialect))
    row = database.run_direct(lambda conn: lookup.first(conn, {"token_hash": wanted}))
    if row is None:
        return None
    name, scope, found_hash, created_at, revoked_at = row
    # The lookup is by hash (an index seek); comparing the hashes again in constant time keeps a
    # collation or padding quirk of the database from ever admitting a near match.
    if not hmac.compare_digest(found_hash, wanted) or revoked_at is not None:
        return None
    return TokenInfo(name, Scope.parse(scope), created_at, revoked_at)


_ANY = sa.select(_tokens.c.id).limit(1)
_anys: weakref.WeakKeyDictionary[Dialect, Prepared] = weakref.WeakKeyDictionary()


def any_token_ever(store: Store) -> bool:
    """True once any token has been created (revoked ones count). One prepared statement (a server
    without tokens asks on every request)."""
    database = store._db
    query = _anys.get(database.dialect)
    if query is None:
        query = _anys.setdefault(database.dialect, Prepared(_ANY, database.dialect))
    return database.run_direct(lambda conn: query.first(conn, {})) is not None


def _info(row: sa.Row[object]) -> TokenInfo:
    return TokenInfo(row.name, Scope.parse(row.scope), row.created_at, row.revoked_at)
