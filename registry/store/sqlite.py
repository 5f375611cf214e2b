"""SQLite backend: one file, WAL, ``synchronous=FULL``; appends take ``BEGIN IMMEDIATE``.

A database file mlledger creates is private to its owner (mode 0600, in a directory
of mode 0700 when it makes that too); SQLite gives the ``-wal`` and ``-shm`` files
the database file's mode.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import OperationalError

from registry.settings import make_private_dirs
from registry.store.base import LEASE_JOBS, Store
from registry.store.lease import FileLease, Lease, SoleLease

BUSY_TIMEOUT_MS = 60_000
CACHE_KIB = 131_072
POOL_SIZE = 16


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, url: str):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            create_private_file(Path(path))
        # A server's worker threads each hold a connection while they work: keep enough
        # of them open that none is opened (and set up) per request.
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            durable(dbapi_conn)
            cur = dbapi_conn.cursor()
            # Deleted content is overwritten with zeros, not left in free space: an
            # erasure's deletions must leave no bytes behind (``audit.erasure.purge``).
            cur.execute("PRAGMA secure_delete=ON")
            # Indexes keyed by pseudonym take random inserts: keep their pages in memory.
            cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        super().__init__(url, engine)
        self.path = path
        # Its threads, and the processes writing the same file, queue to write.
        self._queue = WriterQueue(path)

    @contextmanager
    def append_transaction(self) -> Iterator[Connection]:
        """``BEGIN IMMEDIATE``: SQLite's one write lock, taken before any read.

        Writers queue first (``WriterQueue``): waiting on SQLite's busy handler instead
        means sleeping in growing steps (up to 100 ms) while the lock is long free.
        """
        with self._queue.held(), self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        self._queue.close()

    def _lock(self, conn: Connection) -> None:
        # BEGIN IMMEDIATE already holds SQLite's single write lock.
        return None

    def lease(self, job: str) -> Lease:
        """``flock`` on ``<database>-<job>.lease``: the processes sharing a SQLite file
        share its host."""
        if job not in LEASE_JOBS:
            raise ValueError(f"unknown lease {job!r}: expected one of {', '.join(LEASE_JOBS)}")
        if not self.path or self.path == ":memory:":
            return SoleLease()
        return FileLease(Path(f"{self.path}-{job}.lease"))


class WriterQueue:
    """One writer at a time for the SQLite file at ``path``: the threads of a process
    queue on a lock of their own, then the processes on ``flock`` of
    ``<path>-writer.lock`` (made 0600), asked again every fraction of a millisecond
    while another process holds it. A writer holding it past the busy timeout (a
    process stuck mid-write) makes the next fail with "database is locked", as SQLite's
    own lock would. In-memory databases (no path) have no other process to wait for."""

    def __init__(self, path: str | Path):
        path = str(path)
        self._file = None if not path or path == ":memory:" else Path(f"{path}-writer.lock")
        self._fd: int | None = None
        self._threads = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads, self._between_processes():
            yield

    @contextmanager
    def _between_processes(self) -> Iterator[None]:
        if self._file is None:
            yield
            return
        if self._fd is None:
            self._fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
            # Closed with the queue when it is collected, if nobody closed it before.
            self._closer = weakref.finalize(self, os.close, self._fd)
        fd, deadline, pause = self._fd, time.monotonic() + BUSY_TIMEOUT_MS / 1000, 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    # As SQLAlchemy reports SQLite's own: callers handle it as the store's.
                    raise OperationalError(
                        "BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked")
                    ) from None
                # Short steps (at most 1 ms): the lock is taken soon after it is free.
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file, once no thread of this process holds it (a writer in
        its transaction finishes first: its release must not fail after its commit)."""
        with self._threads:
            if self._fd is not None:
                self._closer()
                self._fd = None


def durable(dbapi_conn: Any) -> None:
    """Set up a new sqlite3 connection: WAL, ``synchronous=FULL``, the busy timeout, and
    no transaction opened by the driver itself (BEGIN is emitted by us)."""
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 (its missing directories 0700) unless it
    exists; return whether it was created. An existing file keeps its mode.

    SQLite takes an empty file for a new database, and creates the WAL and shared
    memory files with the database file's mode: creating the file first makes all
    three private without touching the process umask, which other threads share.
    """
    make_private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True
