"""`compact(progress=...)`: the running count of events deleted, reported after every batch."""

from __future__ import annotations

from datetime import timedelta

from eventstore import Asset, Store
from tests.test_compaction import fill, fill_many


def test_progress_counts_the_events_deleted_batch_by_batch_up_to_the_report(store: Store) -> None:
    small = fill_many(store, 6, "small")
    large = fill(store, Asset("large"), width=4, rounds=10)  # 42 events: deleted in several batches
    total = sum(f.version for f in small) + large.version

    preview_counts: list[int] = []
    preview = store.compact(grace=timedelta(0), batch_size=10, dry_run=True, progress=preview_counts.append)
    assert preview_counts and preview_counts[-1] == preview.events_deleted == total

    counts: list[int] = []
    report = store.compact(grace=timedelta(0), batch_size=10, progress=counts.append)
    assert report.events_deleted == total
    assert counts[-1] == total
    assert counts == sorted(counts)  # a running count
    steps = [later - earlier for earlier, later in zip([0, *counts], counts, strict=False)]
    assert max(steps) <= 10  # never more than a batch between two calls
    assert len(counts) >= total // 10

    again: list[int] = []
    assert store.compact(grace=timedelta(0), progress=again.append).events_deleted == 0
    assert all(count == 0 for count in again)
