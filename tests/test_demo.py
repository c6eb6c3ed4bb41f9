"""`eventstore demo` and the shell entry points; where open_store looks for its database."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from eventstore import demo, open_store
from eventstore.cli import main as cli


def test_demo_runs_the_watermark_example_and_prints_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    console = Console(record=True, width=80)
    url = demo.main(console=console)
    text = console.export_text()
    for line in [
        "run 1: loaded 3 orders, watermark 1970-01-01T00:00:00Z → 2024-06-01T17:05:00Z",
        "run 3: loaded 1 orders, watermark 2024-06-02T12:00:00Z → 2024-06-03T06:45:00Z",
        "total_runs = 3",
        'watermark = "2024-06-03T06:45:00Z"',  # values as JSON
        'watermark = "2024-06-01T17:05:00Z"',  # replayed: the state after the first run
    ]:
        assert line in text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("store.history(orders, 'watermark')"))
    end = next(i for i, line in enumerate(lines) if line.startswith("store.state_as_of("))
    table = lines[start:end]
    assert max(len(line) for line in table) <= 80  # the table fits 80 columns
    assert sum("load_new_orders" in line for line in table) == 3
    assert sum("scheduled__2024-06-0" in line for line in table) == 3
    dated = [line for line in table if re.search(r"\b\d{4}-\d{2}-\d{2}\b", line)]
    timed = [line for line in table if re.search(r"\b\d{2}:\d{2}:\d{2}\.\d{3}\b", line)]
    assert len(dated) >= 3 and len(timed) == 3  # date and time of each change
    assert "(none)" in text and '→ "2024-06-03T06:45:00Z"' in text

    # It keeps its database, says where, and ends with the commands that explore it.
    assert url == "sqlite:///eventstore-demo.db" and (tmp_path / "eventstore-demo.db").exists()
    assert str(tmp_path / "eventstore-demo.db") in text
    commands = [line.strip() for line in lines if line.strip().startswith("eventstore --url ")]
    assert [c.split()[3] for c in commands] == ["history", "as-of", "restore"]
    assert commands[0] == f"eventstore --url {url} history orders --uri s3://data/orders/ --key watermark"
    assert lines[-1].strip() == commands[-1]
    with open_store(url) as store:
        assert store.asset(demo.orders).get("total_runs") == 3
    # Each run starts afresh.
    demo.main(console=Console(record=True, width=80))
    with open_store(url) as store:
        assert store.asset(demo.orders).get("total_runs") == 3


def test_the_demo_never_writes_into_a_named_database_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'mine.db'}"
    assert cli(["--url", url, "demo"]) == 1
    assert "--into-url" in capsys.readouterr().err
    assert not (tmp_path / "mine.db").exists() and not (tmp_path / "eventstore-demo.db").exists()
    monkeypatch.setenv("EVENTSTORE_URL", url)  # ignored: the demo writes its own file
    assert cli(["demo", "--keep"]) == 0
    assert not (tmp_path / "mine.db").exists() and (tmp_path / "eventstore-demo.db").exists()
    assert cli(["--url", url, "demo", "--into-url"]) == 0
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
