"""`eventstore demo`: the watermark pattern of Airflow's asset state store, with its audit trail.

A producer task loads new orders three times, each run advancing the `watermark`, counting
`total_runs` and writing a `last_run_summary`; a consumer task reads them; then the watermark's history
shows who moved it, when, and from what to what.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from eventstore.assets import Asset
from eventstore.store import Store, open_store
from eventstore.tasks import task

orders = Asset("orders", uri="s3://data/orders/")

# The upstream system: orders arrive over time; run n of the producer sees the first `visible` of them.
ORDERS: list[dict[str, Any]] = [
    {"id": 1, "created_at": "2024-06-01T08:15:00Z", "amount": 120},
    {"id": 2, "created_at": "2024-06-01T09:40:00Z", "amount": 75},
    {"id": 3, "created_at": "2024-06-01T17:05:00Z", "amount": 310},
    {"id": 4, "created_at": "2024-06-02T07:30:00Z", "amount": 42},
    {"id": 5, "created_at": "2024-06-02T12:00:00Z", "amount": 99},
    {"id": 6, "created_at": "2024-06-03T06:45:00Z", "amount": 250},
]
ARRIVED_BY_RUN = {"2024-06-01": 3, "2024-06-02": 5, "2024-06-03": 6}
EPOCH = "1970-01-01T00:00:00Z"


def fetch_orders_since(watermark: str, day: str) -> list[dict[str, Any]]:
    return [row for row in ORDERS[: ARRIVED_BY_RUN[day]] if row["created_at"] > watermark]


@task(inlets=[orders], outlets=[orders])
def load_new_orders(**context: Any) -> str:
    state = context["asset_state_store"]  # one concrete asset: the shorthand works
    watermark = state.get("watermark", default=EPOCH)
    rows = fetch_orders_since(watermark, context["run_id"].removeprefix("scheduled__"))
    runs = state.update("total_runs", lambda n: n + 1, default=0)
    if not rows:
        return f"run {runs}: no new orders after {watermark}"
    new_watermark = max(row["created_at"] for row in rows)
    state.set_many(
        {
            "watermark": new_watermark,
            "last_run_summary": {"run_id": context["run_id"], "loaded": len(rows), "since": watermark},
        }
    )
    return f"run {runs}: loaded {len(rows)} orders, watermark {watermark} → {new_watermark}"


@task(inlets=[orders])
def report(**context: Any) -> dict[str, Any]:
    state = context["asset_state_store"][orders]
    return {key: state.get(key) for key in ("watermark", "total_runs", "last_run_summary")}


DEMO_FILE = "eventstore-demo.db"
"""The demo's own database, in the current directory: recreated by each run, kept afterwards."""


def run(store: Store, console: Console, url: str, where: str | None = None) -> None:
    """The demo on `store`; `url` is how the closing shell commands name its database, `where` how the
    demo says where it is (default: the URL)."""
    where = where or url
    say = functools.partial(console.print, soft_wrap=True, highlight=False)
    say("[bold]eventstore demo[/] — the watermark pattern, event-sourced\n")
    for day in ARRIVED_BY_RUN:
        run_id = f"scheduled__{day}"
        message = store.run_task(
            load_new_orders, dag_id="incremental_orders", run_id=run_id, task_id="load_new_orders"
        )
        say(f"  load_new_orders  {message}")
    state = store.run_task(report, dag_id="orders_report", run_id="manual__1", task_id="report")
    say("  report           reads")
    for key, value in state.items():
        say(f"                     {key} = {_json(value)}")
    say()

    table = Table(
        title="store.history(orders, 'watermark'): who moved it, when, from what to what",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("pos", justify="right")
    for column in ("recorded at (UTC)", "writer: task, run", "old → new"):
        table.add_column(column, no_wrap=True)
    for change in store.history(orders, "watermark"):
        writer = change.writer
        table.add_row(
            str(change.position),
            f"{change.recorded_at:%Y-%m-%d}\n{change.recorded_at:%H:%M:%S.%f}"[:-3],
            f"{writer.task_id}\n{writer.run_id}" if writer.task_id else writer.kind.value,
            f"{'(none)' if change.previous is None else _json(change.previous)}\n→ {_json(change.value)}",
            end_section=True,
        )
    console.print(table)

    first_run = [c for c in store.history(orders) if c.writer.run_id == "scheduled__2024-06-01"]
    position = first_run[-1].position
    replayed = store.state_as_of(orders, position=position)
    say(f"store.state_as_of(orders, position={position}): the state right after the first run")
    for key, value in replayed.items():
        say(f"  {key} = {_json(value)}")
    say(
        "\nThe state lives in the current-state view; every change above is an event in the log,\n"
        "so the audit needs no extra bookkeeping."
    )
    say(f"\nThe database is kept: {where}\nExplore it from the shell:")
    asset = f"orders --uri {orders.uri}"
    for command in (
        f"history {asset} --key watermark",
        f"as-of {asset} --position {position}",
        f"restore {asset} --position {position} --dry-run",
    ):
        say(f"  eventstore --url {url} {command}")


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def fresh_file(path: Path) -> str:
    """Remove the SQLite file at `path` and its companions; its URL."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def main(url: str | None = None, console: Console | None = None) -> str:
    """Run the demo on `url`, or on a fresh ./eventstore-demo.db; keep the database and return its URL."""
    # 80 columns when the output is not a terminal: the history table fits them.
    console = console or Console(width=None if sys.stdout.isatty() else 80)
    if url is None:
        shown = fresh_file(Path(DEMO_FILE))
        with open_store(shown) as store:
            run(store, console, shown, f"{Path(DEMO_FILE).resolve()} (recreated by each demo)")
        return shown
    with open_store(url) as store:
        run(store, console, store.url)
    return url
