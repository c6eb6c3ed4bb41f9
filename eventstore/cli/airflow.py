"""`eventstore airflow install|uninstall`: eventstore in Airflow's metadata database (docs/airflow.md).

For the click shell: the integrator adds `commands` to the root group. The global `--url` is Airflow's
`sql_alchemy_conn`; nothing here imports Airflow.
"""

from __future__ import annotations

import click

from eventstore.airflow import install as install_into
from eventstore.airflow import uninstall as uninstall_from
from eventstore.cli.app import fail, url_for
from eventstore.errors import StateStoreError


@click.group(name="airflow", help="Use eventstore inside Airflow 3.3 (its metadata database).")
def airflow() -> None:
    pass


@airflow.command(
    name="install",
    help="Add eventstore's tables and triggers to Airflow's database (run after `airflow db migrate`; "
    "idempotent). --url is Airflow's sql_alchemy_conn.",
)
@click.pass_context
def install(ctx: click.Context) -> None:
    try:
        click.echo(install_into(url_for(ctx)))
    except StateStoreError as error:
        fail(str(error))


@airflow.command(
    name="uninstall", help="Remove eventstore's triggers from Airflow's database (its tables and log stay)."
)
@click.pass_context
def uninstall(ctx: click.Context) -> None:
    try:
        click.echo(uninstall_from(url_for(ctx)))
    except StateStoreError as error:
        fail(str(error))


commands: list[click.Command] = [airflow]
