"""A property-based fuzz run of the shell's arguments (eventstore/cli/, CONTRACT §7), on SQLite.

Hypothesis builds argument lists from the shell's own vocabulary (every command but `serve` and `demo`,
every option, asset names, uris, keys, JSON texts, times, positions) mixed with hostile text (lone
surrogates, as a POSIX argv carries undecodable bytes, NUL, huge numbers, deep nesting). Each runs
in-process through `eventstore.cli.main` inside click's CliRunner isolation, and a few in real
subprocesses. Whatever the arguments:

- the exit status is 0, 1 (a user error) or 2 (a usage error);
- the output holds no Python traceback and no "unexpected error" (main's catch-all for an error that is
  not a user error: the shell's 500);
- a refused command (status 1 or 2) changes nothing in any table.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventstore import Asset, open_store, schema
from eventstore.cli import main

EXAMPLES = int(os.environ.get("EVENTSTORE_FUZZ_CLI_EXAMPLES", "60"))
"""In-process runs: 60 take about 3 s on a quiet 2-core machine. A longer hunt:
EVENTSTORE_FUZZ_CLI_EXAMPLES=3000 pytest tests/test_fuzz_cli.py."""

ACTIVE = Asset("orders", "s3://data/orders/")
INACTIVE = Asset("old", "s3://data/old/")

COMMANDS = [
    ["db", "upgrade"],
    ["db"],
    ["assets"],
    ["activate"],
    ["deactivate"],
    ["get"],
    ["set"],
    ["delete"],
    ["clear"],
    ["history"],
    ["as-of"],
    ["events"],
    ["rebuild"],
    ["verify"],
    ["compact"],
    ["compactions"],
    ["restore"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke"],
    ["token"],
    ["airflow", "install"],
    ["airflow", "uninstall"],
    ["nonsense"],
    [],
]
OPTIONS = [
    "--uri",
    "--key",
    "--since",
    "--until",
    "--at",
    "--position",
    "--limit",
    "--after",
    "--json",
    "--dry-run",
    "--grace",
    "--scope",
    "--all",
    "--newest-first",
    "--help",
    "-h",
    "--version",
    "--",
    "-",
    "--no-such-option",
]
NAMES = ["orders", "old", "missing", "s3://data/orders/", "s3://data/old/", "ORDERS", "orders "]
KEYS = ["watermark", "n", "dir/nested", "", "k" * 513, "\x00", "a\udcff", "\ud800"]
JSON_TEXTS = [
    '"2024-06-02"',
    "1",
    "2.5",
    "-0.0",
    "true",
    "[1, 2]",
    '{"a": {"b": null}}',
    "null",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    str(2**70),
    "[1,",
    "not json",
    "'single'",
    '"\\ud800"',
    "[" * 3000 + "]" * 3000,
    '{"a": 1, "a": 2}',
    "x" * 70_000,
]
POINTS = [
    "2024-06-01",
    "2024-06-01T00:00:00",
    "2024-06-01T00:00:00+02:00",
    "2024-06-01T00:00:00Z",
    "0001-01-01",
    "9999-12-31T23:59:59.999999",
    "yesterday",
    "2024-13-45",
    "0",
    "1",
    "3",
    "-1",
    str(2**63),
    str(2**64),
    "99999999999999999999999999",
    "1.5",
    "1e3",
    "0x10",
    "24h",
    "7d",
    "-5s",
    "read",
    "write",
    "admin",
    "root",
]
BAD_URLS = [
    "",
    "nonsense",
    "sqlite:////no/such/dir/x.db",
    "postgresql+nodriver://u@h/db",
    "mysql://u:secret@127.0.0.1:1/db",
    "sqlite:///\x00",
    "http://example.com",
]
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
TOKENS = st.one_of(
    st.sampled_from(OPTIONS),
    st.sampled_from(OPTIONS),
    st.sampled_from(NAMES),
    st.sampled_from(KEYS),
    st.sampled_from(JSON_TEXTS),
    st.sampled_from(POINTS),
    ANY_TEXT,
)


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """`--url` (ours, or one of the bad ones), a command, then arguments and options in any order."""
    url = draw(st.one_of(st.just(None), st.just(None), st.just(None), st.sampled_from(BAD_URLS)))
    prefix = [] if url is None else ["--url", url]
    return [*prefix, *draw(st.sampled_from(COMMANDS)), *draw(st.lists(TOKENS, max_size=7))]


@dataclass
class Shell:
    url: str
    database: sqlite3.Connection

    def snapshot(self) -> list[list[tuple[object, ...]]]:
        """Every row of every eventstore table (as tests/test_server_fuzz.py takes it)."""
        return [
            self.database.execute(f"SELECT * FROM {table.name} ORDER BY 1, 2").fetchall()
            for table in schema.metadata.sorted_tables
        ]

    def argv(self, args: list[str]) -> list[str]:
        """Our store's --url first; a --url among `args` (a bad one) overrides it, as the shell does."""
        return ["--url", self.url, *args]


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    path = tmp_path / "shell.db"
    with open_store(f"sqlite:///{path}") as store:
        store.activate(ACTIVE)
        state = store.asset(ACTIVE)
        for key, value in {"watermark": "2024-06-01", "dir/nested": [1, 2], "n": 3}.items():
            state.set(key, value)
        store.activate(INACTIVE)
        store.asset(INACTIVE).set("k", {"a": 1})
        store.deactivate(INACTIVE)
    database = sqlite3.connect(path)
    try:
        yield Shell(f"sqlite:///{path}", database)
    finally:
        database.close()


