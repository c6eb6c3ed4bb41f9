"""`RemoteStore`: the Store surface of CONTRACT §2–5 over the REST API of §8.

It implements `eventstore.protocol.StateStore`, so the accessor (`AssetState`), the task context and
`run_task` are the very ones the local store uses: the same rules, the same errors, no second copy.

How the interface maps onto routes (asset ids are resolved once per asset and cached: an (name, uri)
keeps its id for ever):

- `set_value`: `PUT /api/v2/assets/{id}/state-store/{key}` (409 → the asset is not active).
- `read_state` / `read_value`: `GET .../state-store/{key}` (its ETag is the asset's version) or the
  paged listing, bracketed by the asset's version so that what is returned is the state at one version
  at which the asset was active (see `_read`).
- `change` (update, delete, clear, set_many): read with the version, decide, then a conditional write
  (`PATCH .../state-store` with `{"set", "delete"}`, or `DELETE .../state-store` for a clear) with
  `If-Match: "<version>"`; a 412 means another write came first: read again and decide again.
- `write`: the same conditional writes; with `expected_version`, a 412 is VersionConflictError.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from eventstore import codec, context, tasks, wire
from eventstore.accessor import AssetState
from eventstore.assets import Asset, AssetInfo
from eventstore.client import records
from eventstore.client.transport import ClientStats, Safety, Sent, Transport, detail_of
from eventstore.codec import JSON
from eventstore.errors import (
    AssetConflictError,
    AssetNotActiveError,
    AssetNotFoundError,
    CompactedError,
    OutcomeUnknownError,
    StateStoreError,
    VersionConflictError,
)
from eventstore.events import MAX_POSITION, Change, Event, Op, PendingEvent
from eventstore.protocol import Decide, VersionedState
from eventstore.tasks import Task
from eventstore.writers import Writer

if TYPE_CHECKING:
    from eventstore import CompactionReport

PAGE = 100
"""The most entries the server returns per page of the state listing, of history and of assets."""
EVENTS_PAGE = 1000
"""The most events the server returns per call of the feed."""


def connect(
    url: str,
    token: str | None = None,
    *,
    timeout: float | httpx.Timeout = 10.0,
    retries: int = 4,
    backoff: float = 0.05,
) -> RemoteStore:
    """A store at an `eventstore serve` URL. Nothing is sent until the first call.

    `token`: a token from `eventstore token create` (`read` to read, `write` to write state, `admin` to
    activate and deactivate). `timeout`: seconds, or an `httpx.Timeout` (connect/read/write/pool).
    `retries`: how many times a safe request is repeated after a connection error, a timeout or a 503,
    waiting a random time up to `backoff`·2^n seconds (capped at 2 s) before the n-th repeat.
    """
    return RemoteStore(url, token, timeout=timeout, retries=retries, backoff=backoff)


class RemoteStore:
    """The Store API over HTTP, for workers that hold a token instead of database credentials."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = 10.0,
        retries: int = 4,
        backoff: float = 0.05,
    ) -> None:
        self._http = Transport(url, token, timeout=timeout, retries=retries, backoff=backoff)
        self._max_value_bytes = codec.max_value_bytes()
        self._ids: dict[Asset, int] = {}
        # asset -> a version at which the asset was seen active. Every activation and deactivation
        # appends an event, so an asset still at that version is still active.
        self._active_at: dict[Asset, int] = {}

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._http.base_url

    @property
    def stats(self) -> ClientStats:
        """Requests sent, retries after failures, and 412 conflicts decided again."""
        return self._http.stats

    @property
    def max_value_bytes(self) -> int:
        """EVENTSTORE_MAX_VALUE_BYTES as this process sees it: values over it are logged with a warning
        before they are sent; the server refuses values over its own limit (ValueError, nothing written)."""
        return self._max_value_bytes

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RemoteStore {self.url}>"

    # --- assets and their lifetime -----------------------------------------------------------------

    def activate(self, asset: Asset, writer: Writer | None = None) -> None:
        """Register `asset` if new and make it active (idempotent). AssetConflictError if another active
        asset has its name or uri."""
        _check_asset(asset)
        body = records.text_of({"name": asset.name, "uri": asset.uri}).encode()
        sent = self._http.send("POST", "/api/v2/assets", Safety.WRITE, content=body, headers=_writer(writer))
        response = sent.response
        if response.status_code == 409:
            raise AssetConflictError(detail_of(response))
        _expect(response, 200)
        info = wire.asset_info_from(response.json())
        self._ids[asset] = info.id
        self._active_at[asset] = info.version

    def deactivate(self, asset: Asset, writer: Writer | None = None) -> None:
        """Hide the asset's state until it is activated again; a no-op if inactive; AssetNotFoundError
        for an asset the server has never seen."""
        asset_id = self._known_id(asset)
        self._active_at.pop(asset, None)
        sent = self._http.send(
            "POST", f"/api/v2/assets/{asset_id}/deactivate", Safety.WRITE, headers=_writer(writer)
        )
        if sent.response.status_code == 404:
            raise self._forget(asset, AssetNotFoundError(f"{asset!r} is not known to this store"))
        _expect(sent.response, 204)

    def is_active(self, asset: Asset) -> bool:
        """True if the asset is registered and active."""
        _check_asset(asset)
        info = self._lookup(asset)
        return info is not None and info.active

    def assets(self, active: bool | None = None) -> list[AssetInfo]:
        """Every registered asset (or only the active or inactive ones), by id."""
        params: dict[str, Any] = {} if active is None else {"active": "true" if active else "false"}
        found: list[AssetInfo] = []
        while True:
            body = self._get("/api/v2/assets", {**params, "limit": PAGE, "offset": len(found)})
            page = [wire.asset_info_from(a) for a in body["assets"]]
            found += page
            if len(page) < PAGE or len(found) >= body["total_entries"]:
                return found

    # --- reading and writing state -----------------------------------------------------------------

    def asset(self, asset: Asset, writer: Writer | None = None) -> AssetState:
        """The accessor for one asset's state, writing as `writer` (default: Writer.api()). No I/O.

        A task or watcher writer travels in the `Eventstore-Writer` header, so its events record the
        dag, run and task; the server sets `user` to the token's name, and records any other writer as
        `Writer.api(user=<token name>)`."""
        return AssetState(self, asset, writer or Writer.api())

    def task_context(
        self, inlets: Iterable[object] = (), outlets: Iterable[object] = (), writer: Writer | None = None
    ) -> dict[str, Any]:
        """A task context whose "asset_state_store" holds the concrete inlets and outlets. No I/O."""
        return context.task_context(self, inlets, outlets, writer)

    def run_task(
        self,
        fn: Task | Callable[..., Any],
        *,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        try_number: int = 1,
    ) -> Any:
        """Run `fn(**context)` as Airflow would (eventstore.tasks.run_task), against this server: its
        concrete inlets and outlets are activated (this needs an `admin` token) and its writes carry the
        task in the `Eventstore-Writer` header."""
        return tasks.run_task(
            self,
            fn,
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            try_number=try_number,
        )

    # --- the accessor's interface (eventstore.protocol.StateStore) ---------------------------------

    def require_active(self, asset: Asset) -> None:
        """Return if the asset is active; raise AssetNotActiveError otherwise."""
        self._active_info(asset)

    def read_value(self, asset: Asset, key: str) -> str | None:
        """The key's JSON text, or None if the asset has no such key."""
        return self.read_state(asset, [key]).values.get(key)

    def read_state(self, asset: Asset, keys: Sequence[str] | None = None) -> VersionedState:
        """The JSON texts of `keys` (all keys if None) and the asset's version, read together."""
        _check_asset(asset)
        if keys is not None:
            keys = [codec.check_key(key) for key in keys]
        read = self._read(asset, keys)
        return VersionedState(read.values, read.version)

    def set_value(self, asset: Asset, writer: Writer, key: str, text: str) -> None:
        """One `set` event: a PUT. Never repeated once sent (OutcomeUnknownError if no answer came)."""
        codec.check_key(key)
        asset_id = self._accessor_id(asset)
        content = f'{{"value":{text}}}'.encode()
        path = f"/api/v2/assets/{asset_id}/state-store/{records.key_path(key)}"
        sent = self._http.send("PUT", path, Safety.WRITE, content=content, headers=_writer(writer))
        self._written(asset, sent, None)

    def change(self, asset: Asset, writer: Writer, keys: Sequence[str] | None, decide: Decide) -> None:
        """Read the current texts of `keys` with the asset's version, let `decide` turn them into events,
        write them only if the version is still that one (If-Match); on 412 read and decide again.

        A decision that sets keys is sent straight after a one-request read of a single key (the GET's
        ETag): the server refuses to set keys of an inactive asset (409), and If-Match guarantees the
        asset is still at the version that was read, so a landed write was decided on the state of an
        active asset. Deletes and clears are also accepted on inactive assets by the REST API, so those
        decisions are written only at a version at which the asset is known to be active."""
        _check_asset(asset)
        if keys is not None:
            keys = [codec.check_key(key) for key in keys]
        attempt = 0
        while True:
            started = time.monotonic()
            state = self._read(asset, keys, verified=False)
            pending = decide(state.values)
            if not pending:
                if state.verified:
                    return
                state = self._read(asset, keys)  # nothing to write: the read itself must be exact
                if not decide(state.values):
                    return
                continue
            sets, deletes, clear = _decided(pending)
            if not sets and not state.verified and not self._active_at_version(asset, state.version):
                continue  # the asset moved on meanwhile: read and decide again
            if self._conditional(asset, writer, sets, deletes, clear, state.version) is not None:
                return
            self._http.count("conflicts")
            # Another writer came first. A random pause of up to 2^n times what this read and write
            # took (exponential backoff on the scale of the server's own write time) spreads the
            # contending writers apart, so that each of them mostly lands on its next try.
            took = time.monotonic() - started
            time.sleep(random.uniform(0, min(1.0, took * 2 ** (attempt + 1))))
            attempt += 1

    def write(
        self,
        asset: Asset,
        writer: Writer,
        *,
        sets: Mapping[str, str] | None = None,
        deletes: Sequence[str] = (),
        clear: bool = False,
        expected_version: int | None = None,
    ) -> int:
        """A decided change in one transaction: clear (if asked), then `sets`, then `deletes` of keys that
        exist; returns the asset's version afterwards. With `expected_version`, only if the asset's
        version is still that: VersionConflictError otherwise, and nothing is written (If-Match: 412).

        Over HTTP, `clear` cannot be combined with `sets` or `deletes` (ValueError): the API has no
        route that does both in one transaction."""
        _check_asset(asset)
        values = {codec.check_key(key): text for key, text in (sets or {}).items()}
        removed = [codec.check_key(key) for key in deletes]
        if clear and (values or removed):
            raise ValueError("A remote write cannot combine clear with sets or deletes; write them apart")
        if expected_version is not None:
            current = self._active_info(asset).version  # active, and at which version
            if current != expected_version:
                raise VersionConflictError(
                    f"{asset!r} is at version {current}, not {expected_version}: another write came first. "
                    "Read the state again, and write again if the change still holds."
                )
            new = self._conditional(asset, writer, values, removed, clear, expected_version, strict=True)
            assert new is not None
            return new
        while True:  # unconditional: a conditional write at the current version, until it lands
            version = self._active_info(asset).version
            landed = self._conditional(asset, writer, values, removed, clear, version)
            if landed is not None:
                return landed
            self._http.count("conflicts")

    # --- audit and replay --------------------------------------------------------------------------

    def history(
        self,
        asset: Asset,
        key: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Change]:
        """How the asset's state changed, oldest first (see `Store.history`)."""
        _check_asset(asset)
        params: dict[str, Any] = {"newest_first": "true" if newest_first else "false"}
        if key is not None:
            params["key"] = codec.check_key(key)
        for name, bound in (("since", since), ("until", until)):
            if bound is not None:
                params[name] = wire.time_text(_aware(name, bound))
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit= must be an int >= 0 or None, got {limit!r}")
        asset_id = self._known_id(asset)
        found: list[Change] = []
        seen: set[int] = set()
        offset = 0
        while limit is None or len(found) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(found))
            body = self._get(
                f"/api/v2/assets/{asset_id}/state-history",
                {**params, "limit": size, "offset": offset},
                on_404=lambda: AssetNotFoundError(f"{asset!r} is not known to this store"),
            )
            page = body["changes"]
            offset += len(page)
            # Newest first, events appended meanwhile shift the pages: skip what was already seen.
            for item in page:
                if item["position"] not in seen:
                    seen.add(item["position"])
                    found.append(wire.change_from(item))
            if len(page) < size or offset >= body["total_entries"]:
                break
        return found if limit is None else found[:limit]

    def state_as_of(
        self, asset: Asset, *, at: datetime | None = None, position: int | None = None
    ) -> dict[str, JSON]:
        """The asset's state right after its last event at or before `at` (inclusive) or `position`."""
        _check_asset(asset)
        params = _point(at, position)
        asset_id = self._known_id(asset)
        body = self._get(
            f"/api/v2/assets/{asset_id}/state-as-of",
            params,
            on_404=lambda: AssetNotFoundError(f"{asset!r} is not known to this store"),
        )
        state: dict[str, JSON] = body["state"]
        return state

    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        """The global feed: events with position > `after`, in position order."""
        for name, number in (("after", after), ("limit", limit)):
            if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_POSITION:
                raise ValueError(f"{name} must be from 0 to {MAX_POSITION}, not {number!r}")
        found: list[Event] = []
        while len(found) < limit:
            size = min(EVENTS_PAGE, limit - len(found))
            body = self._get("/api/v2/state-events", {"after": after, "limit": size})
            page = [wire.event_from(e) for e in body["events"]]
            found += page
            after = body["last_position"]
            if len(page) < size:
                break
        return found

    def restore(
        self,
        asset: Asset,
        *,
        at: datetime | None = None,
        position: int | None = None,
        writer: Writer | None = None,
        dry_run: bool = False,
    ) -> list[Change]:
        """Rewind an active asset's state to `at` or `position` (see `Store.restore`). Never repeated once
        sent, unless a dry run."""
        _check_asset(asset)
        params = {**_point(at, position), "dry_run": "true" if dry_run else "false"}
        asset_id = self._accessor_id(asset)
        sent = self._http.send(
            "POST",
            f"/api/v2/assets/{asset_id}/state-restore",
            Safety.READ if dry_run else Safety.WRITE,
            params=params,
            headers=_writer(writer),
        )
        response = sent.response
        if response.status_code == 409:
            raise AssetNotActiveError(_inactive_message(asset))
        if response.status_code == 404:
            raise self._forget(asset, AssetNotActiveError(_unknown_message(asset)))
        if response.status_code == 410:
            raise CompactedError(detail_of(response))
        _expect(response, 200)
        return [wire.change_from(c) for c in response.json()["changes"]]

    def compact(self, *, dry_run: bool = False) -> CompactionReport:
        """Delete the events and view rows of every inactive asset past the server's grace period (an
        `admin` token). Never repeated once sent, unless a dry run."""
        from eventstore import CompactedAsset, CompactionReport

        sent = self._http.send(
            "POST",
            "/api/v2/state-store/compact",
            Safety.READ if dry_run else Safety.WRITE,
            params={"dry_run": "true" if dry_run else "false"},
        )
        _expect(sent.response, 200)
        body = sent.response.json()
        return CompactionReport(
            [CompactedAsset(a["name"], a["uri"], a["events"], a["keys"]) for a in body["assets"]],
            body["events_deleted"],
            body["rows_deleted"],
        )

    # --- reads ---------------------------------------------------------------------------------------

    def _read(self, asset: Asset, keys: list[str] | None, *, verified: bool = True) -> _Read:
        """The values of `keys` (all if None) at one version at which the asset was active.

        A read is trusted when it is bracketed by that version: known active at version v before, and
        the key's ETag (or the asset's version read after) still v. Every change, activation and
        deactivation included, moves the version on, so nothing happened in between. Otherwise, read
        again (another writer was quicker).

        With `verified=False`, a single key that exists is returned with its ETag after one request,
        without checking that the asset is active (`_Read.verified` says which it was)."""
        while True:
            known = self._active_at.get(asset)
            if known is None:
                known = self._active_info(asset).version
            asset_id = self._ids[asset]
            if keys is not None and len(keys) == 1:
                [key] = keys
                text, tag = self._read_key(asset, asset_id, key)
                if text is not None and tag is not None and (tag == known or not verified):
                    return _Read({key: text}, tag, tag == known)
                after = self._active_info(asset).version
                if text is not None and tag == after:
                    return _Read({key: text}, after, True)
                if text is None and after == known:
                    return _Read({}, known, True)
                continue
            values = self._read_all(asset, asset_id)
            if keys is not None:
                values = {key: values[key] for key in keys if key in values}
            if self._active_info(asset).version == known:
                return _Read(values, known, True)

    def _active_at_version(self, asset: Asset, version: int) -> bool:
        """True if the asset is active at `version`; False if it has moved on; AssetNotActiveError."""
        return self._active_at.get(asset) == version or self._active_info(asset).version == version

    def _read_key(self, asset: Asset, asset_id: int, key: str) -> tuple[str | None, int | None]:
        path = f"/api/v2/assets/{asset_id}/state-store/{records.key_path(key)}"
        response = self._http.send("GET", path, Safety.READ).response
        if response.status_code == 200:
            return records.text_of(response.json()["value"]), _etag(response)
        if response.status_code == 404:
            if detail_of(response).startswith("Asset with id"):
                raise self._forget(asset, AssetNotActiveError(_unknown_message(asset)))
            return None, None
        raise _unexpected(response)

    def _read_all(self, asset: Asset, asset_id: int) -> dict[str, str]:
        values: dict[str, str] = {}
        offset = 0
        while True:
            body = self._get(
                f"/api/v2/assets/{asset_id}/state-store",
                {"limit": PAGE, "offset": offset},
                on_404=lambda: self._forget(asset, AssetNotActiveError(_unknown_message(asset))),
            )
            page = body["asset_state_store"]
            for entry in page:
                values[entry["key"]] = records.text_of(entry["value"])
            offset += len(page)
            if len(page) < PAGE or offset >= body["total_entries"]:
                return values

    def _get(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        on_404: Callable[[], Exception] | None = None,
    ) -> Any:
        response = self._http.send("GET", path, Safety.READ, params=params).response
        if response.status_code == 404 and on_404 is not None:
            raise on_404()
        if response.status_code == 410:
            raise CompactedError(detail_of(response))
        _expect(response, 200)
        return response.json()

    # --- writes --------------------------------------------------------------------------------------

    def _conditional(
        self,
        asset: Asset,
        writer: Writer,
        sets: Mapping[str, str],
        deletes: Sequence[str],
        clear: bool,
        version: int,
        *,
        strict: bool = False,
    ) -> int | None:
        """Write only if the asset is still at `version`: its new version, or None on 412 (with
        `strict`, VersionConflictError). A 412 after an attempt whose outcome is unknown raises
        OutcomeUnknownError: the first attempt may be what moved the version on."""
        asset_id = self._ids[asset]
        headers = {**_writer(writer), "If-Match": f'"{version}"'}
        if clear:
            sent = self._http.send(
                "DELETE", f"/api/v2/assets/{asset_id}/state-store", Safety.CONDITIONAL, headers=headers
            )
        else:
            body = ",".join(f"{records.text_of(key)}:{text}" for key, text in sets.items())
            content = f'{{"set":{{{body}}},"delete":{records.text_of(list(deletes))}}}'.encode()
            sent = self._http.send(
                "PATCH",
                f"/api/v2/assets/{asset_id}/state-store",
                Safety.CONDITIONAL,
                content=content,
                headers=headers,
            )
        if sent.response.status_code == 412:
            if sent.ambiguous:
                raise OutcomeUnknownError(
                    f"A conditional write to {asset!r} got no answer, and when sent again the asset's "
                    "version had moved on: the first attempt may or may not have been applied. Look at "
                    "history() before repeating it."
                )
            if strict:
                raise VersionConflictError(detail_of(sent.response))
            return None
        return self._written(asset, sent, version)

    def _written(self, asset: Asset, sent: Sent, version: int | None) -> int | None:
        """Check a write's answer; remember the version it left the asset at (active, as it was written)."""
        response = sent.response
        status = response.status_code
        if status == 409:
            self._active_at.pop(asset, None)
            raise AssetNotActiveError(_inactive_message(asset))
        if status == 404:
            raise self._forget(asset, AssetNotActiveError(_unknown_message(asset)))
        if status == 422:
            raise ValueError(f"The server refused the write: {detail_of(response)}")
        _expect(response, 204)
        new = _etag(response)
        if new is not None and version is not None:
            # A conditional write landed at `version`, where the asset was known active: still active.
            self._active_at[asset] = new
        return new

    # --- asset ids and activity ----------------------------------------------------------------------

    def _lookup(self, asset: Asset) -> AssetInfo | None:
        """The server's record of the asset (None if it has never seen it); refreshes the caches."""
        body = self._get("/api/v2/assets", {"name": asset.name, "uri": asset.uri})
        for item in body["assets"]:
            info = wire.asset_info_from(item)
            if info.name == asset.name and info.uri == asset.uri:
                self._ids[asset] = info.id
                if info.active:
                    self._active_at[asset] = info.version
                else:
                    self._active_at.pop(asset, None)
                return info
        self._forget(asset, None)
        return None

    def _active_info(self, asset: Asset) -> AssetInfo:
        """The asset's record, read now; AssetNotActiveError unless it is active."""
        _check_asset(asset)
        info = self._lookup(asset)
        if info is None:
            raise AssetNotActiveError(_unknown_message(asset))
        if not info.active:
            raise AssetNotActiveError(_inactive_message(asset))
        return info

    def _accessor_id(self, asset: Asset) -> int:
        """The asset's id, for an operation that refuses unknown assets with AssetNotActiveError."""
        _check_asset(asset)
        asset_id = self._ids.get(asset)
        if asset_id is None:
            asset_id = self._active_info(asset).id
        return asset_id

    def _known_id(self, asset: Asset) -> int:
        """The asset's id, for an operation that refuses unknown assets with AssetNotFoundError."""
        _check_asset(asset)
        asset_id = self._ids.get(asset)
        if asset_id is None:
            info = self._lookup(asset)
            if info is None:
                raise AssetNotFoundError(f"{asset!r} is not known to this store")
            asset_id = info.id
        return asset_id

    def _forget(self, asset: Asset, error: StateStoreError | None) -> Any:
        """Drop what is cached about an asset the server does not know (its database was replaced)."""
        self._ids.pop(asset, None)
        self._active_at.pop(asset, None)
        return error


