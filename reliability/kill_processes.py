"""The processes the kill -9 run kills: writers (reliability.kill_worker) and `eventstore serve`.

Each is a real child process started with `subprocess.Popen` (a fresh interpreter, as the spawn start
method gives), so SIGKILL hits it exactly as it would hit a worker in production; its stderr goes to a
file of the run's directory, so a writer that dies by itself is reported with its traceback.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from reliability.kill_journal import in_flight, is_ready

READY_TIMEOUT = 120.0
"""Seconds a new process may take to start (2 cores shared by several test runs can be slow)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


class Writers:
    """`count` writer processes in slots; a killed slot is restarted as a new generation (a new name,
    journal and seed), so every operation id of the run is unique."""

    def __init__(
        self, mode: str, url: str, directory: Path, prefix: str, count: int, seed: int, think: float
    ) -> None:
        self.mode, self.url, self.directory, self.prefix, self.seed = mode, url, directory, prefix, seed
        self.think = think
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self.journals: list[Path] = [directory / "none"] * count
        self.generation = 0
        self.crashes: list[str] = []

    def start(self, slot: int) -> None:
        self.generation += 1
        name = f"{self.prefix}{slot}g{self.generation}"
        self.journals[slot] = self.directory / f"{name}.journal"
        stderr = (self.directory / f"{name}.stderr").open("wb")
        command = [sys.executable, "-m", "reliability.kill_worker", self.mode, self.url]
        command += [
            str(self.journals[slot]),
            name,
            str(self.seed * 100_003 + self.generation),
            str(self.think),
        ]
        self.processes[slot] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()

    def start_all(self) -> None:
        for slot in range(len(self.processes)):
            self.start(slot)

    def wait_ready(self, slot: int) -> None:
        """Until the writer has opened its store (then a kill lands among its operations, not its imports)."""
        process, deadline = self.processes[slot], time.monotonic() + READY_TIMEOUT
        assert process is not None
        while not is_ready(self.journals[slot]):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"writer {self.journals[slot].stem} did not start: {self._stderr(slot)}")
            time.sleep(0.01)

    def any_ready(self, rng: random.Random) -> int:
        """A random slot whose writer is running its operations, waiting for one if none is yet."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            ready = [slot for slot in range(len(self.processes)) if is_ready(self.journals[slot])]
            if ready:
                return rng.choice(ready)
            for slot, process in enumerate(self.processes):
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"writer {self.journals[slot].stem} ended: {self._stderr(slot)}")
            if time.monotonic() > deadline:
                raise RuntimeError("no writer became ready")
            time.sleep(0.01)

    def kill(self, slot: int) -> bool:
        """SIGKILL the slot's writer; if it had already ended by itself, record that as a crash. Returns
        whether the kill landed inside a call (its journal's last line says "begun")."""
        process = self.processes[slot]
        if process is None:
            return False
        if process.poll() is not None:
            self.crashes.append(
                f"{self.journals[slot].stem} exited {process.returncode}: {self._stderr(slot)}"
            )
        else:
            _kill(process)
        self.processes[slot] = None
        return in_flight(self.journals[slot])

    def in_flight(self) -> int:
        """How many writers are inside a call right now."""
        return sum(
            in_flight(path) for path, process in zip(self.journals, self.processes, strict=True) if process
        )

    def kill_all(self) -> None:
        for slot in range(len(self.processes)):
            self.kill(slot)

    def _stderr(self, slot: int) -> str:
        path = self.journals[slot].with_suffix(".stderr")
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class Server:
    """`eventstore --url URL serve --port PORT`, the command users run, always on the same port."""

    def __init__(self, url: str, directory: Path) -> None:
        self.db_url, self.directory = url, directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> float:
        """Start it and wait until /health answers 200; returns the seconds that took."""
        self.starts += 1
        log = (self.directory / f"server{self.starts}.log").open("wb")
        command = [
            sys.executable,
            "-m",
            "eventstore",
            "--url",
            self.db_url,
            "serve",
            "--port",
            str(self.port),
        ]
        began = time.monotonic()
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        log.close()
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return time.monotonic() - began
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() - began > READY_TIMEOUT:
                output = (self.directory / f"server{self.starts}.log").read_text(errors="replace")[-3000:]
                self.kill()
                raise RuntimeError(f"eventstore serve did not start on port {self.port}: {output}")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None:
            _kill(self.process)
            self.process = None