def reset(shell: Shell) -> None:
    """Undo what an earlier example may have done: the active asset active, the inactive one not."""
    with open_store(shell.url) as store:
        if not store.is_active(ACTIVE):
            store.activate(ACTIVE)
        if store.is_active(INACTIVE):
            store.deactivate(INACTIVE)


def check(args: list[str], code: int, output: str, changed: bool) -> None:
    assert code in (0, 1, 2), (args, code, output[-2000:])
    assert "Traceback" not in output, (args, output[-3000:])
    assert "unexpected error" not in output, (args, output[-2000:])
    if code != 0:
        assert not changed, (args, code, output[-2000:], "a refused command changed the store")


def run_in_process(shell: Shell, args: list[str]) -> tuple[int, str]:
    """`eventstore ARGS` through `main`, with CliRunner's isolated streams (stdin empty, stderr apart)."""
    runner = CliRunner()
    env = {"EVENTSTORE_URL": None, "EVENTSTORE_DEBUG": None, "COLUMNS": "100"}
    with runner.isolation(input="", env=env) as (stdout, stderr, _):
        code = main(shell.argv(args))
    return code, stdout.getvalue().decode(errors="replace") + stderr.getvalue().decode(errors="replace")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=argvs())
@example(args=["set", "orders", "--uri", "s3://data/orders/", "watermark", "[" * 3000 + "]" * 3000])
@example(args=["as-of", "orders", "--uri", "s3://data/orders/", "--position", str(2**64)])
@example(args=["history", "orders", "--uri", "s3://data/orders/", "--limit", str(2**64)])
@example(args=["events", "--after", str(2**64), "--limit", str(2**64)])
@example(args=["restore", "orders", "--uri", "s3://data/orders/", "--at", "0001-01-01"])
@example(args=["restore", "orders", "--uri", "s3://data/orders/", "--at", "9999-12-31T23:59:59.999999"])
@example(
    args=["history", "orders", "--uri", "s3://data/orders/", "--since", "9999-12-31T23:59:59.999999+00:00"]
)
@example(args=["get", "orders", "--uri", "s3://data/orders/", "a\udcff"])
@example(args=["--url", "sqlite:///\x00", "assets"])
@example(args=["--url", "sqlite:////no/such/dir/x.db", "airflow", "install"])
@example(args=["--url", "sqlite:////no/such/dir/x.db", "airflow", "uninstall"])
@example(args=["compact", "--grace", str(2**64)])
@example(args=["compact", "--grace", "99999999999d"])
def test_any_arguments_exit_0_1_or_2_and_a_refusal_changes_nothing(shell: Shell, args: list[str]) -> None:
    reset(shell)
    before = shell.snapshot()
    code, output = run_in_process(shell, args)
    check(args, code, output, shell.snapshot() != before)


SUBPROCESS_ARGS = [
    (["set", "orders", "--uri", "s3://data/orders/", "n", "[" * 3000 + "]" * 3000], 1),
    (["--url", "sqlite:////no/such/dir/x.db", "airflow", "install"], 1),
]


@pytest.mark.parametrize(
    ("args", "status"),
    SUBPROCESS_ARGS,
    ids=lambda arg: " ".join(arg)[:30] if isinstance(arg, list) else str(arg),
)
def test_refused_arguments_in_a_real_process(shell: Shell, args: list[str], status: int) -> None:
    """The same promises as users meet them: `python -m eventstore` in a process of its own (each case
    here was found by the fuzz run above; status 1 is one line on stderr, 2 is click's usage error)."""
    before = shell.snapshot()
    env = {k: v for k, v in os.environ.items() if k not in ("EVENTSTORE_URL", "EVENTSTORE_DEBUG")}
    done = subprocess.run(
        [sys.executable, "-m", "eventstore", *shell.argv(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == status, (args, done.stdout, done.stderr)
    check(args, done.returncode, done.stdout + done.stderr, shell.snapshot() != before)
    if status == 1:
        assert done.stderr.startswith("eventstore: ") and done.stderr.count("\n") == 1, done.stderr


def test_the_check_sees_a_change_and_a_traceback(shell: Shell) -> None:
    """The checks are live: a refused command that changed the store, or printed a traceback, fails."""
    before = shell.snapshot()
    code, output = run_in_process(shell, ["set", "orders", "--uri", "s3://data/orders/", "n", "4"])
    assert code == 0, output
    assert shell.snapshot() != before
    with pytest.raises(AssertionError):
        check(["x"], 1, "", changed=True)
    with pytest.raises(AssertionError):
        check(["x"], 1, 'Traceback (most recent call last):\n  File "x"', changed=False)
