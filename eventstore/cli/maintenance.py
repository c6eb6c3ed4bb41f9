"""`eventstore rebuild`, `verify`, `compact`, `compactions`: keeping the view and the log in shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eventstore.cli.app import console, fail, format_time, print_json, shown, store_for, table
from eventstore.compaction import CompactionReport, parse_grace
from eventstore.store import Store


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], object]]:
    """A progress bar on stderr (only on a terminal) and the callback that moves it to a running count."""
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(count: int) -> None:
            bar.update(task, completed=count)

        yield advance


def surviving_events(store: Store) -> int:
    """How many events the log holds: each stream's head minus its last compacted version."""
    compacted: dict[tuple[str, str], int] = {}
    for record in store.compactions():
        key = (record.asset.name, record.asset.uri)
        compacted[key] = max(compacted.get(key, 0), record.last_version)
    return sum(a.version - compacted.get((a.name, a.uri), 0) for a in store.assets())


@click.command()
@click.pass_context
def rebuild(ctx: click.Context) -> None:
    """Recompute the current-state view and the snapshots from the log (safe while writers write).

    Example: eventstore rebuild
    """
    store = store_for(ctx)
    with progress_bar("rebuilding", surviving_events(store)) as advance:
        report = store.rebuild_projections(progress=advance)
    click.echo(
        f"rebuilt from {report.events} events of {report.assets} assets: {report.keys} keys "
        f"in {report.seconds:.2f} s"
    )


@click.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Compare the view and the snapshots with the fold of the log; exit status 1 on any drift.

    Example: eventstore verify || eventstore rebuild
    """
    store = store_for(ctx)
    drifts = store.verify_projections()
    if not drifts:
        click.echo("consistent: the view and the snapshots match the log")
        return
    for drift in drifts:
        where = "view" if drift.snapshot_version is None else f"snapshot at version {drift.snapshot_version}"
        click.echo(
            f"drift in {where}: {drift.asset.name} ({drift.asset.uri}) key {drift.key!r}: "
            f"log says {shown(drift.expected) or '(absent)'}, {where} has {shown(drift.actual) or '(absent)'}"
        )
    if store.host is not None:  # the host's table is the view: it is the truth, not eventstore's to rebuild
        fail(
            f"{len(drifts)} drift(s) between {store.host}'s table (the view) and the log: a change the log "
            "missed (made while eventstore was not installed?) or an event lost"
        )
    fail(f"{len(drifts)} drift(s) between the projections and the log; `eventstore rebuild` repairs them")


def _grace(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_grace(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a duration: give seconds (3600) or a number with a unit s, m, h, d (90s, 7d)"
        ) from None


def report_dict(report: CompactionReport, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "assets": [{"name": a.name, "uri": a.uri, "events": a.events, "keys": a.keys} for a in report.assets],
        "events_deleted": report.events_deleted,
        "rows_deleted": report.rows_deleted,
    }


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what would be removed, and remove nothing.")
@click.option(
    "--grace",
    metavar="D",
    callback=_grace,
    default=None,
    help="Spare assets deactivated less than D ago: seconds or 90s, 15m, 24h, 7d "
    "(default: $EVENTSTORE_COMPACTION_GRACE, else 0).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def compact(ctx: click.Context, dry_run: bool, grace: timedelta | None, as_json: bool) -> None:
    """Delete the events and state of every inactive asset (never an active one), keeping a record.

    Example: eventstore compact --grace 7d --dry-run
    """
    store = store_for(ctx)
    total = None if dry_run else store.compact(dry_run=True, grace=grace).events_deleted
    with progress_bar("compacting", total) as advance:
        report = store.compact(dry_run=dry_run, grace=grace, progress=advance)
    if as_json:
        print_json(report_dict(report, dry_run))
        return
    verb = "would remove" if dry_run else "removed"
    if report.assets:
        shown_report = table("name", "uri", "events", "keys")
        for a in report.assets:
            shown_report.add_row(a.name, a.uri, str(a.events), str(a.keys))
        console().print(shown_report)
    click.echo(
        f"compaction {verb} {len(report.assets)} asset(s): {report.events_deleted} events, "
        f"{report.rows_deleted} keys"
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the compaction records.")
@click.pass_context
def compactions(ctx: click.Context, as_json: bool) -> None:
    """The permanent records of past compactions, oldest first.

    Example: eventstore compactions --json
    """
    records = store_for(ctx).compactions()
    if as_json:
        print_json(
            [
                {
                    "asset": {"name": r.asset.name, "uri": r.asset.uri},
                    "last_version": r.last_version,
                    "events": r.events,
                    "deactivated_at": format_time(r.deactivated_at),
                    "compacted_at": format_time(r.compacted_at),
                    "position": r.position,
                }
                for r in records
            ]
        )
        return
    shown_records = table(
        "name", "uri", "events", "last version", "position", "deactivated at", "compacted at"
    )
    for r in records:
        shown_records.add_row(
            r.asset.name,
            r.asset.uri,
            str(r.events),
            str(r.last_version),
            str(r.position),
            format_time(r.deactivated_at) or "",
            format_time(r.compacted_at),
        )
    console().print(shown_records)


commands: list[click.Command] = [rebuild, verify, compact, compactions]
