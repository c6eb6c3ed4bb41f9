"""Who wrote an event: a task, a watcher, the REST API, the shell or Airflow's scheduler.

`Writer` is the one definition of an author, and `writer_columns`/`writer_from_row` the one mapping
between a `Writer` and the columns that record it (es_events `writer_*`, es_state `updated_by_*`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class WriterKind(StrEnum):
    """What kind of client made a change."""

    TASK = "task"
    WATCHER = "watcher"
    API = "api"
    CLI = "cli"
    SCHEDULER = "scheduler"
    """Airflow's own housekeeping (orphaning an asset and its state clean-up); see eventstore.airflow."""


WRITER_FIELDS = ("kind", "dag_id", "run_id", "task_id", "map_index", "try_number", "user")
"""The fields of a `Writer`, in the order of its columns (`<prefix><field>`)."""


@dataclass(frozen=True, slots=True)
class Writer:
    """The author recorded with every event. Only task writers carry dag/run/task fields.

    `user` names who acted, where someone did: the REST token's name for REST writes, the operating-system
    user for shell writes; a task's `user` is the credential that vouched for it over REST (else None).
    """

    kind: WriterKind
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", WriterKind(self.kind))
        task_fields = (self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number)
        if self.kind is WriterKind.TASK:
            if not (self.dag_id and self.run_id and self.task_id):
                raise ValueError(
                    "A task writer needs dag_id, run_id and task_id; "
                    f"got dag_id={self.dag_id!r}, run_id={self.run_id!r}, task_id={self.task_id!r}"
                )
        elif any(f is not None for f in task_fields):
            raise ValueError(f"A {self.kind.value} writer carries no task fields; use Writer.task(...)")
        if self.user is not None and not isinstance(self.user, str):
            raise TypeError(f"Writer.user must be a str or None, got {type(self.user).__name__}")

    @classmethod
    def task(
        cls,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        try_number: int = 1,
        *,
        user: str | None = None,
    ) -> Writer:
        return cls(WriterKind.TASK, dag_id, run_id, task_id, map_index, try_number, user)

    @classmethod
    def watcher(cls, user: str | None = None) -> Writer:
        """An asset watcher (a trigger), which has no task instance."""
        return cls(WriterKind.WATCHER, user=user)

    @classmethod
    def api(cls, user: str | None = None) -> Writer:
        """The Python API or the REST server (`user`: the REST token's name), the default writer."""
        return cls(WriterKind.API, user=user)

    @classmethod
    def cli(cls, user: str | None = None) -> Writer:
        """The `eventstore` shell command (`user`: the operating-system user)."""
        return cls(WriterKind.CLI, user=user)

    @classmethod
    def scheduler(cls) -> Writer:
        """Airflow's scheduler, orphaning assets and cleaning up their state (eventstore.airflow only)."""
        return cls(WriterKind.SCHEDULER)

    def __str__(self) -> str:
        by = "" if self.user is None else f" ({self.user})"
        if self.kind is not WriterKind.TASK:
            return f"{self.kind.value}{by}"
        index = "" if self.map_index in (None, -1) else f"[{self.map_index}]"
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{index} try {self.try_number}{by}"


def writer_columns(writer: Writer, prefix: str) -> dict[str, Any]:
    """The column values that record `writer`: `<prefix>kind`, `<prefix>dag_id`, ..."""
    return {
        f"{prefix}kind": writer.kind.value,
        f"{prefix}dag_id": writer.dag_id,
        f"{prefix}run_id": writer.run_id,
        f"{prefix}task_id": writer.task_id,
        f"{prefix}map_index": writer.map_index,
        f"{prefix}try_number": writer.try_number,
        f"{prefix}user": writer.user,
    }


def writer_from_row(row: Mapping[Any, Any], prefix: str) -> Writer:
    """The `Writer` that `writer_columns(writer, prefix)` recorded in a row (a mapping of its columns)."""
    return Writer(*(row[f"{prefix}{field}"] for field in WRITER_FIELDS))
