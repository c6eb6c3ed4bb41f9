"""A real eventstore REST server on 127.0.0.1 in a background thread (uvicorn), for the remote half of
the suite: the client talks HTTP on loopback to `create_app(url)`, the same code `eventstore serve` runs."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from eventstore.server import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerThread:
    """`create_app(url)` served by uvicorn on a free loopback port until `stop()`."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(db_url), host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"eventstore-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server for {db_url} did not start")
            time.sleep(0.01)
        httpx.get(f"{self.url}/health", timeout=10).raise_for_status()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
