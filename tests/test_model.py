"""Asset and Writer: the small frozen values the API is built on (no database needed)."""

from __future__ import annotations

import dataclasses

import pytest

from eventstore import Asset, Writer, WriterKind


def test_asset_uri_defaults_to_name_and_equality_is_exact() -> None:
    assert Asset("orders").uri == "orders"
    assert Asset("orders") == Asset("orders", "orders")
    assert Asset("orders") != Asset("Orders")
    assert Asset("orders") != Asset("orders ")
    assert len({Asset("a"), Asset("a", "a"), Asset("a", "s3://a")}) == 2


def test_asset_is_frozen() -> None:
    asset = Asset("orders")
    with pytest.raises(dataclasses.FrozenInstanceError):
        asset.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "uri", "error"),
    [
        ("", None, ValueError),
        ("a", "", ValueError),
        (None, None, TypeError),
        (3, None, TypeError),
        ("a", b"s3://", TypeError),
        ("a\x00", None, ValueError),
        ("\udc80", None, ValueError),
    ],
)
def test_asset_refuses_bad_names_and_uris(name: object, uri: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Asset(name, uri)  # type: ignore[arg-type]


def test_task_writer_needs_dag_run_and_task() -> None:
    writer = Writer.task("dag", "run", "task")
    assert (writer.kind, writer.map_index, writer.try_number) == (WriterKind.TASK, -1, 1)
    assert writer.kind == "task"
    for missing in [("", "run", "task"), ("dag", "", "task"), ("dag", "run", "")]:
        with pytest.raises(ValueError, match="dag_id, run_id and task_id"):
            Writer.task(*missing)


def test_other_writers_carry_no_task_fields() -> None:
    assert [Writer.watcher().kind, Writer.api().kind, Writer.cli().kind] == ["watcher", "api", "cli"]
    with pytest.raises(ValueError, match="no task fields"):
        Writer(WriterKind.API, dag_id="dag")
    with pytest.raises(ValueError):
        Writer("robot")  # type: ignore[arg-type]


def test_writers_may_name_who_acted() -> None:
    assert Writer.cli(user="alice").user == "alice"
    assert Writer.api(user="ci-token") == Writer(WriterKind.API, user="ci-token")
    assert Writer.task("d", "r", "t", user="worker-token").user == "worker-token"
    assert Writer.api().user is None and Writer.scheduler().kind == "scheduler"
    assert str(Writer.cli(user="alice")) == "cli (alice)"
    with pytest.raises(TypeError, match="user"):
        Writer.api(user=42)  # type: ignore[arg-type]


def test_an_unknown_outcome_is_a_kind_of_unavailable_store() -> None:
    from eventstore import OutcomeUnknownError, StoreUnavailableError

    assert issubclass(OutcomeUnknownError, StoreUnavailableError)
    assert issubclass(OutcomeUnknownError, ConnectionError)
