"""The `eventstore` shell command (also `python -m eventstore`).

Exit status: 0 on success; 1 on a user error (one line on stderr, no traceback); 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from eventstore import demo, migrate
from eventstore.database import Database
from eventstore.errors import StateStoreError
from eventstore.store import DEFAULT_URL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventstore", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=None,
        help=f"database URL (default: $EVENTSTORE_URL, else {DEFAULT_URL}; the demo uses a fresh file)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    db = commands.add_parser("db", help="manage the database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="bring the schema to this version of eventstore")
    commands.add_parser("demo", help="the watermark example on embedded SQLite, with its audit trail")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            demo.main(args.url)
        elif args.command == "db":
            database = Database(args.url or os.environ.get("EVENTSTORE_URL") or DEFAULT_URL)
            try:
                database.run_admin(migrate.upgrade)
            finally:
                database.dispose()
            print(f"{database.url_for_people}: schema at {migrate.head_revision()}")
    except StateStoreError as error:
        print(f"eventstore: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
