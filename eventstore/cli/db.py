"""`eventstore db upgrade`: bring the database's schema to this version of eventstore."""

from __future__ import annotations

import click

from eventstore import migrate
from eventstore.cli.app import missing_sqlite_file, url_for
from eventstore.store import open_store


@click.group()
def db() -> None:
    """Manage the database schema."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create the schema, or bring it to this version (safe to run from several processes at once).

    Example: eventstore --url postgresql+psycopg://postgres@127.0.0.1:5432/prod db upgrade
    """
    url = url_for(ctx)
    created = missing_sqlite_file(url) is not None
    with open_store(url) as store:
        click.echo(f"{store.url}: schema at {migrate.head_revision()}{' (new database)' if created else ''}")


commands: list[click.Command] = [db]
