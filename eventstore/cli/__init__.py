"""The `eventstore` shell command (also `python -m eventstore`), built with click.

One module per concern registers its commands (`COMMAND_MODULES`, each exposing `commands`); the root
group, the shared helpers and the output formats are in `eventstore.cli.app`. Errors are turned into
exit statuses here, in `main`, and nowhere else:

- 0 on success;
- 1 on a user error: one line `eventstore: <message>` on stderr, never a traceback (set
  EVENTSTORE_DEBUG=1 to see one);
- 2 on a usage error (click's own message);
- 130 when interrupted.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click
import sqlalchemy as sa

from eventstore.cli.app import UserError, cli, hide_password, one_line
from eventstore.errors import StateStoreError

COMMAND_MODULES: tuple[str, ...] = (
    "db",
    "assets",
    "state",
    "audit",
    "maintenance",
    "tokens",
    "serve",
    "airflow",
    "demo",
)
"""The modules of eventstore.cli whose `commands` the root group offers, in help order."""

_registered = False


def register_commands() -> click.Group:
    """Add every command of COMMAND_MODULES to the root group (once) and return it."""
    global _registered
    if not _registered:
        for name in COMMAND_MODULES:
            module = importlib.import_module(f"eventstore.cli.{name}")
            for command in module.commands:
                cli.add_command(command)
        _registered = True
    return cli


# Which package brings a missing driver module, and how to get it.
_DRIVER_HINTS = {
    "psycopg": "pip install 'eventstore[postgres]'",
    "psycopg2": "use postgresql+psycopg://... with pip install 'eventstore[postgres]'",
    "pymysql": "pip install 'eventstore[mysql]'",
    "MySQLdb": "use mysql+pymysql://... with pip install 'eventstore[mysql]'",
}


def user_message(error: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None if it is not one."""
    if isinstance(error, StateStoreError):
        return str(error)
    if isinstance(error, sa.exc.NoSuchModuleError):
        return f"no database driver for this URL ({error}); see the SQLAlchemy URL forms: {_url_hint()}"
    if isinstance(error, sa.exc.ArgumentError):
        return f"not a database URL ({hide_password(str(error))}): {_url_hint()}"
    if isinstance(error, ModuleNotFoundError) and error.name:
        module = error.name.split(".")[0]
        hint = _DRIVER_HINTS.get(module, f"pip install {module}")
        return f"the database driver {module!r} is not installed: {hint}"
    if isinstance(error, ValueError | TypeError):
        return str(error)
    return None


def _url_hint() -> str:
    return (
        "give one like sqlite:///eventstore.db, postgresql+psycopg://user@host:5432/db or "
        "mysql+pymysql://user@host:3306/db"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the shell command with `argv` (default: sys.argv[1:]); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    group = register_commands()
    try:
        group.main(args=args, prog_name="eventstore", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except UserError as error:
        error.show()
        return error.exit_code
    except click.ClickException as error:  # usage errors: click's own message, exit status 2
        error.show()
        return error.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("eventstore: interrupted", err=True)
        return 130
    except Exception as error:
        if os.environ.get("EVENTSTORE_DEBUG") == "1":
            raise
        message = user_message(error)
        if message is None:
            message = (
                f"unexpected error {type(error).__name__}: {error} (EVENTSTORE_DEBUG=1 shows the traceback)"
            )
        click.echo(f"eventstore: {one_line(message)}", err=True)
        return 1
    return 0
