"""`eventstore assets`, `activate`, `deactivate`: the assets and their lifetime."""

from __future__ import annotations

import click

from eventstore.cli.app import asset_of, asset_options, cli_writer, console, print_json, store_for, table


@click.command()
@click.option("--all", "everything", is_flag=True, help="Inactive assets too.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of {id, name, uri, active, version}.")
@click.pass_context
def assets(ctx: click.Context, everything: bool, as_json: bool) -> None:
    """The active assets (with --all, every asset the store knows), by id.

    Example: eventstore assets --all --json
    """
    found = store_for(ctx).assets(active=None if everything else True)
    if as_json:
        print_json(
            [
                {"id": a.id, "name": a.name, "uri": a.uri, "active": a.active, "version": a.version}
                for a in found
            ]
        )
        return
    shown = table("id", "name", "uri", "active", "version")
    for a in found:
        shown.add_row(str(a.id), a.name, a.uri, "yes" if a.active else "no", str(a.version))
    console().print(shown)


@click.command()
@asset_options
@click.pass_context
def activate(ctx: click.Context, name: str, uri: str | None) -> None:
    """Register the asset if new and make it active (nothing happens if it is active).

    Example: eventstore activate orders --uri s3://data/orders/
    """
    store = store_for(ctx)
    asset = asset_of(store, name, uri)
    store.activate(asset, cli_writer())
    click.echo(f"active: {asset.name} ({asset.uri})")


@click.command()
@asset_options
@click.pass_context
def deactivate(ctx: click.Context, name: str, uri: str | None) -> None:
    """Make the asset inactive: its state is hidden (not erased) until activated again or compacted.

    Example: eventstore deactivate orders --uri s3://data/orders/
    """
    store = store_for(ctx)
    asset = asset_of(store, name, uri)
    store.deactivate(asset, cli_writer())
    click.echo(f"inactive: {asset.name} ({asset.uri})")


commands: list[click.Command] = [assets, activate, deactivate]