@dataclass(frozen=True, slots=True)
class _Read:
    """Values read at a version; `verified`: the asset is known to have been active at that version."""

    values: dict[str, str]
    version: int
    verified: bool


def _check_asset(asset: object) -> None:
    if not isinstance(asset, Asset):
        raise TypeError(f"Expected an Asset, got {type(asset).__name__}")


def _writer(writer: Writer | None) -> dict[str, str]:
    return {} if writer is None else records.writer_headers(writer)


def _decided(pending: list[PendingEvent]) -> tuple[dict[str, str], list[str], bool]:
    """A decision of the accessor as the body of one conditional write: sets, deletes, or a clear."""
    sets: dict[str, str] = {}
    deletes: list[str] = []
    clear = False
    for event in pending:
        if event.op is Op.SET and event.key is not None and event.value is not None:
            sets[event.key] = event.value
        elif event.op is Op.DELETE and event.key is not None:
            deletes.append(event.key)
        elif event.op is Op.CLEAR:
            clear = True
        else:
            raise ValueError(f"A remote store cannot write a {event.op.value!r} event")
    if clear and (sets or deletes):
        raise ValueError("A remote write cannot combine clear with sets or deletes")
    return sets, deletes, clear


def _point(at: datetime | None, position: int | None) -> dict[str, Any]:
    """The query of an as-of point, checked as `state_as_of` checks it (ValueError before sending)."""
    if (at is None) == (position is None):
        raise ValueError("Give exactly one of at= (an aware datetime) or position= (a global position)")
    if at is not None:
        if not isinstance(at, datetime) or at.utcoffset() is None:
            raise ValueError(f"at= must be an aware datetime (with a timezone, e.g. UTC), got {at!r}")
        return {"at": wire.time_text(at)}
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise ValueError(f"position= must be a global position, an int >= 0, got {position!r}")
    return {"position": position}


def _aware(name: str, moment: object) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name}= must be an aware datetime (with a timezone, e.g. UTC), got {moment!r}")
    return moment


def _etag(response: httpx.Response) -> int | None:
    tag = response.headers.get("ETag", "").removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else None


def _unknown_message(asset: Asset) -> str:
    return (
        f"{asset!r} is not known to this store. Activate it first: store.activate(asset), or declare it "
        "as an inlet or outlet of the task."
    )


def _inactive_message(asset: Asset) -> str:
    return (
        f"{asset!r} is not active, so its state cannot be read or written (it was deactivated). "
        "Activate it again with store.activate(asset) to get its state back."
    )


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise _unexpected(response)


def _unexpected(response: httpx.Response) -> Exception:
    status = response.status_code
    detail = detail_of(response)
    if status == 422:
        return ValueError(f"The server refused the request: {detail}")
    request = response.request
    return StateStoreError(f"{request.method} {request.url.path}: unexpected answer {status}: {detail}")
