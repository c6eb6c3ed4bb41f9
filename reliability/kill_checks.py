"""What must hold after writers were SIGKILLed: the invariants of the kill -9 run, each a named check.

The log is read twice, through the public API (`Store.history`) and directly from the tables, and the
two must agree; then, against the writers' journals (reliability.kill_journal):

- versions: each asset's versions are 1..version with no hole, and `es_assets.version` is the last;
- view: the view (`es_state`, read directly) equals the fold of the log (`eventstore.events.fold`), and
  `Store.verify_projections()` finds no drift;
- acknowledged: every acknowledged operation is in the log, with the acknowledged result;
- not applied: no operation that got StoreUnavailableError (not OutcomeUnknownError) is in the log;
- no stranger: every event was begun by a writer, and no operation landed twice;
- counter: COUNTER's values are 1, 2, 3, ... in version order (no lost update), so acknowledged
  increments <= the counter <= attempted ones;
- set_many: each operation's events are a, b, c with its id, at consecutive versions (all or none);
- restore: each restore's events are consecutive, and the state after them is the state at its target.

Each check is a `Check(name, ok, detail)`; `detail` says exactly what broke, so a failure is a report.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from eventstore import Asset, schema
from eventstore.events import Op, fold
from eventstore.store import Store
from reliability.kill_journal import Outcomes
from reliability.kill_worker import COUNTER, MANY, MANY_KEYS


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Row:
    """One event as the tables hold it (value as JSON text)."""

    position: int
    version: int
    op: str
    key: str | None
    value: str | None
    run_id: str | None


def _check(name: str, problems: list[str], summary: str) -> Check:
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        return Check(name, False, shown)
    return Check(name, True, summary)


def read_tables(engine: sa.Engine, asset: Asset) -> tuple[list[Row], dict[str, str], int]:
    """The asset's events in version order, its view rows and its `es_assets.version`, from the tables
    (with an engine of its own: nothing of the store's code between the check and the rows)."""
    with engine.connect() as conn:
        asset_row = conn.execute(
            sa.select(schema.assets.c.id, schema.assets.c.version).where(
                schema.assets.c.identity_hash == asset.identity_hash
            )
        ).one()
        e = schema.events.c
        events = conn.execute(
            sa.select(e.position, e.version, e.op, e.key, e.value, e.writer_run_id)
            .where(e.asset_id == asset_row.id)
            .order_by(e.version)
        ).all()
        view = conn.execute(
            sa.select(schema.state.c.key, schema.state.c.value).where(schema.state.c.asset_id == asset_row.id)
        ).all()
    rows = [Row(r.position, r.version, r.op, r.key, r.value, r.writer_run_id) for r in events]
    return rows, {r.key: r.value for r in view}, int(asset_row.version)


def check_store(store: Store, url: str, outcomes: Outcomes) -> list[Check]:
    """Every check, on the store at `url` (`store` is open on it), against the journals' outcomes."""
    engine = sa.create_engine(url)
    try:
        tables = {asset: read_tables(engine, asset) for asset in (COUNTER, MANY)}
    finally:
        engine.dispose()
    checks = [_api_agrees(store, tables), _versions(tables), _view(store, tables)]
    rows = {asset: table[0] for asset, table in tables.items()}
    landed: dict[str, list[Row]] = defaultdict(list)
    for asset_rows in rows.values():
        for row in asset_rows:
            if row.op not in (Op.ACTIVATE, Op.DEACTIVATE):
                landed[row.run_id or "(none)"].append(row)
    checks += [
        _acknowledged(landed, outcomes),
        _not_applied(landed, outcomes),
        _no_stranger(rows, landed, outcomes),
        _counter(rows[COUNTER], outcomes),
        _set_many(landed, outcomes),
        _restores(rows[MANY], landed, outcomes),
    ]
    return checks


def _api_agrees(store: Store, tables: dict[Asset, tuple[list[Row], dict[str, str], int]]) -> Check:
    problems = []
    for asset, (rows, _view, _version) in tables.items():
        changes = store.history(asset)
        api = [(c.position, c.version, str(c.op), c.key, c.writer.run_id) for c in changes]
        direct = [(r.position, r.version, r.op, r.key, r.run_id) for r in rows]
        if api != direct:
            problems.append(f"{asset.name}: history() has {len(api)} events, the table {len(direct)}")
    total = sum(len(rows) for rows, _, _ in tables.values())
    return _check("history() = es_events", problems, f"{total} events read both ways")


def _versions(tables: dict[Asset, tuple[list[Row], dict[str, str], int]]) -> Check:
    problems = []
    for asset, (rows, _view, version) in tables.items():
        versions = [r.version for r in rows]
        if versions != list(range(1, version + 1)):
            missing = sorted(set(range(1, version + 1)) - set(versions))[:5]
            problems.append(f"{asset.name}: {len(versions)} events for version {version}, missing {missing}")
    return _check("versions without holes", problems, "1..version on every asset")


def _view(store: Store, tables: dict[Asset, tuple[list[Row], dict[str, str], int]]) -> Check:
    problems = []
    for asset, (rows, view, _version) in tables.items():
        state: dict[str, str] = {}
        for row in rows:
            fold(state, Op(row.op), row.key, row.value)
        if state != view:
            problems.append(f"{asset.name}: view {view} != fold {state}")
    drift = store.verify_projections()
    problems += [f"verify_projections: {d}" for d in drift]
    return _check("view = fold(log)", problems, "view rows equal the fold; verify_projections() empty")


def _acknowledged(landed: dict[str, list[Row]], outcomes: Outcomes) -> Check:
    problems = []
    for op, result in outcomes.acked.items():
        kind = outcomes.begun[op]["kind"]
        rows = landed.get(op, [])
        if kind == "restore":
            if len(rows) != result:
                problems.append(f"restore {op} acknowledged {result} changes, the log has {len(rows)}")
        elif not rows:
            problems.append(f"{kind} {op} acknowledged but not in the log")
        elif kind == "update" and json.loads(rows[0].value or "null") != result:
            problems.append(f"update {op} acknowledged {result}, the log has {rows[0].value}")
    return _check("acknowledged writes present", problems, f"{len(outcomes.acked)} acknowledged, all found")


def _not_applied(landed: dict[str, list[Row]], outcomes: Outcomes) -> Check:
    problems = [f"{op} got StoreUnavailableError but is in the log" for op in outcomes.failed if op in landed]
    return _check("StoreUnavailableError = not applied", problems, f"{len(outcomes.failed)} absent")


def _no_stranger(rows: dict[Asset, list[Row]], landed: dict[str, list[Row]], outcomes: Outcomes) -> Check:
    problems = [
        f"{op}: {len(found)} events, never begun" for op, found in landed.items() if op not in outcomes.begun
    ]
    for op, found in landed.items():
        if op in outcomes.begun and outcomes.begun[op]["kind"] == "update" and len(found) != 1:
            problems.append(f"update {op} landed {len(found)} times")
    return _check("every event begun, none twice", problems, f"{len(landed)} operations landed")


def _counter(rows: list[Row], outcomes: Outcomes) -> Check:
    values = [json.loads(r.value or "null") for r in rows if r.op == Op.SET]
    problems = []
    if values != list(range(1, len(values) + 1)):
        wrong = next(i for i, v in enumerate(values, 1) if v != i)
        problems.append(f"the {wrong}th increment wrote {values[wrong - 1]} (an update lost or doubled)")
    acked = sum(1 for op in outcomes.acked if outcomes.begun[op]["kind"] == "update")
    attempted = len(outcomes.kinds("update"))
    if not acked <= len(values) <= attempted:
        problems.append(f"counter {len(values)} not within acknowledged {acked} .. attempted {attempted}")
    return _check("counter: acked <= n <= attempted", problems, f"{acked} <= {len(values)} <= {attempted}")


def _consecutive(found: list[Row]) -> bool:
    versions = sorted(r.version for r in found)
    return versions == list(range(versions[0], versions[0] + len(versions)))


def _set_many(landed: dict[str, list[Row]], outcomes: Outcomes) -> Check:
    problems = []
    ops = outcomes.kinds("set_many") & landed.keys()
    for op in sorted(ops):
        found = landed[op]
        keys = sorted(r.key or "" for r in found)
        values = {json.loads(r.value or "null") for r in found}
        if keys != list(MANY_KEYS) or values != {op} or not _consecutive(found):
            problems.append(f"set_many {op} half-applied: keys {keys}, versions {[r.version for r in found]}")
    return _check(
        "set_many all or none", problems, f"{len(ops)} landed, each on all of {', '.join(MANY_KEYS)}"
    )


def _restores(rows: list[Row], landed: dict[str, list[Row]], outcomes: Outcomes) -> Check:
    problems = []
    ops = outcomes.kinds("restore") & landed.keys()
    for op in sorted(ops):
        found = landed[op]
        if not _consecutive(found):
            problems.append(f"restore {op} interleaved: versions {[r.version for r in found]}")
            continue
        target, last = outcomes.begun[op]["target"], max(r.version for r in found)
        at_target: dict[str, str] = {}
        after: dict[str, str] = {}
        for row in rows:
            if row.position <= target:
                fold(at_target, Op(row.op), row.key, row.value)
            if row.version <= last:
                fold(after, Op(row.op), row.key, row.value)
        if after != at_target:
            problems.append(f"restore {op} to position {target} left {after}, not {at_target}")
    return _check("restore all or none, to its target", problems, f"{len(ops)} restores landed, each exact")
