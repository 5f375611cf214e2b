"""Leases: which one of the processes sharing a database does a job that only one
should do at a time (signing checkpoints), handed over when that process dies.

- ``AdvisoryLease`` (PostgreSQL, processes on any host): a session-level advisory
  lock held on a connection of its own. PostgreSQL releases it when that
  connection closes, as it does when the holder exits or is killed.
- ``FileLease`` (SQLite, processes on one host): ``flock`` on a file beside the
  database; the kernel releases it when the holder exits or is killed.
- ``SoleLease``: a database no other process can open (SQLite in memory).

A lease is polled: ``acquire`` takes it when free and says whether this process
holds it; one that lost its connection finds out on its next call.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool


def holder_label() -> str:
    """Who this process is, as a lease's holder: ``pid <pid> on <host>`` (the pid
    first: PostgreSQL cuts an application name at 63 bytes)."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


class Lease:
    """One job's lease on one database."""

    def acquire(self) -> bool:
        """Keep the lease, or take it when it is free; whether this process holds it."""
        raise NotImplementedError

    def holder(self) -> str | None:
        """Who holds the lease (``holder_label`` of that process), when that can be
        told; None when nobody does or it cannot be seen."""
        raise NotImplementedError

    def release(self) -> None:
        """Give the lease up (nothing when not held)."""
        raise NotImplementedError


class SoleLease(Lease):
    """The lease on a database only this process can open: always held."""

    def acquire(self) -> bool:
        return True

    def holder(self) -> str | None:
        return holder_label()

    def release(self) -> None:
        return None


class AdvisoryLease(Lease):
    """``pg_try_advisory_lock(key)`` on a connection of the lease's own (not pooled:
    closing it must end the session, and with it the lock)."""

    def __init__(self, url: str, key: int, job: str):
        self.key = key
        self.label = f"mlledger {job} {holder_label()}"
        self._engine: Engine = create_engine(url, poolclass=NullPool)
        self._conn: Connection | None = None
        self._held = False

    def acquire(self) -> bool:
        try:
            conn = self._connection()
            if self._held:
                conn.execute(text("SELECT 1"))  # the session, and so the lock, is still there
                return True
            self._held = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            )
        except DBAPIError:
            # The connection broke: the lock went with its session; try afresh next time.
            self._close()
            return False
        return self._held

    def holder(self) -> str | None:
        try:
            row = (
                self._connection()
                .execute(
                    text(
                        "SELECT a.application_name FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                        "AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
                        # Advisory locks are per database: another's holder is not ours.
                        "AND l.database = (SELECT oid FROM pg_database "
                        "WHERE datname = current_database())"
                    ),
                    {"hi": self.key >> 32, "lo": self.key & 0xFFFFFFFF},
                )
                .first()
            )
        except DBAPIError:
            self._close()
            return None
        return None if row is None or not row[0] else str(row[0])

    def release(self) -> None:
        if self._held and self._conn is not None:
            # Said, not left to the session's end: a closed connection's backend may
            # still hold the lock for a moment after the close returns.
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            except DBAPIError:
                # The session is gone, and the lock with it.
                self._conn.invalidate()
                self._conn = None
        self._close()
        self._engine.dispose()

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                # Shown in pg_stat_activity: how the other processes name the holder.
                conn.execute(
                    text("SELECT set_config('application_name', :name, false)"),
                    {"name": self.label[:63]},
                )
            except DBAPIError:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        self._held = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except DBAPIError:
                conn.invalidate()


class FileLease(Lease):
    """``flock(LOCK_EX | LOCK_NB)`` on ``path`` (made 0600), which names the holder."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_label().encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str | None:
        if self._fd is not None:
            return holder_label()
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                # A shared lock granted: nobody holds the exclusive one, whatever the
                # file still names (a holder killed leaves its name behind).
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                named = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                return named or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)
