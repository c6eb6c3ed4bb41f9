"""Render a results file as Markdown tables (for docs/performance.md).

`python -m benchmarks.markdown [benchmarks/results/latest.json]`
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import number

DEFAULT = Path(__file__).parent / "results" / "latest.json"


def _measured(stats: dict[str, Any] | None) -> tuple[str, str]:
    if stats is None:
        return "—", ""
    return number(stats["median"]), f"{number(stats['min'])}–{number(stats['max'])}"


def render(document: dict[str, Any]) -> str:
    lines: list[str] = []
    options = document["options"]
    lines.append(
        f"Run started {document['started']} ({'--quick' if options.get('quick') else 'full size'}, "
        f"{options['reps']} repetitions, {options['events']:,} events in the big stream)."
    )
    for db in document["databases"]:
        lines += ["", f"#### {db['db']}", "", "| section | measurement | median | unit | min–max | note |"]
        lines.append("|---|---|--:|---|--:|---|")
        for row in db["rows"]:
            median, spread = _measured(row["stats"])
            lines.append(
                f"| {row['section']} | {row['name']} | {median} | {row['unit']} | {spread} | {row['note']} |"
            )
        lines += ["", "| target | measured | limit | status | note |", "|---|--:|--:|---|---|"]
        for t in db["targets"]:
            measured = "—" if t["measured"] is None else f"{number(t['measured'])} {t['unit']}"
            limit = "—" if t["status"] == "n/a" else f"{t['comparison']} {number(t['limit'])} {t['unit']}"
            status = {"met": "**met**", "missed": "**missed**"}.get(t["status"], t["status"])
            lines.append(f"| {t['name']} | {measured} | {limit} | {status} | {t['note']} |")
        if db["checks"]:
            lines += ["", "| correctness check | result | detail |", "|---|---|---|"]
            for c in db["checks"]:
                lines.append(f"| {c['name']} | {'ok' if c['ok'] else '**FAILED**'} | {c['detail']} |")
        for note in db["notes"]:
            lines.append(f"\n- {note}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT
    sys.stdout.write(render(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
