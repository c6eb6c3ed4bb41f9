"""Replay invariants under random operation sequences, on every database (hypothesis stateful).

The core machine (tests.test_invariants.StoreMachine) drives a store and a plain-dict model. Here, after
every step the events that step wrote are read from the global feed and the state after each of them is
recorded; the state after the step's last event of an asset must be the model's. At the end:
- `state_as_of(position=p)` is the recorded state for every asset and every position p (0, each event's
  position, one past the last), and `state_as_of(at=t)` likewise for each event's recorded_at;
- replaying each asset's `history` reproduces its rows in the current view;
- `verify_projections` finds nothing, and `rebuild_projections` leaves the view as it was.
Snapshots are taken every 3 versions, so as-of goes through them on most streams.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis.stateful import invariant

from eventstore import Asset, AssetNotFoundError, Change, Event, Op, codec
from projections import snapshots
from tests.test_invariants import ASSETS, StoreMachine, run_on

EXAMPLES = {"sqlite": 25, "postgres": 12, "mysql": 12}


def strict(value: Any) -> Any:
    """`value` with every scalar tagged by its type, so True != 1 and 1 != 1.0 when compared."""
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict(item) for item in value]
    return (type(value).__name__, repr(value) if isinstance(value, float) else value)


def apply(state: dict[str, Any], event: Event | Change) -> None:
    """The fold over decoded values, written independently of eventstore.events.fold (which folds texts)."""
    if event.op is Op.SET:
        assert event.key is not None
        state[event.key] = event.value
    elif event.op is Op.DELETE:
        del state[event.key]  # type: ignore[arg-type]
    elif event.op is Op.CLEAR:
        state.clear()


class ReplayMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        # Per asset: (position, recorded_at, state right after that event), in position order.
        self.timeline: dict[Asset, list[tuple[int, datetime, dict[str, Any]]]] = {a: [] for a in ASSETS}

    def feed(self, after: int) -> list[Event]:
        events: list[Event] = []
        while batch := self.store.events(after=after, limit=100):
            events += batch
            after = batch[-1].position
        return events

    @invariant()
    def record_the_states_each_step_wrote(self) -> None:
        new = self.feed(self.seen)
        touched: set[Asset] = set()
        for event in new:
            timeline = self.timeline[event.asset]
            state = dict(timeline[-1][2]) if timeline else {}
            apply(state, event)
            timeline.append((event.position, event.recorded_at, state))
            touched.add(event.asset)
        for asset in touched:
            assert strict(self.timeline[asset][-1][2]) == strict(self.model[asset]), asset
        if new:
            self.seen = new[-1].position

    def teardown(self) -> None:
        try:
            self.check_as_of_every_position_and_time()
            self.check_history_replays_to_the_view()
            self.check_verify_and_rebuild()
        finally:
            super().teardown()

    def check_as_of_every_position_and_time(self) -> None:
        positions = [0, *(event.position for event in self.feed(0)), self.seen + 1]
        for asset in ASSETS:
            timeline = self.timeline[asset]
            if not timeline:
                with pytest.raises(AssetNotFoundError):
                    self.store.state_as_of(asset, position=0)
                continue
            for position in positions:
                before = [state for at_position, _, state in timeline if at_position <= position]
                expected = before[-1] if before else {}
                actual = self.store.state_as_of(asset, position=position)
                assert strict(actual) == strict(expected), (asset, position)
            for _, recorded_at, _ in timeline:
                before = [state for _, at, state in timeline if at <= recorded_at]
                actual = self.store.state_as_of(asset, at=recorded_at)
                assert strict(actual) == strict(before[-1]), (asset, recorded_at)

    def check_history_replays_to_the_view(self) -> None:
        view = self.inspector.view()
        ids = self.inspector.asset_ids()
        for asset in ASSETS:
            if not self.timeline[asset]:
                continue
            replayed: dict[str, Any] = {}
            for change in self.store.history(asset):
                apply(replayed, change)
            rows = view.get(ids[(asset.name, asset.uri)], {})
            assert strict(replayed) == strict({key: codec.decode(text) for key, text in rows.items()}), asset

    def check_verify_and_rebuild(self) -> None:
        assert self.store.verify_projections() == []
        view = self.inspector.view()
        report = self.store.rebuild_projections()
        assert report.events == len(self.feed(0))
        assert self.inspector.view() == view
        assert self.store.verify_projections() == []


def test_replay_invariants(db_url: str, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_INTERVAL", 3)
    run_on(ReplayMachine, db_url, backend, EXAMPLES)
