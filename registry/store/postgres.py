"""PostgreSQL backend: appends take a transaction-scoped advisory lock, so
positions commit in order and readers tailing the log never skip one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, text

from registry.store.base import LEASE_JOBS, Store
from registry.store.lease import AdvisoryLease, Lease

APPEND_LOCK = 0x6D6C6C64  # "mlld"
#: The session-level advisory lock of each lease (never APPEND_LOCK's key).
LEASE_LOCKS = {"checkpoints": 0x6D6C6C63}  # "mllc"


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str):
        super().__init__(url, create_engine(url, pool_pre_ping=True))

    def _lock(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK})

    def lease(self, job: str) -> Lease:
        if job not in LEASE_JOBS:
            raise ValueError(f"unknown lease {job!r}: expected one of {', '.join(LEASE_JOBS)}")
        return AdvisoryLease(self.url, LEASE_LOCKS[job], job)

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        # READ COMMITTED takes a new snapshot per statement; REPEATABLE READ keeps the
        # first one (a read-only transaction there is never refused for serialisation).
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn
