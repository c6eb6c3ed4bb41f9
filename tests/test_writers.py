"""Writer (eventstore/writers.py): who made a change, by kind (no database needed)."""

from __future__ import annotations

import pytest

from eventstore import Writer, WriterKind


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
