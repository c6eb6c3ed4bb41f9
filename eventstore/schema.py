"""The data model. Every table, key, index and constraint eventstore uses, with why it exists.

    es_assets ──< es_events          the append-only log: one row per change, never updated
        │    └──< es_state           the current key/value view `get` reads (a projection of the log)
        ├──── es_asset_active        which assets may be read and written now
        ├──< es_snapshots            the state every N versions, so as-of folds only a few events
        └──< es_compactions          what compaction removed, kept forever
    es_tokens                        the REST server's bearer tokens (hashes only) and their scopes
    es_log_head                      the last global position handed out (SQLite, MariaDB/MySQL)
    es_event_positions               the sequence of global positions (PostgreSQL; see eventstore.ordering)

Migrations (eventstore/migrations) create exactly these tables; nothing else creates tables.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from eventstore.dialects import TABLE_OPTIONS, JsonText, StateKey, UtcDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _writer_columns(prefix: str) -> list[sa.Column[object]]:
    """Who made a change (eventstore.writers.WRITER_FIELDS): kind plus, for tasks, dag/run/task/map
    index/try (denormalised, as Airflow), and the user who acted (REST token name, OS user)."""
    return [
        sa.Column(f"{prefix}kind", sa.String(16), nullable=False),  # task | watcher | api | cli | scheduler
        sa.Column(f"{prefix}dag_id", sa.String(250)),
        sa.Column(f"{prefix}run_id", sa.String(250)),
        sa.Column(f"{prefix}task_id", sa.String(250)),
        sa.Column(f"{prefix}map_index", sa.Integer),
        sa.Column(f"{prefix}try_number", sa.Integer),
        sa.Column(f"{prefix}user", sa.String(250)),
    ]


assets = sa.Table(
    "es_assets",
    metadata,
    # Assets are never deleted, so an id is never reused and always names the same (name, uri).
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # SHA-256 of name NUL uri: exact, case- and space-sensitive lookup with a short index on every database.
    sa.Column("identity_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    # The last version of the asset's stream. Writers lock this row first, which serialises the writes
    # of one asset (and only of that asset); it survives compaction so versions never restart.
    sa.Column("version", sa.BigInteger, nullable=False),
    # recorded_at of the last event: new events are stamped no earlier, so time never runs backwards
    # within a stream, even when writer clocks disagree.
    sa.Column("last_recorded_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # When the asset was last deactivated; NULL while active. Compaction's grace period counts from here.
    sa.Column("deactivated_at", UtcDateTime),
    **TABLE_OPTIONS,
)

asset_active = sa.Table(
    "es_asset_active",
    metadata,
    # A row here = the asset is active (Airflow's asset_active). Removing it hides the state.
    sa.Column("asset_id", sa.Integer, sa.ForeignKey(assets.c.id), primary_key=True),
    # At most one active asset per name and per uri, as Airflow enforces; hashes for exact comparison.
    sa.Column("name_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("uri_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("activated_at", UtcDateTime, nullable=False),
    **TABLE_OPTIONS,
)

events = sa.Table(
    "es_events",
    metadata,
    # Global position: handed out as the last step before commit (eventstore.ordering), so that no event
    # ever appears behind a reader of the feed; never reused, even after rows are deleted.
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("asset_id", sa.Integer, sa.ForeignKey(assets.c.id), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),  # 1, 2, 3, ... within the asset's stream
    sa.Column("op", sa.String(16), nullable=False),  # set | delete | clear | activate | deactivate
    sa.Column("key", StateKey),  # set/delete only
    sa.Column("value", JsonText),  # the new value's JSON text (set only)
    sa.Column("previous", JsonText),  # what the change replaced (set/delete: old value; clear: all keys)
    *_writer_columns("writer_"),
    # When the change was made. Never decreases with version within a stream, so times are found through
    # the (asset_id, version) key (projections.versions): no index of its own for every write to update.
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    # One event per version: a second writer can never slip in the same version (the optimistic guard
    # under the row lock; also serves reads of one stream in order).
    sa.UniqueConstraint("asset_id", "version"),
    # One key's history without scanning the stream (clears have key NULL and sort together).
    sa.Index(None, "asset_id", "key", "position"),
    **TABLE_OPTIONS,
)

state = sa.Table(
    "es_state",
    metadata,
    # The current key/value view: what `get` reads. Updated in the transaction that appends the event;
    # always equal to the fold of the log, and rebuildable from it.
    sa.Column("asset_id", sa.Integer, sa.ForeignKey(assets.c.id), primary_key=True),
    sa.Column("key", StateKey, primary_key=True),
    sa.Column("value", JsonText, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),  # the stream version that wrote this value
    sa.Column("updated_at", UtcDateTime, nullable=False),
    *_writer_columns("updated_by_"),
    **TABLE_OPTIONS,
)

log_head = sa.Table(
    "es_log_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1: a single row
    # The last global position handed out. Only ever grows. Updating it is the ordering lock: it is the
    # last statement of every appending transaction, so positions commit in the order they are given.
    # Used where Backend.ordering is "head_row"; on PostgreSQL it stays as migration 0003 left it.
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
    **TABLE_OPTIONS,
)

# PostgreSQL's global positions (Backend.ordering "sequence"): handed out without a lock held to COMMIT,
# so concurrent writers commit together; the feed settles the holes (eventstore.ordering). CACHE 1 (the
# default) keeps the numbers increasing across sessions, which that proof needs. Not created elsewhere.
event_positions = sa.Sequence("es_event_positions", start=1, cache=1, metadata=metadata)

compactions = sa.Table(
    "es_compactions",
    metadata,
    # One row per compaction of an asset, kept forever: "existed, compacted on ...".
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("asset_id", sa.Integer, sa.ForeignKey(assets.c.id), nullable=False, index=True),
    sa.Column("last_version", sa.BigInteger, nullable=False),  # the stream continues after this version
    sa.Column("events", sa.BigInteger, nullable=False),  # how many events were removed
    sa.Column("keys", sa.BigInteger, nullable=False),  # how many view rows were removed
    sa.Column("deactivated_at", UtcDateTime),  # when the asset was last deactivated
    sa.Column("position", sa.BigInteger, nullable=False),  # the highest position assigned at compaction
    sa.Column("compacted_at", UtcDateTime, nullable=False),
    **TABLE_OPTIONS,
)

snapshots = sa.Table(
    "es_snapshots",
    metadata,
    # The fold of an asset's stream right after `version`: a shortcut for as-of, never the truth (rebuild
    # recomputes it, verify checks it against the log). One per (asset, version), so as-of finds the newest
    # snapshot at or before a version with one primary-key seek.
    sa.Column("asset_id", sa.Integer, sa.ForeignKey(assets.c.id), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    # A JSON object mapping each key to its value's JSON text, exactly as the log stores it.
    sa.Column("state", JsonText, nullable=False),
    **TABLE_OPTIONS,
)

tokens = sa.Table(
    "es_tokens",
    metadata,
    # The REST server's credentials (eventstore.tokens). Rows are never deleted: a revoked token keeps
    # its row, so "a token was ever created" (which closes the server to anonymous requests) stays true.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Who the token belongs to; recorded as Writer.user on every REST write made with it.
    sa.Column("name", sa.String(250), nullable=False, unique=True),
    sa.Column("scope", sa.String(16), nullable=False),  # read | write | admin
    # Hex SHA-256 of the token, never the token itself: every replica checks a bearer token by looking
    # up its hash, and a leaked database leaks no usable token. Unique: one lookup finds at most one row.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),  # NULL while the token is valid
    **TABLE_OPTIONS,
)

# --- Facts every module asks the same way ------------------------------------------------------------

is_active = sa.exists().where(asset_active.c.asset_id == assets.c.id)
"""True for an `es_assets` row that has its `es_asset_active` row: the one definition of "active"."""


def asset_id_by_identity(identity_hash: sa.ColumnElement[str] | str) -> sa.Select[Any]:
    """The id of the asset with this identity hash (`Asset.identity_hash`): how every lookup finds one."""
    return sa.select(assets.c.id).where(assets.c.identity_hash == identity_hash)
