"""`eventstore history`, `as-of`, `events`, `restore`: the log, read and replayed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from eventstore.cli.app import (
    asset_of,
    asset_options,
    changes_table,
    cli_writer,
    console,
    format_time,
    parse_time,
    print_json,
    shown,
    store_for,
    table,
    writer_text,
)
from eventstore.events import MAX_POSITION  # integer options stop there (usage error), as REST does
from eventstore.wire import change_json, event_json

JSON_HELP = "Print JSON for scripts instead of a table."


def point_options(function: Any) -> Any:
    """`--at T | --position P`: exactly one (checked by `checked_point`)."""
    function = click.option(
        "--position", type=click.IntRange(0, MAX_POSITION), default=None, help="A global position of the log."
    )(function)
    return click.option(
        "--at",
        callback=parse_time,
        metavar="TIME",
        default=None,
        help="An ISO 8601 time (inclusive; naive means UTC).",
    )(function)


def checked_point(at: datetime | None, position: int | None) -> None:
    if (at is None) == (position is None):
        raise click.UsageError("give exactly one of --at and --position")


@click.command()
@asset_options
@click.option("--key", default=None, help="Only this key's sets and deletes, and the clears that removed it.")
@click.option(
    "--since", callback=parse_time, metavar="TIME", default=None, help="From this time (inclusive)."
)
@click.option(
    "--until", callback=parse_time, metavar="TIME", default=None, help="Before this time (exclusive)."
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N changes.")
@click.option("--newest-first", is_flag=True, help="Newest first (with --limit N: the last N changes).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def history(
    ctx: click.Context,
    name: str,
    uri: str | None,
    key: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
    newest_first: bool,
    as_json: bool,
) -> None:
    """How the asset's state changed: each change with its previous value, writer and time.

    Example: eventstore history orders --uri s3://data/orders/ --key watermark --limit 20 --newest-first
    """
    store = store_for(ctx)
    changes = store.history(
        asset_of(store, name, uri), key, since=since, until=until, limit=limit, newest_first=newest_first
    )
    if as_json:
        print_json([change_json(change) for change in changes])
        return
    console().print(changes_table(changes))


@click.command("as-of")
@asset_options
@point_options
@click.option("--json", "as_json", is_flag=True, help="Print the state as one JSON object.")
@click.pass_context
def as_of(
    ctx: click.Context, name: str, uri: str | None, at: datetime | None, position: int | None, as_json: bool
) -> None:
    """The asset's state right after its last event at or before --at T or --position P.

    Example: eventstore as-of orders --uri s3://data/orders/ --at 2024-06-02T00:03:00Z
    """
    checked_point(at, position)
    store = store_for(ctx)
    state = store.state_as_of(asset_of(store, name, uri), at=at, position=position)
    if as_json:
        print_json(state)
        return
    point = f"at {format_time(at)}" if at is not None else f"at position {position}"
    shown_state = table("key", "value", title=f"{name} {point}")
    for key, value in sorted(state.items()):
        shown_state.add_row(key, shown(value))
    console().print(shown_state)


@click.command()
@click.option(
    "--after", type=click.IntRange(0, MAX_POSITION), default=0, show_default=True, help="After this position."
)
@click.option(
    "--limit", type=click.IntRange(1, MAX_POSITION), default=1000, show_default=True, help="At most N."
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def events(ctx: click.Context, after: int, limit: int, as_json: bool) -> None:
    """The global feed: every asset's events after a position, in position order.

    Example: eventstore events --after 120 --limit 50 --json
    """
    found = store_for(ctx).events(after=after, limit=limit)
    if as_json:
        print_json([event_json(event) for event in found])
        return
    shown_events = table("pos", "recorded at (UTC)", "asset", "op", "key", "value", "writer")
    for event in found:
        shown_events.add_row(
            str(event.position),
            format_time(event.recorded_at),
            event.asset.name
            if event.asset.uri == event.asset.name
            else f"{event.asset.name} ({event.asset.uri})",
            event.op.value,
            event.key or "",
            shown(event.value),
            writer_text(event.writer),
        )
    console().print(shown_events)


@click.command()
@asset_options
@point_options
@click.option("--dry-run", is_flag=True, help="Show the changes a restore would make, and make none.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of the changes (made or that would be).")
@click.pass_context
def restore(
    ctx: click.Context,
    name: str,
    uri: str | None,
    at: datetime | None,
    position: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Rewind an active asset's state to what it was at --at T or --position P.

    Appends the set and delete events that turn the current state into that state (a restore is itself
    audited, and another restore undoes it), and prints them.

    Example: eventstore restore orders --uri s3://data/orders/ --at 2024-06-02T00:00:00Z --dry-run
    """
    checked_point(at, position)
    store = store_for(ctx)
    changes = store.restore(
        asset_of(store, name, uri), at=at, position=position, writer=cli_writer(), dry_run=dry_run
    )
    if as_json:
        print_json([change_json(change) for change in changes])
        return
    if not changes:
        click.echo(f"{name} is already in that state: nothing to restore")
        return
    verb = "would make" if dry_run else "made"
    console().print(changes_table(changes, title=f"restore of {name} {verb} {len(changes)} change(s)"))


commands: list[click.Command] = [history, as_of, events, restore]
