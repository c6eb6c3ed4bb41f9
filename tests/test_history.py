"""Reading an asset's changes back (projections/history.py): `history` windows, paging and newest-first
order, `count_history` agreeing with it, and ranges a compaction removed; on SQLite, PostgreSQL and
MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from eventstore import Asset, CompactedError, Op, Store
from tests.test_replay import _compact_by_hand

ORDERS = Asset("orders", "s3://data/orders/")


def test_history_paging_and_count(store: Store) -> None:
    """state-history pages in the database and counts in SQL: the page and `total_entries` agree with
    the whole history, with and without a key, across clears that did and did not remove the key."""
    asset = Asset("a")
    store.activate(asset)
    state = store.asset(asset)
    for i in range(7):
        state.set("k", i)
        state.set("j", i)
        if i % 3 == 2:
            state.clear()
        if i == 4:
            state.delete("k")
            state.clear()  # "k" is absent: this clear does not count for "k"
    middle = store.history(asset)[10].recorded_at
    for key in (None, "k", "j"):
        for since, until in ((None, None), (middle, None), (None, middle)):
            everything = store.history(asset, key, since=since, until=until)
            assert store.count_history(asset, key, since=since, until=until) == len(everything)
            for newest_first in (False, True):
                ordered = everything[::-1] if newest_first else everything
                for offset, limit in ((0, 3), (2, 4), (5, 100), (len(everything), 1), (10**18, 5)):
                    page = store.history(
                        asset,
                        key,
                        since=since,
                        until=until,
                        limit=limit,
                        offset=offset,
                        newest_first=newest_first,
                    )
                    assert page == ordered[offset : offset + limit], (key, since, until, offset, limit)


# --- with the local store and the HTTP client -----------------------------------------------------


@pytest.mark.both_stores
def test_history_windows_are_exactly_a_filter_of_the_whole_history(store: Store) -> None:
    """history() reads by index and stops early; it must return exactly what filtering all changes gives."""
    store.activate(ORDERS)
    orders = store.asset(ORDERS)
    for n in range(6):
        orders.set_many({"watermark": n, f"k{n % 2}": n})  # one transaction: events share recorded_at
        if n == 2:
            orders.delete("k0")
        if n == 3:
            orders.clear()
        if n == 4:
            store.deactivate(ORDERS)
            store.activate(ORDERS)
            orders.set("k9", 9)
            orders.clear()
    everything = store.history(ORDERS)
    times = sorted({c.recorded_at for c in everything})
    bounds = [None, times[0], times[len(times) // 2], times[-1], times[-1] + timedelta(microseconds=1)]

    def removed(change: Any, key: str) -> bool:
        return change.op is Op.CLEAR and key in change.previous

    for key in (None, "watermark", "k0", "k9", "absent"):
        for since in bounds:
            for until in bounds:
                expected = [
                    c
                    for c in everything
                    if (key is None or (c.key == key and c.op in (Op.SET, Op.DELETE)) or removed(c, key))
                    and (since is None or c.recorded_at >= since)
                    and (until is None or c.recorded_at < until)
                ]
                for limit in (None, 0, 1, 3):
                    for newest_first in (False, True):
                        ordered = expected[::-1] if newest_first else expected
                        got = store.history(
                            ORDERS, key, since=since, until=until, limit=limit, newest_first=newest_first
                        )
                        assert got == ordered[:limit], (key, since, until, limit, newest_first)


@pytest.mark.both_stores
def test_history_since_a_point_at_or_before_a_compaction_raises_with_its_date(
    store: Store, db_url: str
) -> None:
    store.activate(ORDERS)
    store.asset(ORDERS).set("watermark", "old")
    first = store.history(ORDERS)[0].recorded_at
    store.deactivate(ORDERS)
    compacted_at = datetime.now(UTC)
    _compact_by_hand(db_url, ORDERS, compacted_at)
    store.activate(ORDERS)
    store.asset(ORDERS).set("watermark", "new")

    for since in (first, compacted_at):
        with pytest.raises(CompactedError, match=compacted_at.strftime("%Y-%m-%d")):
            store.history(ORDERS, since=since)
        with pytest.raises(CompactedError):
            store.history(ORDERS, "watermark", since=since)
    # Without `since`, or after the compaction: the surviving events.
    assert [c.value for c in store.history(ORDERS, "watermark")] == ["new"]
    after = compacted_at + timedelta(microseconds=1)
    assert [c.value for c in store.history(ORDERS, "watermark", since=after)] == ["new"]
