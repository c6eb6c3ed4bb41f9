"""The task runner: `@task` (with or without declarations) and `run_task`, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eventstore import Asset, Store, Writer, task

pytestmark = pytest.mark.both_stores

orders = Asset("orders", uri="s3://data/orders/")
customers = Asset("customers")


def test_run_task_activates_declared_assets_and_passes_the_context(store: Store) -> None:
    @task(inlets=[orders], outlets=[customers, "ignored"])
    def load(**context: Any) -> Any:
        context["asset_state_store"][orders].set("watermark", "w")
        return {key: value for key, value in context.items() if key != "asset_state_store"}

    result = store.run_task(load, dag_id="d", run_id="r", task_id="t", map_index=4, try_number=2)
    assert result == {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": 4, "try_number": 2}
    assert store.is_active(orders) and store.is_active(customers)
    [activation, change] = store.history(orders)
    assert change.writer == Writer.task("d", "r", "t", 4, 2)
    assert activation.writer == change.writer


def test_run_task_accepts_a_plain_function(store: Store) -> None:
    def plain(**context: Any) -> int:
        return len(context["asset_state_store"])

    assert store.run_task(plain, dag_id="d", run_id="r", task_id="t") == 0


def test_a_bare_task_decorator_declares_no_assets(store: Store) -> None:
    @task
    def bare(**context: Any) -> tuple[int, str]:
        return len(context["asset_state_store"]), context["task_id"]

    assert store.run_task(bare, dag_id="d", run_id="r", task_id="t") == (0, "t")


def test_an_async_task_runs_to_completion(store: Store) -> None:
    @task(inlets=[orders], outlets=[orders])
    async def load(**context: Any) -> Any:
        state = context["asset_state_store"]
        await state.aset("watermark", "2024-06-01")
        return await state.aget("watermark")

    assert store.run_task(load, dag_id="d", run_id="r", task_id="t") == "2024-06-01"
    assert store.asset(orders).get("watermark") == "2024-06-01"


def test_an_async_task_inside_a_running_loop_is_refused_with_what_to_do(store: Store) -> None:
    @task(outlets=[orders])
    async def load(**context: Any) -> None:
        raise AssertionError("never called")

    async def from_a_coroutine() -> None:
        store.run_task(load, dag_id="d", run_id="r", task_id="t")

    with pytest.raises(RuntimeError, match=r"asyncio\.to_thread"):
        asyncio.run(from_a_coroutine())
    assert not store.is_active(orders)  # refused before anything was done
