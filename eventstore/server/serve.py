"""`serve(url, host, port)`: run the server with uvicorn until SIGINT or SIGTERM.

uvicorn's graceful shutdown stops accepting connections, lets the requests in flight finish, then runs
the app's lifespan end, which closes the store. While no token has ever been created the server
accepts anonymous requests, so it refuses to listen anywhere but on a loopback address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
from collections.abc import Iterator

from eventstore.errors import StateStoreError
from eventstore.store import open_store
from eventstore.tokens import any_token_ever


class NotLoopbackError(StateStoreError):
    """`serve` was asked to listen on a public address while the server has no tokens."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGTERM/SIGINT end it with status 0 after the graceful shutdown
        (uvicorn re-raises the signal once it has shut down, which would skip closing the store and
        make a clean stop look like a crash to a process supervisor)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


def serve(url: str | None, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the store at `url` (default $EVENTSTORE_URL, else ./eventstore.db) on host:port."""
    import uvicorn

    from eventstore.server.app import create_app

    store = open_store(url)
    try:
        if not is_loopback(host) and not any_token_ever(store):
            raise NotLoopbackError(
                f"Refusing to listen on {host}: no token exists yet, so anyone could read and write. "
                "Create one first (`eventstore token create NAME --scope admin`), or listen on 127.0.0.1."
            )
    except BaseException:
        store.close()
        raise
    app = create_app(store)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="on")
    server = _server_class()(config)
    try:
        server.run()
    finally:
        store.close()
        logging.getLogger("eventstore.server").info("eventstore server: store %s closed", store.url)
