"""Private database instances that a run may stop and start at will, and disks that fill up or turn
read-only: the faults of `reliability.restarts`.

The machine's shared PostgreSQL and MariaDB (ports 5432 and 3306) serve other tests and CI, so they are
never restarted: each run creates its own instance with the machine's service tooling (PostgreSQL 15's
`pg_createcluster` / `pg_ctlcluster`, MariaDB's `mariadb-install-db` / `mariadbd`) on a free port, and
drops it at the end. The disks are a small tmpfs (full) and an ext4 loop device mounted with
`errors=remount-ro` (read-only), which need root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa


class InstanceError(RuntimeError):
    """A private instance or disk could not be created here (no tooling, no root): the caller skips or,
    under CI=true, fails."""


class Instance(Protocol):
    """A database server of our own: `url` is a database on it that eventstore may use."""

    url: str

    def stop(self) -> None: ...
    def start(self) -> None: ...
    def drop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(*command: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InstanceError(f"{command[0]}: {error}") from error
    if done.returncode != 0:
        raise InstanceError(f"{' '.join(command)} failed: {(done.stderr or done.stdout).strip()[-400:]}")


def _wait_for(url: str, seconds: float = 60) -> None:
    """Return once the server accepts a connection and answers a query."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + seconds
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                return
            except sa.exc.DBAPIError as error:
                if time.monotonic() > deadline:
                    raise InstanceError(f"{url} did not come up: {error.orig}") from error
                time.sleep(0.02)
    finally:
        engine.dispose()


def _create_database(server_url: str, admin_database: str, name: str) -> str:
    engine = sa.create_engine(f"{server_url}/{admin_database}", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"{server_url}/{name}"


class PostgresInstance:
    """A PostgreSQL 15 cluster of our own (`pg_createcluster 15 NAME -p PORT`, trust auth on loopback)."""

    def __init__(self, name: str) -> None:
        if shutil.which("pg_createcluster") is None:
            raise InstanceError("pg_createcluster is not installed (postgresql-common)")
        self.name, self.port = name, free_port()
        _run("pg_createcluster", "15", name, "-p", str(self.port), "--", "--auth=trust")
        try:
            self.start()
            self.url = _create_database(
                f"postgresql+psycopg://postgres@127.0.0.1:{self.port}", "postgres", "es"
            )
        except BaseException:
            self.drop()
            raise

    def stop(self) -> None:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", "15", self.name, "stop", "-m", "fast")

    def start(self) -> None:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", "15", self.name, "start")
        _wait_for(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres")

    def drop(self) -> None:
        with contextlib.suppress(InstanceError):
            _run("pg_dropcluster", "--stop", "15", self.name)


class MariaDBInstance:
    """A MariaDB server of our own: `mariadb-install-db` into a temporary directory, `mariadbd` on a free
    port, stopped with SIGTERM (a clean shutdown, as `mariadb-admin shutdown` does)."""

    def __init__(self, name: str) -> None:
        if shutil.which("mariadb-install-db") is None or shutil.which("mariadbd") is None:
            raise InstanceError("mariadb-install-db / mariadbd are not installed (mariadb-server)")
        self.directory = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        data = self.directory / "data"
        _run(
            "mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db",
        )  # fmt: skip
        self._command = [
            shutil.which("mariadbd") or "mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.directory / 'sock'}",
            f"--pid-file={self.directory / 'pid'}", "--innodb-buffer-pool-size=32M", "--skip-log-bin",
            "--skip-grant-tables", f"--log-error={self.directory / 'error.log'}",
        ]  # fmt: skip
        try:
            self.start()
            self.url = _create_database(f"mysql+pymysql://root@127.0.0.1:{self.port}", "", "es")
        except BaseException:
            self.drop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)
            self.process = None

    def start(self) -> None:
        self.process = subprocess.Popen(self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(f"mysql+pymysql://root@127.0.0.1:{self.port}/")

    def drop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


def create_instance(backend: str, name: str) -> Instance:
    """A private instance of `backend` ("postgres" or "mysql")."""
    if backend == "postgres":
        return PostgresInstance(name)
    if backend == "mysql":
        return MariaDBInstance(name)
    raise ValueError(f"no private instance for {backend!r}")


# --- disks ------------------------------------------------------------------------------------------


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise InstanceError(f"{what} needs root (mount)")


class SmallDisk:
    """A tmpfs of `megabytes` at a temporary directory. `fill()` takes every free byte with a file of
    its own (the disk is then full: SQLITE_FULL from the file system, not a page limit); `free()`
    removes it."""

    def __init__(self, megabytes: int) -> None:
        _require_root("a small tmpfs")
        self.path = Path(tempfile.mkdtemp(prefix="es-full-"))
        _run("mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(self.path))
        self._filler = self.path / "filler"

    def fill(self) -> None:
        descriptor = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 4096, 1):  # unbuffered: every byte the disk takes
                with contextlib.suppress(OSError):
                    while True:
                        os.write(descriptor, b"\0" * size)
        finally:
            os.close(descriptor)

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def drop(self) -> None:
        with contextlib.suppress(InstanceError):
            _run("umount", "-l", str(self.path))
        shutil.rmtree(self.path, ignore_errors=True)


class FailingDisk:
    """An ext4 file system on a loop device, mounted with `errors=remount-ro`. `fail()` makes the kernel
    record a file-system error (sysfs `trigger_fs_error`), and the kernel turns the mount read-only at
    once, under the running store, as it does on a real disk error. Linux refuses to make it writable
    again while it is mounted (and refuses any read-only remount while files are open for writing), so
    `repair()` unmounts it, runs fsck and mounts it again: a store must be reopened after it."""

    def __init__(self, megabytes: int) -> None:
        _require_root("a loop-mounted ext4")
        self.directory = Path(tempfile.mkdtemp(prefix="es-ro-"))
        self.image = self.directory / "disk.img"
        self.path = self.directory / "mnt"
        self.path.mkdir()
        with open(self.image, "wb") as image:
            image.truncate(megabytes * 1024 * 1024)
        _run("mkfs.ext4", "-q", str(self.image))
        self._mount()

    def _mount(self) -> None:
        _run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.path))
        found = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(self.path)], capture_output=True, text=True, check=False
        )
        self.device = Path(found.stdout.strip()).name

    def fail(self) -> None:
        Path(f"/sys/fs/ext4/{self.device}/trigger_fs_error").write_text("reliability.restarts\n")

    def repair(self) -> None:
        _run("umount", str(self.path))
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, check=False)
        self._mount()

    def drop(self) -> None:
        with contextlib.suppress(InstanceError):
            _run("umount", "-l", str(self.path))
        shutil.rmtree(self.directory, ignore_errors=True)
