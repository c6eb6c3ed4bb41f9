"""`eventstore token create|list|revoke`: the REST server's bearer tokens (CONTRACT §8)."""

from __future__ import annotations

import json

import click

from eventstore.cli.app import fail, store_for
from eventstore.tokens import TokenError, create_token, list_tokens, revoke_token


@click.group("token")
def token() -> None:
    """Create, list and revoke the REST server's tokens (the database keeps only their hashes)."""


@token.command("create")
@click.argument("name")
@click.option("--scope", required=True, type=click.Choice(["read", "write", "admin"]), help="what it may do")
@click.pass_context
def create(ctx: click.Context, name: str, scope: str) -> None:
    """Create a token and print it. It is shown only this once: store it now."""
    store = store_for(ctx)
    try:
        click.echo(create_token(store, name, scope))
    except (TokenError, ValueError) as error:
        fail(str(error))
    click.echo(f"Token {name!r} ({scope}) created; it cannot be shown again.", err=True)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="print a JSON array")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every token ever created, revoked ones included (never the tokens themselves)."""
    infos = list_tokens(store_for(ctx))
    if as_json:
        rows = [
            {
                "name": t.name,
                "scope": str(t.scope),
                "created_at": t.created_at.isoformat(),
                "revoked_at": None if t.revoked_at is None else t.revoked_at.isoformat(),
            }
            for t in infos
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for t in infos:
        state = "active" if t.revoked_at is None else f"revoked {t.revoked_at:%Y-%m-%d %H:%M:%S}Z"
        click.echo(f"{t.name}\t{t.scope}\tcreated {t.created_at:%Y-%m-%d %H:%M:%S}Z\t{state}")


@token.command("revoke")
@click.argument("name")
@click.pass_context
def revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token; every server on this database refuses it from the next request on."""
    try:
        changed = revoke_token(store_for(ctx), name)
    except TokenError as error:
        fail(str(error))
    click.echo(f"Token {name!r} revoked." if changed else f"Token {name!r} was already revoked.")


commands: list[click.Command] = [token]
