"""The records' JSON (eventstore/wire.py): what the shell, the server and the client exchange comes back
as the same record, and times keep their microseconds and their instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from eventstore import wire
from eventstore.assets import Asset, AssetInfo
from eventstore.events import Change, Event, Op
from eventstore.writers import Writer

WRITERS = [
    Writer.task("dag", "run", "task", map_index=2, try_number=3, user="token"),
    Writer.watcher(),
    Writer.api(user="alice"),
    Writer.cli(user="bob"),
    Writer.scheduler(),
]
AT = datetime(2024, 6, 1, 8, 15, 0, 123456, tzinfo=UTC)


def test_records_come_back_equal() -> None:
    for writer in WRITERS:
        assert wire.writer_from(wire.writer_json(writer)) == writer
        change = Change(7, 3, AT, Op.SET, "watermark", "2024-06-01", None, writer)
        assert wire.change_from(wire.change_json(change)) == change
        event = Event(7, 3, AT, Op.CLEAR, None, None, writer, Asset("orders", "s3://o/"))
        assert wire.event_from(wire.event_json(event)) == event
    info = AssetInfo(4, "orders", "s3://o/", False, 12)
    assert wire.asset_info_from(wire.asset_info_json(info)) == info


def test_times_are_utc_with_microseconds_and_z() -> None:
    assert wire.time_text(AT) == "2024-06-01T08:15:00.123456Z"
    assert wire.time_text(AT.replace(microsecond=0)) == "2024-06-01T08:15:00.000000Z"
    elsewhere = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert wire.time_text(elsewhere) == wire.time_text(AT)
    assert wire.time_from(wire.time_text(elsewhere)) == AT
    assert wire.time_from("2024-06-01T08:15:00") == AT.replace(microsecond=0)  # no zone: UTC
