"""The core invariants under random operation sequences, on every database (hypothesis stateful).

After every step: `get` equals a plain dict model; the view equals the fold of the log; every asset's
versions are 1..n with no holes and match its stream head; positions strictly increase and never
repeat; a no-op (delete of a missing key, clear of an empty asset) appends nothing.
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from eventstore import Asset, AssetNotActiveError, Store, Writer, open_store
from tests import databases
from tests.logcheck import LogInspector, fold_log

ASSETS = [Asset("orders"), Asset("Orders", "s3://data/Orders"), Asset("orders ", "s3://data/orders ")]
KEYS = ["watermark", "Watermark", "watermark ", "cursor/Ω"]

json_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children | st.none(), max_size=3)
        | st.dictionaries(st.text(max_size=4), children | st.none(), max_size=3)
    ),
    max_leaves=6,
)
assets = st.sampled_from(ASSETS)
keys = st.sampled_from(KEYS)
writers = st.sampled_from(
    [Writer.api(), Writer.cli(), Writer.watcher(), Writer.task("dag", "run", "task", 2, 3)]
)


class StoreMachine(RuleBasedStateMachine):
    """A store and a plain-dict model driven by the same random operations.

    Subclasses add rules (compaction, say) and invariants; `url` is set by `run_on`.
    """

    url: str

    def __init__(self) -> None:
        super().__init__()
        databases.empty_tables(self.url)
        self.store: Store = open_store(self.url)
        self.inspector = LogInspector(self.url)
        self.active: set[Asset] = set()
        self.model: dict[Asset, dict[str, Any]] = {asset: {} for asset in ASSETS}
        self.events_per_asset: dict[Asset, int] = {asset: 0 for asset in ASSETS}
        self.last_position = 0

    def teardown(self) -> None:
        self.store.close()
        self.inspector.close()

    @initialize()
    def start_with_one_active_asset(self) -> None:
        self.activate(ASSETS[0], Writer.api())

    # --- lifetime --------------------------------------------------------------------------------

    @rule(asset=assets, writer=writers)
    def activate(self, asset: Asset, writer: Writer) -> None:
        self.store.activate(asset, writer)
        if asset not in self.active:
            self.active.add(asset)
            self.events_per_asset[asset] += 1

    @rule(asset=assets)
    def deactivate(self, asset: Asset) -> None:
        known = self.events_per_asset[asset] > 0
        if not known:
            with pytest.raises(LookupError):
                self.store.deactivate(asset)
            return
        self.store.deactivate(asset)
        if asset in self.active:
            self.active.remove(asset)
            self.events_per_asset[asset] += 1

    # --- state -----------------------------------------------------------------------------------

    def _write(self, asset: Asset, writer: Writer, call: str, *args: Any) -> Any:
        """Call the accessor; an inactive asset must refuse and change nothing."""
        accessor = self.store.asset(asset, writer)
        if asset not in self.active:
            with pytest.raises(AssetNotActiveError):
                getattr(accessor, call)(*args)
            return None
        return getattr(accessor, call)(*args)

    @rule(asset=assets, key=keys, value=json_values, writer=writers)
    def set(self, asset: Asset, key: str, value: Any, writer: Writer) -> None:
        self._write(asset, writer, "set", key, value)
        if asset in self.active:
            self.model[asset][key] = value
            self.events_per_asset[asset] += 1

    @rule(asset=assets, values=st.dictionaries(keys, json_values, max_size=3), writer=writers)
    def set_many(self, asset: Asset, values: dict[str, Any], writer: Writer) -> None:
        self._write(asset, writer, "set_many", values)
        if asset in self.active:
            self.model[asset].update(values)
            self.events_per_asset[asset] += len(values)

    @rule(asset=assets, key=keys, writer=writers)
    def delete(self, asset: Asset, key: str, writer: Writer) -> None:
        self._write(asset, writer, "delete", key)
        if asset in self.active and key in self.model[asset]:
            del self.model[asset][key]
            self.events_per_asset[asset] += 1

    @rule(asset=assets, writer=writers)
    def clear(self, asset: Asset, writer: Writer) -> None:
        self._write(asset, writer, "clear")
        if asset in self.active and self.model[asset]:
            self.model[asset].clear()
            self.events_per_asset[asset] += 1

    @rule(asset=assets, key=keys, writer=writers)
    def update(self, asset: Asset, key: str, writer: Writer) -> None:
        def append_marker(old: Any) -> Any:
            return [old, "updated"]

        result = self._write(asset, writer, "update", key, append_marker, 0)
        if asset in self.active:
            expected = [self.model[asset].get(key, 0), "updated"]
            assert result == expected
            self.model[asset][key] = expected
            self.events_per_asset[asset] += 1

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def get_equals_the_model(self) -> None:
        for asset in self.active:
            state = self.store.asset(asset)
            for key in KEYS:
                expected = self.model[asset].get(key, "<absent>")
                assert state.get(key, "<absent>") == expected, (asset, key)

    @invariant()
    def view_equals_fold_of_log(self) -> None:
        assert self.inspector.view() == fold_log(self.inspector.log())

    @invariant()
    def versions_are_consecutive_and_positions_increase(self) -> None:
        log = self.inspector.log()
        positions = [row.position for row in log]
        assert positions == sorted(set(positions))
        new = [p for p in positions if p > self.last_position]
        assert len(new) == len(positions) - len([p for p in positions if p <= self.last_position])
        if positions:
            self.last_position = positions[-1]
        versions: dict[int, list[int]] = {}
        for row in log:
            versions.setdefault(row.asset_id, []).append(row.version)
        heads = self.inspector.stream_heads()
        for asset_id, seen in versions.items():
            assert seen == list(range(1, len(seen) + 1)), (asset_id, seen)
            assert heads[asset_id] == len(seen)

    @invariant()
    def only_real_changes_are_recorded(self) -> None:
        ids = self.inspector.asset_ids()
        counts: dict[int, int] = {}
        for row in self.inspector.log():
            counts[row.asset_id] = counts.get(row.asset_id, 0) + 1
        for asset, expected in self.events_per_asset.items():
            asset_id = ids.get((asset.name, asset.uri))
            assert counts.get(asset_id, 0) == expected, asset  # type: ignore[arg-type]


EXAMPLES = {"sqlite": 40, "postgres": 20, "mysql": 20}


def run_on(
    machine: type[StoreMachine], db_url: str, backend: str, examples: dict[str, int] | None = None
) -> None:
    """Run a StoreMachine (or subclass) against `db_url` with a per-backend example budget."""
    machine.url = db_url
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=(examples or EXAMPLES)[backend],
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_core_invariants(db_url: str, backend: str) -> None:
    run_on(StoreMachine, db_url, backend)
