"""PostgreSQL backend: appends take a transaction-scoped advisory lock, so
positions commit in order and readers tailing the log never skip one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from registry.store.base import LEASE_JOBS, Store
from registry.store.lease import AdvisoryLease, Lease

APPEND_LOCK = 0x6D6C6C64  # "mlld"
#: The session-level advisory lock of each lease (never APPEND_LOCK's key).
LEASE_LOCKS = {"checkpoints": 0x6D6C6C63}  # "mllc"
#: The log size from which a growing log has its statistics refreshed (``grown``).
ANALYZE_FROM = 4096

log = logging.getLogger("mlledger.store")


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str):
        super().__init__(url, create_engine(url, pool_pre_ping=True))
        #: The log size when this process last refreshed the statistics (or first saw it).
        self._analysed: int | None = None
        self._analysing = threading.Lock()

    def _lock(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK})

    def grown(self, size: int) -> None:
        """Refresh the planner's statistics in the background each time the log has
        doubled since this process last did (from ``ANALYZE_FROM`` events on).

        A log filled faster than autovacuum analyses it (a bulk load, a new server
        at full rate) is planned from the statistics of a near-empty database: a
        lookup of a batch's ids by their unique index became a scan of every event
        of the project, an append slowing as the log grew. Doubling bounds the work
        to a logarithm of the log's size; the statistics of a log that opens large
        are autovacuum's."""
        if self._analysed is None:
            self._analysed = size
            return
        if size < max(ANALYZE_FROM, 2 * self._analysed):
            return
        if not self._analysing.acquire(blocking=False):
            return  # one refresh at a time; the next append past this size asks again
        self._analysed = size
        threading.Thread(target=self._analyse, name="mlledger-analyse", daemon=True).start()

    def _analyse(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        except SQLAlchemyError as exc:  # said, not raised: autovacuum still analyses
            log.warning("the planner's statistics could not be refreshed: %s", exc)
        finally:
            self._analysing.release()

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
