"""The modules of eventstore.airflow that need Airflow import on their own (in a fresh interpreter), and
Airflow finds the plugin through the `airflow.plugins` entry point the `airflow` extra registers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_imports import NEEDS_AIRFLOW


@pytest.mark.parametrize("module", sorted(NEEDS_AIRFLOW))
def test_module_imports_on_its_own(module: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


def test_airflow_loads_the_plugin_from_the_entry_point() -> None:
    from airflow import plugins_manager

    from eventstore.airflow.plugin import EventStorePlugin, RequestMiddleware

    plugins = plugins_manager._get_plugins()[0]
    assert any(isinstance(plugin, EventStorePlugin) for plugin in plugins)
    middlewares = [m["middleware"] for m in plugins_manager.get_fastapi_plugins()[1]]
    assert RequestMiddleware in middlewares
