"""Imports run one way: every module imports on its own in a fresh interpreter (no hidden cycle or order
dependency), and the layering of docs/architecture.md holds (import-linter, as `make lint` runs it)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Modules that import Airflow: tests/airflow/test_imports.py imports them in the Airflow venv.
NEEDS_AIRFLOW = {"eventstore.airflow.backend", "eventstore.airflow.plugin"}


def _modules() -> list[str]:
    found = []
    for package in ("eventstore", "projections"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts or path.name == "__main__.py":
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append(".".join(parts))
    if importlib.util.find_spec("airflow") is None:
        found = [module for module in found if module not in NEEDS_AIRFLOW]
    return found


@pytest.mark.parametrize("module", _modules())
def test_every_module_imports_on_its_own(module: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


def test_the_layers_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert done.returncode == 0, done.stdout[-2000:]
