"""eventstore.tokens: only hashes are stored, scopes are ordered, revoked tokens stop working at once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from eventstore import Store
from eventstore.tokens import (
    PREFIX,
    Scope,
    TokenError,
    any_token_ever,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
    token_hash,
)


def test_create_authenticate_revoke(store: Store, db_url: str) -> None:
    # On every database: authenticate and any_token_ever run prepared statements of their own.
    assert not any_token_ever(store)
    token = create_token(store, "ci", "write")
    assert token.startswith(PREFIX) and len(token) > 40
    assert any_token_ever(store)
    info = authenticate(store, token)
    assert info is not None and info.name == "ci" and info.scope is Scope.WRITE and info.active
    assert authenticate(store, token + "x") is None
    assert authenticate(store, "") is None

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM es_tokens")) for v in row)
    engine.dispose()
    assert token not in stored and token_hash(token) in stored

    assert revoke_token(store, "ci") is True
    assert authenticate(store, token) is None
    assert revoke_token(store, "ci") is False
    assert any_token_ever(store)  # revoking the last token never reopens the server
    [listed] = list_tokens(store)
    assert listed.name == "ci" and not listed.active


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_names_are_unique_and_scopes_checked(store: Store) -> None:
    create_token(store, "a", Scope.ADMIN)
    with pytest.raises(TokenError):
        create_token(store, "a", "read")
    with pytest.raises(ValueError, match="scope"):
        create_token(store, "b", "root")
    with pytest.raises(TokenError):
        revoke_token(store, "nobody")
    assert Scope.READ < Scope.WRITE < Scope.ADMIN
    assert [t.name for t in list_tokens(store)] == ["a"]
