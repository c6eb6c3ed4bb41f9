"""A real eventstore REST server on 127.0.0.1 in a background thread (uvicorn), for the remote half of
the suite: the client talks HTTP on loopback to `create_app(url)`, the same code `eventstore serve` runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping

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


class ServeProcess:
    """`eventstore --url URL serve --port P` in a child process, the shell command itself; stopped with
    SIGTERM."""

    def __init__(self, db_url: str, env: Mapping[str, str] | None = None) -> None:
        """`env`: variables to set in the server's environment on top of this process's own."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Its output (an access-log line per request) goes to a file: a pipe nobody reads would fill up
        # and stop the server.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop())
        command = [sys.executable, "-m", "eventstore", "--url", db_url, "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"eventstore serve did not start: {output}")
            time.sleep(0.05)

    def output(self, last: int | None = 5000) -> str:
        """What the server printed: its last `last` characters, or all of it (None)."""
        self.log.seek(0)
        text = self.log.read()
        return text if last is None else text[-last:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
