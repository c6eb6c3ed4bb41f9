"""Global positions (eventstore/ordering.py): each database's ordering hands out increasing, gap-free
positions to concurrent writers, and `last_assigned` is the last one; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest

from eventstore import Asset, Store
from eventstore.database import Database
from eventstore.ordering import HeadRowOrdering, ordering_for

WRITERS = 4
RESERVATIONS = 25


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    opened = Database(db_url)
    yield opened
    opened.dispose()


def test_each_database_has_its_ordering(database: Database, backend: str) -> None:
    ordering = ordering_for(database.dialect)
    assert isinstance(ordering, HeadRowOrdering) == (backend != "postgres")
    assert database.backend.ordering == ("sequence" if backend == "postgres" else "head_row")


def test_concurrent_writers_get_increasing_gap_free_positions(database: Database) -> None:
    assert database.run(database.ordering.last_assigned) == 0

    def reserve_many(writer: int) -> list[list[int]]:
        n = writer + 1  # writers take 1, 2, 3 or 4 positions at a time
        return [
            database.run(lambda conn: database.ordering.reserve(conn, n), write=True)
            for _ in range(RESERVATIONS)
        ]

    with ThreadPoolExecutor(WRITERS) as threads:
        reservations = [batch for batches in threads.map(reserve_many, range(WRITERS)) for batch in batches]
    for batch in reservations:
        assert all(earlier < later for earlier, later in pairwise(batch))  # increasing
        if isinstance(database.ordering, HeadRowOrdering):  # the head row advances by the whole batch
            assert batch == list(range(batch[0], batch[0] + len(batch)))
    for writer in range(WRITERS):  # each writer's later reservations come after its earlier ones
        own = reservations[writer * RESERVATIONS : (writer + 1) * RESERVATIONS]
        assert all(earlier[-1] < later[0] for earlier, later in pairwise(own))
    handed_out = sorted(position for batch in reservations for position in batch)
    total = RESERVATIONS * sum(range(1, WRITERS + 1))
    assert handed_out == list(range(1, total + 1))  # none twice, none skipped
    assert database.run(database.ordering.last_assigned) == total


def test_last_assigned_is_the_position_of_the_last_event(store: Store, database: Database) -> None:
    asset = Asset("orders")
    store.activate(asset)
    store.asset(asset).set_many({"a": 1, "b": 2})
    store.asset(asset).set("a", 3)
    assert database.run(database.ordering.last_assigned) == store.events()[-1].position == 4
