"""Who wrote an event: a task, a watcher, the REST API or the shell."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class WriterKind(StrEnum):
    """What kind of client made a change."""

    TASK = "task"
    WATCHER = "watcher"
    API = "api"
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class Writer:
    """The author recorded with every event. Only task writers carry dag/run/task fields."""

    kind: WriterKind
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None

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

    @classmethod
    def task(cls, dag_id: str, run_id: str, task_id: str, map_index: int = -1, try_number: int = 1) -> Writer:
        return cls(WriterKind.TASK, dag_id, run_id, task_id, map_index, try_number)

    @classmethod
    def watcher(cls) -> Writer:
        """An asset watcher (a trigger), which has no task instance."""
        return cls(WriterKind.WATCHER)

    @classmethod
    def api(cls) -> Writer:
        """The Python API or REST server, used when no writer is given."""
        return cls(WriterKind.API)

    @classmethod
    def cli(cls) -> Writer:
        """The `eventstore` shell command."""
        return cls(WriterKind.CLI)

    def __str__(self) -> str:
        if self.kind is not WriterKind.TASK:
            return self.kind.value
        index = "" if self.map_index in (None, -1) else f"[{self.map_index}]"
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{index} try {self.try_number}"
