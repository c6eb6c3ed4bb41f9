"""`eventstore get`, `set`, `delete`, `clear`: an active asset's state, as a task sees it."""

from __future__ import annotations

import click

from eventstore.cli.app import asset_of, asset_options, cli_writer, dumps, fail, parse_json, store_for


@click.command()
@asset_options
@click.argument("key")
@click.pass_context
def get(ctx: click.Context, name: str, uri: str | None, key: str) -> None:
    """Print the value of KEY as JSON; exit status 1 if the asset has no such key.

    Example: eventstore get orders watermark --uri s3://data/orders/
    """
    store = store_for(ctx)
    value = store.asset(asset_of(store, name, uri), cli_writer()).get(key)
    if value is None:  # None is never stored at the top level: the key is absent
        fail(f"{name!r} has no key {key!r}")
    click.echo(dumps(value))


@click.command("set")
@asset_options
@click.argument("key")
@click.argument("value", metavar="JSON")
@click.pass_context
def set_(ctx: click.Context, name: str, uri: str | None, key: str, value: str) -> None:
    """Set KEY to the JSON value (strict JSON: a string needs quotes, NaN and Infinity are refused).

    Example: eventstore set orders watermark '"2024-06-01T00:00:00Z"' --uri s3://data/orders/
    """
    parsed = parse_json(value)
    store = store_for(ctx)
    store.asset(asset_of(store, name, uri), cli_writer()).set(key, parsed)
    click.echo(f"{name} {key} = {dumps(parsed)}")


@click.command()
@asset_options
@click.argument("key")
@click.pass_context
def delete(ctx: click.Context, name: str, uri: str | None, key: str) -> None:
    """Delete KEY (nothing happens, and nothing is recorded, if it does not exist).

    Example: eventstore delete orders cursor --uri s3://data/orders/
    """
    store = store_for(ctx)
    store.asset(asset_of(store, name, uri), cli_writer()).delete(key)
    click.echo(f"{name} {key} deleted")


@click.command()
@asset_options
@click.pass_context
def clear(ctx: click.Context, name: str, uri: str | None) -> None:
    """Delete every key of the asset (one `clear` event; none if it has no keys).

    Example: eventstore clear orders --uri s3://data/orders/
    """
    store = store_for(ctx)
    store.asset(asset_of(store, name, uri), cli_writer()).clear()
    click.echo(f"{name} cleared")


commands: list[click.Command] = [get, set_, delete, clear]
