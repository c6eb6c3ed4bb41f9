"""`eventstore demo`: the watermark example, in a database of its own that it keeps for exploring."""

from __future__ import annotations

import click

from eventstore import demo as watermark_demo
from eventstore.cli.app import fail, url_for, url_option


@click.command()
@click.option("--keep", is_flag=True, help="Keep the database (the default; accepted for old scripts).")
@click.option(
    "--into-url",
    is_flag=True,
    help="Write into the database named by --url (or $EVENTSTORE_URL) instead of a fresh file: "
    "the demo adds the asset 'orders' there.",
)
@click.pass_context
def demo(ctx: click.Context, keep: bool, into_url: bool) -> None:
    """Run the watermark example of Airflow's asset state store and show its audit trail.

    It writes a fresh SQLite file, ./eventstore-demo.db (recreated by each run), keeps it, and ends with
    the shell commands that explore it. It never writes into a database you named unless --into-url
    says so; $EVENTSTORE_URL is ignored without --into-url.

    Example: eventstore demo
    """
    if into_url:
        watermark_demo.main(url_for(ctx))
        return
    named = url_option(ctx)
    if named is not None:
        fail(
            "the demo writes its own database (./eventstore-demo.db), never one you name; "
            "to run it in the --url database (adding the asset 'orders' there), add --into-url"
        )
    watermark_demo.main()


commands: list[click.Command] = [demo]
