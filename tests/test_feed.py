"""The global feed under concurrent writers: a reader tailing `events(after=last)` while 8 writer processes
append never misses an event, never sees one twice and never sees them out of order. On all three
databases (eventstore.ordering: the ordering lock on SQLite and MariaDB, the sequence settled by the
reader on PostgreSQL)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, TimeoutError
from datetime import UTC, datetime
from multiprocessing.managers import SyncManager
from threading import Barrier

import pytest
import sqlalchemy as sa

from eventstore import Asset, Store, open_store, schema
from eventstore.database import Database
from eventstore.dialects import postgresql

WRITERS = 8
WRITES_PER_WRITER = 80
SHARED = Asset("shared")


def write_events(url: str, index: int, start: Barrier) -> int:
    """One writer: its own asset and a shared one, alternately, one event per transaction. Returns its pid.

    All writers wait for each other before writing, so 8 distinct processes write at the same time.
    """
    own = Asset(f"writer-{index}")
    with open_store(url) as store:
        store.activate(own)
        start.wait(timeout=120)
        for n in range(WRITES_PER_WRITER):
            store.asset(SHARED if n % 2 else own).set(f"k{n % 4}", [index, n])
    return os.getpid()


@pytest.fixture(scope="module")
def writer_processes() -> Iterator[tuple[ProcessPoolExecutor, SyncManager]]:
    """8 writer processes (spawned, each opening its own store), started once for every database."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(WRITERS, mp_context=context) as pool:
        yield pool, manager


def whole_feed(store: Store) -> list[int]:
    positions: list[int] = []
    while batch := store.events(after=positions[-1] if positions else 0, limit=500):
        positions += [event.position for event in batch]
    return positions


@pytest.mark.slow
def test_a_tailing_reader_sees_every_event_once_in_order(
    store: Store, db_url: str, writer_processes: tuple[ProcessPoolExecutor, SyncManager]
) -> None:
    pool, manager = writer_processes
    store.activate(SHARED)
    seen = [event.position for event in store.events()]
    start = manager.Barrier(WRITERS)
    writers: list[Future[int]] = [pool.submit(write_events, db_url, index, start) for index in range(WRITERS)]
    reads_while_writing = 0
    while not all(writer.done() for writer in writers):
        batch = store.events(after=seen[-1], limit=50)
        if batch:
            reads_while_writing += 1
            seen += [event.position for event in batch]
        else:
            time.sleep(0.001)
    pids = {writer.result() for writer in writers}  # re-raises a writer's error
    while batch := store.events(after=seen[-1], limit=50):
        seen += [event.position for event in batch]

    assert len(pids) == WRITERS
    full = whole_feed(store)
    assert len(full) == 1 + WRITERS + WRITERS * WRITES_PER_WRITER
    assert seen == full  # nothing missed, nothing twice, nothing out of order
    # The reader really tailed the writers, rather than reading the finished log once.
    assert reads_while_writing >= 10


def test_a_reader_never_passes_a_position_still_in_flight(
    store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction has taken position q and not committed; another commits q + 1 meanwhile (PostgreSQL)
    or waits for the ordering lock (SQLite, MariaDB). The feed must not return q + 1 before q."""
    monkeypatch.setattr(postgresql, "SETTLE_TIMEOUT", 0.5)
    slow, fast = Asset("slow"), Asset("fast")
    store.activate(slow)
    store.activate(fast)
    last = store.events()[-1].position
    reserved, release = threading.Event(), threading.Event()
    database = Database(db_url)

    def slow_write(conn: sa.Connection) -> int:
        """What the log does, paused between taking the position and inserting the event."""
        assets = schema.assets
        conn.execute(assets.update().where(assets.c.name == slow.name).values(version=assets.c.version + 1))
        asset_id, version = conn.execute(
            sa.select(assets.c.id, assets.c.version).where(assets.c.name == slow.name)
        ).one()
        [position] = database.ordering.reserve(conn, 1)
        reserved.set()
        assert release.wait(timeout=30)
        conn.execute(
            schema.events.insert().values(
                position=position,
                asset_id=asset_id,
                version=version,
                op="set",
                key="k",
                value="1",
                writer_kind="api",
                recorded_at=datetime.now(UTC),
            )
        )
        return int(position)

    with ThreadPoolExecutor(2) as threads:
        in_flight = threads.submit(database.run, slow_write, write=True)
        assert reserved.wait(timeout=30)
        later = threads.submit(store.asset(fast).set, "k", 2)
        with contextlib.suppress(TimeoutError):  # PostgreSQL commits it; the others wait at the ordering lock
            later.result(timeout=1)
        assert store.events(after=last) == []
        assert [e.position for e in store.events(after=last - 1)] in ([], [last])  # never q + 1
        release.set()
        q = in_flight.result(timeout=30)
        later.result(timeout=30)
    database.dispose()

    feed = store.events(after=last)
    assert [(e.position, e.asset) for e in feed] == [(q, slow), (q + 1, fast)]
