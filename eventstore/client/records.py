"""What the client sends besides the records (whose JSON is `eventstore.wire`): keys as path segments,
the writer header, values as text."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from eventstore.writers import Writer, WriterKind


def key_path(key: str) -> str:
    """A key as one path segment: everything escaped, dots too, so that `.`, `..` and `/` in a key are
    never read as path structure by anything between here and the route (`{key:path}` decodes them)."""
    return quote(key, safe="").replace(".", "%2E")


def writer_headers(writer: Writer) -> dict[str, str]:
    """The `Eventstore-Writer` header for a task or watcher writer; none for the others, which the
    server records as `Writer.api(user=<token name>)`. The server always sets `user` itself."""
    if writer.kind is WriterKind.TASK:
        fields: dict[str, Any] = {
            "kind": "task",
            "dag_id": writer.dag_id,
            "run_id": writer.run_id,
            "task_id": writer.task_id,
            "map_index": writer.map_index,
            "try_number": writer.try_number,
        }
    elif writer.kind is WriterKind.WATCHER:
        fields = {"kind": "watcher"}
    else:
        return {}
    return {"Eventstore-Writer": json.dumps(fields, ensure_ascii=True, separators=(",", ":"))}


def text_of(value: Any) -> str:
    """A decoded JSON value back to JSON text, as the `StateStore` interface carries values."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
