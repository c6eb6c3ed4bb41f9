"""A simple task runner: `@task(inlets=..., outlets=...)` and `run_task`, so Airflow's examples run as they
are written, against any store (`eventstore.protocol.StateStore`)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, overload

from eventstore.context import concrete_assets, task_context
from eventstore.protocol import StateStore
from eventstore.writers import Writer


@dataclass(frozen=True)
class Task:
    """A function with its declared inlets and outlets, as `@task(...)` makes it."""

    function: Callable[..., Any]
    inlets: tuple[object, ...] = field(default=())
    outlets: tuple[object, ...] = field(default=())

    def __call__(self, **context: Any) -> Any:
        return self.function(**context)

    @property
    def __name__(self) -> str:
        return getattr(self.function, "__name__", "task")


@overload
def task(function: Callable[..., Any], /) -> Task: ...
@overload
def task(
    *, inlets: Iterable[object] = (), outlets: Iterable[object] = ()
) -> Callable[[Callable[..., Any]], Task]: ...
def task(
    function: Callable[..., Any] | None = None,
    /,
    *,
    inlets: Iterable[object] = (),
    outlets: Iterable[object] = (),
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Declare a task's inlets and outlets: `@task(inlets=[a], outlets=[a])` over `def f(**context)`
    (a bare `@task` declares none). Run it with `store.run_task(f, dag_id=..., run_id=..., task_id=...)`.
    """
    if function is not None:
        if not callable(function):
            raise TypeError(f"@task decorates a function, got {type(function).__name__}")
        return Task(function)

    def declare(function: Callable[..., Any]) -> Task:
        return Task(function, tuple(inlets), tuple(outlets))

    return declare


def run_task(
    store: StateStore,
    fn: Task | Callable[..., Any],
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int = -1,
    try_number: int = 1,
) -> Any:
    """Run `fn(**context)` as Airflow would: activate its concrete inlets and outlets, build the context
    (asset_state_store, dag_id, run_id, task_id, map_index, try_number), call it and return its result.

    An `async def` task runs to completion on an event loop of its own (asyncio.run); from inside a
    running event loop, call run_task on a worker thread (`await asyncio.to_thread(store.run_task, ...)`).
    """
    writer = Writer.task(dag_id, run_id, task_id, map_index, try_number)
    inlets = fn.inlets if isinstance(fn, Task) else ()
    outlets = fn.outlets if isinstance(fn, Task) else ()
    function = fn.function if isinstance(fn, Task) else fn
    is_async = inspect.iscoroutinefunction(function)
    if is_async and _in_event_loop():
        name = getattr(function, "__name__", function)
        raise RuntimeError(
            f"run_task cannot run the async task {name!r} inside a running event loop; call it on a "
            "worker thread: await asyncio.to_thread(store.run_task, ...)"
        )
    for asset in concrete_assets(inlets, outlets):
        store.activate(asset, writer)
    context = task_context(store, inlets, outlets, writer)
    context.update(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number)
    if is_async:
        return asyncio.run(function(**context))
    return function(**context)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
