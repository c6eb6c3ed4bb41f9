"""`python -m reliability [RUN ...] [-- RUN-OPTIONS]` (`make reliability`): the long runs, one after
another, or only those named. Options after `--` go to every named run: `--db` is common to all; for
an option only one run knows, name that run (`python -m reliability load -- --seconds 600`; each run's
own `--help`: `python -m reliability.load --help`).
Exits 1 if any check of any run failed."""

from __future__ import annotations

import importlib
import sys

RUNS = ("kill", "restarts", "load")


def main(argv: list[str]) -> int:
    names, options = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    if unknown := [name for name in names if name not in RUNS]:
        print(f"unknown run {', '.join(unknown)}: choose from {', '.join(RUNS)}", file=sys.stderr)
        return 2
    failed = []
    for name in names or RUNS:
        print(f"== reliability.{name}", flush=True)
        if importlib.import_module(f"reliability.{name}").main(options) != 0:
            failed.append(name)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
