"""`eventstore demo` and the shell entry points; where open_store looks for its database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from eventstore import Asset, demo, open_store
from eventstore.cli import main as cli


def test_demo_runs_the_watermark_example_and_prints_its_history() -> None:
    console = Console(record=True, width=140)
    demo.main(console=console)
    text = console.export_text()
    for line in [
        "run 1: loaded 3 orders, watermark 1970-01-01T00:00:00Z → 2024-06-01T17:05:00Z",
        "run 3: loaded 1 orders, watermark 2024-06-02T12:00:00Z → 2024-06-03T06:45:00Z",
        "total_runs = 3",
    ]:
        assert line in text
    history = [line for line in text.splitlines() if "load_new_orders @ scheduled__" in line]
    assert len(history) == 3
    assert "state_as_of(orders, position=" in text
    assert "watermark = 2024-06-01T17:05:00Z" in text  # replayed: the state after the first run
    assert "(none)" in history[0] and history[2].rstrip().endswith("2024-06-03T06:45:00Z")


def test_demo_on_a_given_database_keeps_its_state(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert cli(["--url", url, "demo"]) == 0
    with open_store(url) as store:
        assert store.asset(demo.orders).get("total_runs") == 3


def test_python_dash_m_eventstore_is_the_shell_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "eventstore", "--url", url, "db", "upgrade"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "schema at" in done.stdout
    usage = subprocess.run([sys.executable, "-m", "eventstore", "nonsense"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_open_store_uses_eventstore_url_then_the_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTSTORE_URL", raising=False)
    with open_store() as store:
        store.activate(Asset("local"))
    assert (tmp_path / "eventstore.db").exists()
    monkeypatch.setenv("EVENTSTORE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with open_store() as store:
        assert store.assets() == []
    assert (tmp_path / "other.db").exists()
