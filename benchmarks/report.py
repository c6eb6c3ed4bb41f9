"""What one run found, per database: measurements, correctness checks, targets; as tables and JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from benchmarks.stats import Stats

Status = Literal["met", "missed", "not measured", "n/a"]


@dataclass(slots=True)
class Row:
    """One measurement: samples (one per repetition) in `unit`, or None with a note saying why."""

    key: str  # stable id, e.g. "set.eventstore"; targets and the JSON refer to it
    section: str
    name: str
    unit: str
    stats: Stats | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Check:
    """A correctness check of the run itself (a tailing reader missed nothing, no update was lost)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class TargetResult:
    name: str
    key: str
    comparison: str  # "<=", "<", ">="
    limit: float
    unit: str
    measured: float | None
    status: Status
    note: str = ""


@dataclass(slots=True)
class DatabaseReport:
    db: str
    settings: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[TargetResult] = field(default_factory=list)
    sizes: dict[str, int | float] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, key: str, section: str, name: str, unit: str, stats: Stats | None, note: str = "") -> None:
        self.rows.append(Row(key, section, name, unit, stats, note))

    def missing(self, key: str, section: str, name: str, unit: str, why: str) -> None:
        self.rows.append(Row(key, section, name, unit, None, why))

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def stats(self, key: str) -> Stats | None:
        for row in self.rows:
            if row.key == key:
                return row.stats
        return None

    def row(self, key: str) -> Row | None:
        return next((row for row in self.rows if row.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "settings": self.settings,
            "sizes": self.sizes,
            "seconds": self.seconds,
            "rows": [
                {
                    "key": r.key,
                    "section": r.section,
                    "name": r.name,
                    "unit": r.unit,
                    "stats": None if r.stats is None else r.stats.to_json(),
                    "note": r.note,
                }
                for r in self.rows
            ],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "targets": [
                {
                    "name": t.name,
                    "key": t.key,
                    "comparison": t.comparison,
                    "limit": t.limit,
                    "unit": t.unit,
                    "measured": t.measured,
                    "status": t.status,
                    "note": t.note,
                }
                for t in self.targets
            ],
            "notes": self.notes,
        }


# --- rendering ------------------------------------------------------------------------------------


def number(value: float) -> str:
    """A number with as many digits as a person reading a benchmark table wants."""
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _spread(stats: Stats) -> str:
    return f"{number(stats.low)}–{number(stats.high)} (±{stats.spread * 50:.0f}%)"


_STATUS_STYLE = {"met": "bold green", "missed": "bold red", "not measured": "yellow", "n/a": "dim"}


def render(report: DatabaseReport, console: Console) -> None:
    table = Table(title=f"eventstore benchmarks: {report.db}", title_justify="left", show_lines=False)
    table.add_column("section", style="cyan", no_wrap=True)
    table.add_column("measurement")
    table.add_column("median", justify="right", style="bold")
    table.add_column("unit")
    table.add_column("min–max (spread)", justify="right")
    table.add_column("n", justify="right")
    table.add_column("note", style="dim")
    previous = ""
    for row in report.rows:
        section = row.section if row.section != previous else ""
        previous = row.section
        if row.stats is None:
            table.add_row(section, row.name, "—", row.unit, "", "", f"[yellow]{row.note}[/yellow]")
        else:
            table.add_row(
                section,
                row.name,
                number(row.stats.median),
                row.unit,
                _spread(row.stats),
                str(len(row.stats.samples)),
                row.note,
            )
    console.print(table)

    targets = Table(title=f"targets: {report.db}", title_justify="left")
    targets.add_column("target")
    targets.add_column("measured (median)", justify="right", style="bold")
    targets.add_column("limit", justify="right")
    targets.add_column("status")
    targets.add_column("note", style="dim")
    for t in report.targets:
        measured = "—" if t.measured is None else f"{number(t.measured)} {t.unit}"
        style = _STATUS_STYLE[t.status]
        limit = "—" if t.status == "n/a" else f"{t.comparison} {number(t.limit)} {t.unit}"
        targets.add_row(t.name, measured, limit, f"[{style}]{t.status}[/]", t.note)
    console.print(targets)

    if report.checks:
        checks = Table(title=f"correctness checks: {report.db}", title_justify="left")
        checks.add_column("check")
        checks.add_column("result")
        checks.add_column("detail", style="dim")
        for c in report.checks:
            checks.add_row(c.name, "[bold green]ok[/]" if c.ok else "[bold red]FAILED[/]", c.detail)
        console.print(checks)
    for note in report.notes:
        console.print(f"[dim]• {note}[/dim]")
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items() if k != "note")
    console.print(f"[dim]settings: {settings}; {report.seconds:.0f} s[/dim]\n")


# --- the JSON file --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), ""
            )
        info["cpu"] = model
        with open("/proc/meminfo") as meminfo:
            info["memory_kb"] = int(meminfo.readline().split()[1])
    except OSError:
        pass
    try:
        import sqlalchemy

        info["sqlalchemy"] = sqlalchemy.__version__
    except ImportError:
        pass
    return info


def write_json(
    reports: list[DatabaseReport], options: dict[str, Any], directory: Path, started: datetime
) -> Path:
    """Write benchmarks/results/bench-<time>.json and latest.json (the same content); return the first."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    document = {
        "started": started.isoformat(timespec="seconds"),
        "finished": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "options": options,
        "databases": [r.to_json() for r in reports],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False)
    path = directory / f"bench-{now:%Y%m%d-%H%M%S}.json"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path
