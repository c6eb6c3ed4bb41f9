"""The HTTP client (CONTRACT §10): the Store API for workers that hold a token, not database credentials.

    from eventstore.client import connect

    with connect("http://eventstore:8080", token=os.environ["EVENTSTORE_TOKEN"]) as store:
        store.asset(orders, writer=Writer.task("d", "r", "t")).update("runs", lambda n: n + 1, default=0)

`connect` returns a `RemoteStore`: the accessor, the task context, `run_task`, history, as-of, the feed,
restore, assets, activation, with the local store's types and errors. See docs/client.md.
"""

from __future__ import annotations

from eventstore.client.store import RemoteStore, connect
from eventstore.client.transport import AuthError, ClientStats

__all__ = ["AuthError", "ClientStats", "RemoteStore", "connect"]
