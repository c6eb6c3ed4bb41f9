"""A property-based fuzz run of the server's own OpenAPI schema (schemathesis), on SQLite: no answer is a
5xx, answers conform to the schema, and a refused request (4xx) changes nothing in the store.

The store holds one active asset with a few keys and one inactive asset; requests carry an admin token
(so every route is reachable, and the token lookup runs on every call). Generated asset ids, names and
uris are steered towards the existing assets half of the time, or nearly every call would be a 404.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis  # a dev dependency: never skipped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from eventstore import Asset, Store, Writer, open_store, schema
from eventstore.server import create_app
from eventstore.tokens import create_token

EXAMPLES_PER_OPERATION = int(os.environ.get("EVENTSTORE_FUZZ_EXAMPLES", "12"))
"""Per operation and generation mode: 26 operations × 2 modes × 12 ≈ 600 calls, about 35 s on 2 cores.
A longer hunt: EVENTSTORE_FUZZ_EXAMPLES=200 pytest tests/test_server_fuzz.py."""

ACTIVE = Asset("orders", "s3://data/orders/")
INACTIVE = Asset("old", "s3://data/old/")


@dataclass
class Fixture:
    store: Store
    database: sqlite3.Connection
    app: Any
    headers: dict[str, str]
    active_id: int
    inactive_id: int


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[Fixture]:
    with open_store(f"sqlite:///{tmp_path / 'fuzz.db'}") as store:
        store.activate(ACTIVE)
        state = store.asset(ACTIVE)
        for key, value in {"watermark": "2024-06-01", "dir/nested": [1, 2], "n": 3}.items():
            state.set(key, value)
        store.activate(INACTIVE)
        store.asset(INACTIVE).set("k", {"a": 1})
        store.deactivate(INACTIVE)
        token = create_token(store, "fuzzer", "admin")
        ids = {a.name: a.id for a in store.assets()}
        database = sqlite3.connect(tmp_path / "fuzz.db")
        try:
            app = create_app(store)
            headers = {"Authorization": f"Bearer {token}"}
            yield Fixture(store, database, app, headers, ids["orders"], ids["old"])
        finally:
            database.close()


def snapshot(database: sqlite3.Connection) -> list[list[tuple[object, ...]]]:
    """Every row of every table eventstore has: the log, the view, the assets with their versions and
    activity, the snapshots, the compactions and the tokens (one query each, so that it stays cheap)."""
    return [
        database.execute(f"SELECT * FROM {table.name} ORDER BY 1, 2").fetchall()
        for table in schema.metadata.sorted_tables
    ]


def steer(case: Any, fixture: Fixture, choice: int) -> None:
    """Point a generated case at an existing asset (choice 0: the active one, 1: the inactive one)."""
    asset = ACTIVE if choice == 0 else INACTIVE
    if "asset_id" in case.path_parameters:
        case.path_parameters["asset_id"] = fixture.active_id if choice == 0 else fixture.inactive_id
    if isinstance(case.query, dict):
        if "name" in case.query:
            case.query["name"] = asset.name
        if "uri" in case.query:
            case.query["uri"] = asset.uri


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_the_openapi_schema(fuzzed: Fixture, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app, headers=fuzzed.headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), choice=st.integers(0, 3))
        def run(case: Any, choice: int) -> None:
            # Undo what an earlier call may have done: the active asset active, the inactive one not.
            if not fuzzed.store.is_active(ACTIVE):
                fuzzed.store.activate(ACTIVE)
            if fuzzed.store.is_active(INACTIVE):
                fuzzed.store.deactivate(INACTIVE)
            if choice < 2:
                steer(case, fuzzed, choice)
            before = snapshot(fuzzed.database)
            response = case.call(headers=fuzzed.headers)
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)
            if 400 <= response.status_code < 500:
                assert snapshot(fuzzed.database) == before, (case.method, case.formatted_path, response.text)
            case.validate_response(response, checks=CHECKS, headers=fuzzed.headers)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # a route without parameters has no invalid request
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:
            failures.append(f"{operation.label}: {type(error).__name__}: {error}"[:3000])
    assert not failures, "\n\n".join(failures)


def test_the_snapshot_sees_a_write(fuzzed: Fixture) -> None:
    """The "nothing changed" check is live: a write through the store shows in the snapshot."""
    before = snapshot(fuzzed.database)
    fuzzed.store.asset(ACTIVE, Writer.api()).set("n", 4)
    assert snapshot(fuzzed.database) != before
