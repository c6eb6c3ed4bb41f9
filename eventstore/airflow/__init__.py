"""eventstore inside Airflow 3.3 (CONTRACT §9, docs/airflow.md).

- `install(url)` / `uninstall(url)`: eventstore's tables and triggers in Airflow's metadata database
  (`eventstore --url "$AIRFLOW_DB" airflow install`); they need no Airflow.
- `EventStoreBackend`: `[state_store] backend = eventstore.airflow.EventStoreBackend` (needs Airflow).
- `eventstore.airflow.plugin`: the Airflow plugin (entry point `airflow.plugins`) that records who made a
  change through Airflow's REST API and UI.
"""

from __future__ import annotations

from typing import Any

from eventstore.airflow.installation import NotInstalledError, install, uninstall

__all__ = ["EventStoreBackend", "NotInstalledError", "install", "uninstall"]


def __getattr__(name: str) -> Any:
    if name == "EventStoreBackend":  # imports Airflow: only where it is used
        from eventstore.airflow.backend import EventStoreBackend

        return EventStoreBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
