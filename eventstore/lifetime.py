"""Asset lifetime: registering, activating and deactivating assets, each recorded as an event.

An asset is active while it has a row in es_asset_active. Deactivation removes that row and hides the
state without erasing it; activation before compaction brings it back. Only compaction erases state.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from eventstore import schema
from eventstore.assets import Asset, text_hash
from eventstore.dialects import Backend
from eventstore.errors import AssetConflictError, AssetNotFoundError
from eventstore.events import Op, PendingEvent
from eventstore.log import EventLog, NothingToRecord, utcnow
from eventstore.writers import Writer

_assets = schema.assets
_active = schema.asset_active


def activate(conn: Connection, backend: Backend, log: EventLog, asset: Asset, writer: Writer) -> None:
    """Register the asset if new and make it active; NothingToRecord if it already was."""
    now = utcnow()
    conn.execute(
        backend.insert_if_absent(_assets, keys=["identity_hash"]),
        {
            "identity_hash": asset.identity_hash,
            "name": asset.name,
            "uri": asset.uri,
            "version": 0,
            "created_at": now,
            "deactivated_at": now,  # registered, not yet active
        },
    )
    claim = log.claim(conn, asset.identity_hash, 1, active_only=False)
    assert claim is not None, "the row was just ensured"
    if conn.execute(sa.select(_active.c.asset_id).where(_active.c.asset_id == claim.asset_id)).first():
        raise NothingToRecord  # already active
    name_hash, uri_hash = text_hash(asset.name), text_hash(asset.uri)
    holder = conn.execute(
        sa.select(_assets.c.name, _assets.c.uri)
        .join(_active, _active.c.asset_id == _assets.c.id)
        .where(sa.or_(_active.c.name_hash == name_hash, _active.c.uri_hash == uri_hash))
    ).first()
    if holder is not None:
        raise _conflict(asset, Asset(holder.name, holder.uri))
    try:
        conn.execute(
            _active.insert().values(
                asset_id=claim.asset_id, name_hash=name_hash, uri_hash=uri_hash, activated_at=now
            )
        )
    except sa.exc.IntegrityError:
        # Another transaction activated a same-name or same-uri asset after our check.
        raise _conflict(asset, None) from None
    conn.execute(_assets.update().where(_assets.c.id == claim.asset_id).values(deactivated_at=None))
    log.append(conn, claim, [PendingEvent(Op.ACTIVATE)], writer)


def deactivate(conn: Connection, log: EventLog, asset: Asset, writer: Writer) -> None:
    """Make the asset inactive; NothingToRecord if it already was, AssetNotFoundError if unknown."""
    claim = log.claim(conn, asset.identity_hash, 1, active_only=False)
    if claim is None:
        raise AssetNotFoundError(f"{asset!r} is not known to this store; nothing to deactivate")
    removed = conn.execute(_active.delete().where(_active.c.asset_id == claim.asset_id)).rowcount
    if not removed:
        raise NothingToRecord  # already inactive
    conn.execute(
        _assets.update().where(_assets.c.id == claim.asset_id).values(deactivated_at=claim.recorded_at)
    )
    log.append(conn, claim, [PendingEvent(Op.DEACTIVATE)], writer)


def _conflict(asset: Asset, holder: Asset | None) -> AssetConflictError:
    other = f"the active asset {holder!r}" if holder else "another active asset"
    return AssetConflictError(
        f"Cannot activate {asset!r}: its name or uri is already used by {other}. "
        "Deactivate that asset first, or give this one a different name and uri."
    )
