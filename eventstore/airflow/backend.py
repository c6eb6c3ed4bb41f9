"""`[state_store] backend = eventstore.airflow.EventStoreBackend`: Airflow's own backend, plus the author.

Airflow's `asset_state_store` table stays the current-state view and the database triggers installed by
`eventstore airflow install` append every change of it to the log, in the same transaction. So this
backend only has two things to add to Airflow's `MetastoreBackend`:

- it refuses to work on a database where the triggers are missing (the first asset-scope call raises
  `NotInstalledError`, naming the command to run), so that no change ever escapes the log;
- for `delete` and `clear`, which Airflow 3.3's Execution API calls with no identity and whose rows carry
  no writer, it tells the triggers who asks (a writer context in the request's own transaction): the
  task, recovered from the request's JWT (the plugin's middleware keeps the ASGI scope, on which
  Airflow's JWT check caches the task's token), else `watcher`, which is what Airflow itself records for
  an Execution API call made without a task identity (the in-process API of `dag.test()`, the triggerer).

Writes (`set_asset_state_store`) need no context: Airflow puts the writer it identified in the row, and the
trigger records it. Task scope is Airflow's, untouched.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from airflow._shared.state import AssetScope
from airflow.models.taskinstance import TaskInstance
from airflow.state.metastore import MetastoreBackend, _async_session
from airflow.utils.session import NEW_SESSION, provide_session

from eventstore.airflow.installation import require_installed
from eventstore.airflow.request import REQUEST_SCOPE
from eventstore.airflow.writer_context import dialect_module, dialect_name, writer_context
from eventstore.writers import Writer

_NULL_UUID = uuid.UUID(int=0)
_installed: set[str] = set()


def ensure_installed(session: Any) -> None:
    """NotInstalledError unless eventstore's Airflow part is installed in the session's database (checked
    once per database and process)."""
    url = str(session.get_bind().url)
    if url not in _installed:
        require_installed(session.connection())
        _installed.add(url)


def execution_writer(session: Any) -> Writer:
    """Who is calling the Execution API, as far as the request shows it (see the module doc)."""
    scope = REQUEST_SCOPE.get()
    token = None if scope is None else scope.get("ti_token")
    ti_id = getattr(token, "id", None)
    if ti_id is not None and ti_id != _NULL_UUID:
        ti = session.execute(
            sa.select(
                TaskInstance.dag_id,
                TaskInstance.run_id,
                TaskInstance.task_id,
                TaskInstance.map_index,
                TaskInstance.try_number,
            ).where(TaskInstance.id == ti_id)
        ).first()
        if ti is not None:
            return Writer.task(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number)
    return Writer.watcher()


@contextlib.contextmanager
def _removal(session: Any) -> Iterator[None]:
    """An Execution API delete or clear: checked, and with its author for the triggers."""
    ensure_installed(session)
    with writer_context(session, execution_writer(session)):
        yield


def _begin_removal(session: Any) -> None:
    ensure_installed(session)
    dialect_module(dialect_name(session)).set_writer(session, execution_writer(session))


def _end_removal(session: Any, failed: bool = False) -> None:
    try:
        dialect_module(dialect_name(session)).clear_writer(session)
    except Exception:
        if not failed:  # after a failure PostgreSQL's transaction is aborted, the context with it
            raise


class EventStoreBackend(MetastoreBackend):  # type: ignore[misc]  # Airflow is untyped for mypy here
    """Airflow's `MetastoreBackend`, with every asset-state change in eventstore's log (module doc)."""

    @provide_session  # type: ignore[untyped-decorator]
    def set_asset_state_store(
        self, scope: Any, key: str, value: str, *, session: Any = NEW_SESSION, **writer: Any
    ) -> None:
        ensure_installed(session)
        super().set_asset_state_store(scope, key, value, session=session, **writer)

    @provide_session  # type: ignore[untyped-decorator]
    def set(
        self, scope: Any, key: str, value: str, *, expires_at: Any = None, session: Any = NEW_SESSION
    ) -> None:
        if isinstance(scope, AssetScope):
            ensure_installed(session)
        super().set(scope, key, value, expires_at=expires_at, session=session)

    @provide_session  # type: ignore[untyped-decorator]
    def delete(self, scope: Any, key: str, *, session: Any = NEW_SESSION) -> None:
        if not isinstance(scope, AssetScope):
            return super().delete(scope, key, session=session)  # type: ignore[no-any-return]
        with _removal(session):
            super().delete(scope, key, session=session)
        return None

    @provide_session  # type: ignore[untyped-decorator]
    def clear(self, scope: Any, *, all_map_indices: bool = False, session: Any = NEW_SESSION) -> None:
        if not isinstance(scope, AssetScope):
            return super().clear(scope, all_map_indices=all_map_indices, session=session)  # type: ignore[no-any-return]
        with _removal(session):
            super().clear(scope, all_map_indices=all_map_indices, session=session)
        return None

    # The async twins (Airflow's routes use the sync ones; these keep the same guarantees).

    async def aset_asset_state_store(
        self, scope: Any, key: str, value: str, *, session: Any = None, **writer: Any
    ) -> None:
        async with _async_session(session) as s:
            await s.run_sync(ensure_installed)
            await super().aset_asset_state_store(scope, key, value, session=s, **writer)

    async def aset(
        self, scope: Any, key: str, value: str, *, expires_at: Any = None, session: Any = None
    ) -> None:
        async with _async_session(session) as s:
            if isinstance(scope, AssetScope):
                await s.run_sync(ensure_installed)
            await super().aset(scope, key, value, expires_at=expires_at, session=s)

    async def adelete(self, scope: Any, key: str, *, session: Any = None) -> None:
        async with _async_session(session) as s:
            if not isinstance(scope, AssetScope):
                return await super().adelete(scope, key, session=s)  # type: ignore[no-any-return]
            await s.run_sync(_begin_removal)
            try:
                await super().adelete(scope, key, session=s)
            except BaseException:
                await s.run_sync(_end_removal, True)
                raise
            await s.run_sync(_end_removal)
        return None

    async def aclear(self, scope: Any, *, all_map_indices: bool = False, session: Any = None) -> None:
        async with _async_session(session) as s:
            if not isinstance(scope, AssetScope):
                return await super().aclear(scope, all_map_indices=all_map_indices, session=s)  # type: ignore[no-any-return]
            await s.run_sync(_begin_removal)
            try:
                await super().aclear(scope, all_map_indices=all_map_indices, session=s)
            except BaseException:
                await s.run_sync(_end_removal, True)
                raise
            await s.run_sync(_end_removal)
        return None
