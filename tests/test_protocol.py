"""The accessor's interface (eventstore/protocol.py): the local `Store` and the HTTP client's
`RemoteStore` both satisfy `StateStore`, checked by mypy (every signature) and at runtime
(`runtime_checkable`: every member present)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eventstore.client import RemoteStore
from eventstore.protocol import StateStore
from eventstore.store import Store

ROOT = Path(__file__).resolve().parents[1]

ASSIGNMENTS = """
from eventstore.client import RemoteStore
from eventstore.protocol import StateStore
from eventstore.store import Store


def as_state_stores(local: Store, remote: RemoteStore) -> list[StateStore]:
    return [local, remote]
"""


def test_both_stores_satisfy_the_protocol_for_mypy(tmp_path: Path) -> None:
    """mypy (strict, the project's configuration and cache) accepts both as a `StateStore`: each method's
    parameters and return type match the protocol's."""
    checked = tmp_path / "assignments.py"
    checked.write_text(ASSIGNMENTS)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", str(checked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_both_stores_are_state_stores_at_runtime(store: Store) -> None:
    assert isinstance(store, StateStore)
    remote = RemoteStore("http://127.0.0.1:9")  # nothing is sent until a call
    try:
        assert isinstance(remote, StateStore)
    finally:
        remote.close()


def test_an_object_without_every_member_is_not_a_state_store() -> None:
    class ReadsOnly:
        max_value_bytes = 0

        def read_value(self, asset: object, key: str) -> str | None:
            return None

    assert not isinstance(ReadsOnly(), StateStore)
