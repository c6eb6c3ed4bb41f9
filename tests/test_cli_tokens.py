"""`eventstore token create|list|revoke` and `eventstore serve`'s refusal of a public address, as the real
process shows them (exit statuses, one-line errors, the token printed once and never stored)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from eventstore import open_store, schema
from eventstore.tokens import authenticate
from tests import databases
from tests.test_cli import one_line_error, run, succeeded


def test_tokens_are_created_listed_and_revoked_from_the_shell(sqlite_template: Path, tmp_path: Path) -> None:
    url = databases.sqlite_copy(sqlite_template, tmp_path)
    created = run("--url", url, "token", "create", "ci", "--scope", "write")
    token = succeeded(created).strip()
    assert token and "\n" not in token
    assert "cannot be shown again" in created.stderr

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(schema.tokens)).mappings().one()
    engine.dispose()
    assert token not in json.dumps({k: str(v) for k, v in stored.items()})  # only a hash is kept
    with open_store(url) as store:
        info = authenticate(store, token)
        assert info is not None and (info.name, str(info.scope)) == ("ci", "write")

    assert "already" in one_line_error(run("--url", url, "token", "create", "ci", "--scope", "read"))
    listed = json.loads(succeeded(run("--url", url, "token", "list", "--json")))
    assert [(t["name"], t["scope"], t["revoked_at"]) for t in listed] == [("ci", "write", None)]

    assert "revoked" in succeeded(run("--url", url, "token", "revoke", "ci"))
    with open_store(url) as store:
        assert authenticate(store, token) is None  # at once, for every server on this database
    [revoked] = json.loads(succeeded(run("--url", url, "token", "list", "--json")))
    assert revoked["revoked_at"] is not None
    assert "ghost" in one_line_error(run("--url", url, "token", "revoke", "ghost"))
    assert run("--url", url, "token", "create", "x", "--scope", "root").returncode == 2


def test_serve_refuses_a_public_address_while_no_token_exists(sqlite_template: Path, tmp_path: Path) -> None:
    url = databases.sqlite_copy(sqlite_template, tmp_path)
    message = one_line_error(run("--url", url, "serve", "--host", "0.0.0.0", "--port", "18123"))
    assert "token" in message and "0.0.0.0" in message
