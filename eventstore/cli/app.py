"""The root command group and what every command module shares: the store, the URL, the OS user,
how to fail, how times and values are shown.

Command modules import from here (never the other way round) and expose `commands`; the list of
modules is `eventstore.cli.COMMAND_MODULES`.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from eventstore.assets import Asset
from eventstore.codec import JSON
from eventstore.events import Change
from eventstore.store import DEFAULT_URL, Store, open_store, store_url
from eventstore.wire import time_text
from eventstore.writers import Writer


class UserError(click.ClickException):
    """A user error: one line `eventstore: <message>` on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"eventstore: {one_line(self.message)}", err=True)


def one_line(message: str) -> str:
    """The message on one line (error texts may span several)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def fail(message: str) -> NoReturn:
    """Stop the command: `eventstore: <message>` on stderr, exit status 1."""
    raise UserError(message)


@dataclass
class _Invocation:
    """What the root group keeps for one invocation: the --url given (None if not) and the store."""

    url_option: str | None
    store: Store | None = None


def _invocation(ctx: click.Context) -> _Invocation:
    found = ctx.find_root().obj
    assert isinstance(found, _Invocation), "the root group sets ctx.obj"
    return found


def url_for(ctx: click.Context) -> str:
    """The database URL of this invocation: --url, else $EVENTSTORE_URL, else DEFAULT_URL."""
    return str(store_url(_invocation(ctx).url_option))


def url_option(ctx: click.Context) -> str | None:
    """The --url given before the command, if any."""
    return _invocation(ctx).url_option


def store_for(ctx: click.Context) -> Store:
    """The store of this invocation, opened on first use and closed when the command ends.

    It is opened without migrating (`open_store(url, migrate=False)`): the shell changes a schema only
    when asked (`eventstore db upgrade`), so a missing or older schema is a SchemaVersionError naming the
    command to run. A SQLite file that does not exist is refused rather than created.
    """
    invocation = _invocation(ctx)
    if invocation.store is None:
        url = url_for(ctx)
        missing = missing_sqlite_file(url)
        if missing is not None:
            fail(
                f"no database at {missing}: create it with `eventstore --url {url} db upgrade`, "
                "or give another with --url or $EVENTSTORE_URL"
            )
        invocation.store = open_store(url, migrate=False)
        ctx.find_root().call_on_close(invocation.store.close)
    return invocation.store


def missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL if it does not exist (None for other URLs and in-memory databases)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    path = Path(database)
    return None if path.exists() else path


def os_user() -> str:
    """The operating-system user, recorded as `Writer.cli(user=...)` for shell writes."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def cli_writer() -> Writer:
    return Writer.cli(user=os_user())


# --- Times and values ---------------------------------------------------------------------------------


def format_time(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds and a Z (`eventstore.wire.time_text`); None for none."""
    return None if moment is None else time_text(moment)


def parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An option's ISO 8601 time (`2024-06-01`, `2024-06-01T08:15:00Z`, `...+02:00`) in UTC; naive
    input is taken as UTC. A click callback: a malformed time is a usage error."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2024-06-01T08:15:00Z; naive times are UTC)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def asset_of(store: Store, name: str, uri: str | None) -> Asset:
    """The asset a NAME argument and a --uri option name (uri defaults to the name; on an Airflow
    database, the asset of that name: `Store.named_asset`)."""
    return store.named_asset(name, uri)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON text as eventstore stores it: non-ASCII kept, NaN refused."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=indent)


def print_json(value: Any) -> None:
    click.echo(dumps(value, indent=2))


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> JSON:
    """A strict JSON value (NaN and Infinity refused); a user error otherwise."""
    try:
        value: JSON = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        fail("not a JSON value that can be stored: nested too deeply (a thousand levels or so); flatten it")
    except ValueError as error:
        hint = "" if text.lstrip()[:1] in '{["-0123456789tfn' else " (a string needs JSON quotes: '\"...\"')"
        fail(f"not a JSON value: {text!r}: {error}{hint}")
    return value


def writer_text(writer: Writer) -> str:
    """A writer for people: a task's dag, run and `task[map_index] try n` on three lines; `cli (alice)`."""
    if writer.task_id:
        mapped = "" if writer.map_index in (None, -1) else f"[{writer.map_index}]"
        text = f"{writer.dag_id}\n{writer.run_id}\n{writer.task_id}{mapped} try {writer.try_number}"
    else:
        text = writer.kind.value
    return f"{text} ({writer.user})" if writer.user else text


def shown(value: JSON) -> str:
    """A value in a table cell: its JSON text, empty for none."""
    return "" if value is None else dumps(value)


def console() -> Console:
    return Console(soft_wrap=False)


_UNBROKEN = {"pos", "recorded at (UTC)", "op", "id", "version", "active"}
"""Columns whose short cells are never folded; every other column folds to fit the terminal."""


def table(*columns: str, title: str | None = None) -> Table:
    """A table that fits the terminal: long cells fold instead of widening it."""
    made = Table(title=title, title_justify="left", expand=False)
    for column in columns:
        made.add_column(column, overflow="fold", no_wrap=column in _UNBROKEN)
    return made


def changes_table(changes: list[Change], title: str | None = None) -> Table:
    made = table("pos", "recorded at (UTC)", "op", "key", "value", "previous", "writer", title=title)
    for change in changes:
        made.add_row(
            str(change.position),
            format_time(change.recorded_at),
            change.op.value,
            change.key or "",
            shown(change.value),
            shown(change.previous),
            writer_text(change.writer),
        )
    return made


# --- The root group -----------------------------------------------------------------------------------


def _version() -> str:
    try:
        return version("eventstore")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--url",
    metavar="URL",
    default=None,
    help=f"Database URL (SQLAlchemy). Default: $EVENTSTORE_URL, else {DEFAULT_URL}.",
)
@click.version_option(_version(), "--version", prog_name="eventstore", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, url: str | None) -> None:
    """eventstore: an event-sourced per-asset key/value state store, from the shell.

    Asset arguments are names; add --uri URI where an asset's uri differs from its name. Times are
    ISO 8601 in UTC (naive input is taken as UTC). Exit status: 0 on success, 1 on a user error (one
    line on stderr), 2 on a usage error.
    """
    ctx.obj = _Invocation(url_option=url)


def asset_options(function: Any) -> Any:
    """`NAME` and `--uri URI` (default: the name)."""
    function = click.option(
        "--uri", metavar="URI", default=None, help="The asset's uri, where it differs from its name."
    )(function)
    return click.argument("name")(function)


_SECRET = re.compile(r"(://[^:/@]*:)[^@/]*@")


def hide_password(url: str) -> str:
    """The URL with any password replaced by ***, for messages about a URL that does not parse."""
    return _SECRET.sub(r"\1***@", url)
