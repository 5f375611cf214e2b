"""PostgreSQL backend: appends take a transaction-scoped advisory lock, so
positions commit in order and readers tailing the log never skip one."""

from __future__ import annotations

from sqlalchemy import Connection, create_engine, text

from registry.store.base import Store

APPEND_LOCK = 0x6D6C6C64  # "mlld"


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str):
        super().__init__(url, create_engine(url, pool_pre_ping=True))

    def _lock(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": APPEND_LOCK})
