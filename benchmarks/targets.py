"""The performance targets of issue 5, and how a run's medians compare with them."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.report import DatabaseReport, Status, TargetResult

ALL = ("sqlite", "postgres", "mysql")
_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    key: str  # the row whose median is compared
    comparison: str
    limit: float
    unit: str
    databases: tuple[str, ...]
    at_full_size: bool = False  # the target is stated for 1M events


TARGETS = (
    Target("set vs plain upsert (SQLAlchemy, own txn)", "set.ratio_sa", "<=", 1.0, "×", ("postgres",)),
    Target("set vs plain upsert (SQLAlchemy, own txn)", "set.ratio_sa", "<=", 1.3, "×", ("sqlite",)),
    Target("set vs plain upsert (SQLAlchemy, own txn)", "set.ratio_sa", "<=", 1.5, "×", ("mysql",)),
    Target("get vs plain select (SQLAlchemy)", "get.ratio_sa", "<=", 1.1, "×", ALL),
    Target("get vs raw driver select", "get.ratio_raw", "<=", 3.0, "×", ("sqlite",)),
    Target("write ops/s vs eventsourcing 9.5", "peer.ratio", ">=", 2.5, "×", ("postgres",)),
    Target("write ops/s vs eventsourcing 9.5", "peer.ratio", ">=", 1.5, "×", ("sqlite",)),
    Target("8 writers (distinct assets) vs 1 writer", "conc.scaling", ">=", 2.0, "×", ("postgres",)),
    Target(
        "8 updaters on one key: retries per op",
        "conc.retries",
        "<=",
        0.5,
        "retries/op",
        ("postgres", "mysql"),
    ),
    Target("REST GET of a key vs a no-op route (latency)", "rest.get_ratio", "<=", 1.5, "×", ALL),
    Target("HTTP client set vs raw httpx, same route", "client.set_ratio", "<=", 1.2, "×", ALL),
    Target("HTTP client get vs raw httpx, same route", "client.get_ratio", "<=", 1.2, "×", ALL),
    Target("8 remote updaters on one key: retries per op", "client.retries", "<=", 1.0, "retries/op", ALL),
    Target("rebuild rate", "rebuild.rate", ">=", 200_000, "events/s", ALL, at_full_size=True),
    Target("rebuild peak RSS", "rebuild.rss", "<", 200, "MB", ALL, at_full_size=True),
    Target("as-of on a 1M-event stream", "asof.ms", "<", 50, "ms", ALL, at_full_size=True),
    Target(
        "history: last 100 changes of one key among 1M events",
        "history.ms",
        "<",
        20,
        "ms",
        ALL,
        at_full_size=True,
    ),
)


def evaluate(report: DatabaseReport, *, events: int) -> list[TargetResult]:
    results: list[TargetResult] = []
    for target in TARGETS:
        if report.db not in target.databases:
            continue
        row = report.row(target.key)
        note = ""
        if target.at_full_size and events < 1_000_000:
            note = f"measured on {events:,} events (--quick); the target is for 1M"
        status: Status
        if row is None or row.stats is None:
            measured, status = None, "not measured"
            note = row.note if row is not None else "not run"
        else:
            measured = row.stats.median
            status = "met" if _COMPARE[target.comparison](measured, target.limit) else "missed"
        results.append(
            TargetResult(
                target.name, target.key, target.comparison, target.limit, target.unit, measured, status, note
            )
        )
    if report.db == "mysql":
        results.append(
            TargetResult(
                "write ops/s vs eventsourcing 9.5",
                "peer.ratio",
                ">=",
                0,
                "×",
                None,
                "n/a",
                "eventsourcing 9.5 has no MySQL/MariaDB recorder",
            )
        )
    return results
