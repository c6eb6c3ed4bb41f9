"""`eventstore serve [--host 127.0.0.1] [--port 8080]`: the REST server (CONTRACT §8)."""

from __future__ import annotations

import click

from eventstore.cli.app import fail, url_for
from eventstore.errors import StateStoreError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="port")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the REST API until SIGTERM or Ctrl-C (loopback only until a token exists)."""
    try:
        from eventstore.server import serve as run
    except ImportError:
        fail("The REST server needs its extra: pip install 'eventstore[server]'")
    try:
        run(url_for(ctx), host, port)
    except StateStoreError as error:
        fail(str(error))


commands: list[click.Command] = [serve]
