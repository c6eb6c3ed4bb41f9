"""The peer's domain model (module level, because eventsourcing names classes by their import path).

Imported only when eventsourcing is installed; see `benchmarks.peer`.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class AssetState(Aggregate):  # type: ignore[misc]
    """One asset's state: one aggregate per asset, one `Set` event per set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state: dict[str, Any] = {}

    @event("Set")  # type: ignore[untyped-decorator]
    def set(self, key: str, value: Any) -> None:
        self.state[key] = value


class StateApp(Application):  # type: ignore[misc,type-arg]
    """An eventsourcing application holding asset-state aggregates."""
