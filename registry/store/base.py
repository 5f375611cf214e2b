"""The store: one database holding the log, the vault and the projections.

A small ladder, one role per class:
- ``Store`` opens the database, migrates it, and gives read transactions and
  *append transactions*: transactions that hold the append lock, so positions
  are assigned gap-free and commit in order (a reader tailing the log by
  position never skips one);
- ``SQLiteStore`` and ``PostgresStore`` say how each backend takes that lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, select, text

from registry.canonical import loads
from registry.events import StoredEvent
from registry.store.lease import Lease
from registry.store.raw import Raw
from registry.store.schema import T

SCHEMA_HEAD = "0010"
#: The jobs one process at a time does for all that share a database.
LEASE_JOBS = ("checkpoints",)
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


class Store:
    """Common behaviour of every backend."""

    dialect: str = ""

    def __init__(self, url: str, engine: Engine):
        self.url = url
        self.engine = engine

    # --- lifecycle ------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (cheap when it is there)."""
        with self.engine.connect() as conn:
            current = None
            if inspect(conn).has_table("alembic_version"):
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if current == SCHEMA_HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config(str(MIGRATIONS / "alembic.ini"))
        config.set_main_option("script_location", str(MIGRATIONS))
        # Under the append lock: a process opening the store while another migrates it
        # waits, then finds the schema at head (Alembic re-reads the version).
        with self.append_transaction() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def grown(self, size: int) -> None:
        """The log now holds ``size`` events (called after each append's commit).
        SQLite plans the ledger's statements from its indexes alone: nothing to do."""

    def dispose(self) -> None:
        self.engine.dispose()

    # --- transactions ---------------------------------------------------------------

    @contextmanager
    def append_transaction(self) -> Iterator[Connection]:
        """A transaction holding the append lock; commits on success, rolls back on error."""
        with self.engine.connect() as conn, conn.begin():
            self._lock(conn)
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction. On SQLite its statements share one snapshot; on
        PostgreSQL (READ COMMITTED) each statement sees what was committed when it
        began: use ``snapshot`` where statements must agree with each other."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction whose statements all see the log as of its first one,
        whatever commits meanwhile (SQLite: a WAL read transaction; PostgreSQL:
        REPEATABLE READ). Takes no lock: appends go on while it reads."""
        with self.read() as conn:
            yield conn

    def _lock(self, conn: Connection) -> None:
        raise NotImplementedError

    def lease(self, job: str) -> Lease:
        """The lease of ``job`` (one of ``LEASE_JOBS``) on this database: held by one
        process at a time among all that open it (``registry.store.lease``)."""
        raise NotImplementedError

    # --- the log --------------------------------------------------------------------

    @staticmethod
    def max_position(conn: Connection) -> int:
        """Position of the newest event, -1 when the log is empty."""
        value = conn.execute(select(func.max(T["events"].c.position))).scalar()
        return -1 if value is None else int(value)

    @staticmethod
    def select_events(
        conn: Connection, start: int = 0, limit: int | None = None, stop: int | None = None
    ) -> list[StoredEvent]:
        """Events with ``start <= position`` (``< stop``), in order, at most ``limit``,
        with their payloads."""
        sql = (
            f"SELECT {EVENT_COLUMNS}, p.payload FROM events e LEFT JOIN event_payloads p "
            "ON p.position = e.position WHERE e.position >= ?"
        )
        params: list[int] = [start]
        if stop is not None:
            sql += " AND e.position < ?"
            params.append(stop)
        sql += " ORDER BY e.position"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [row_to_event(row) for row in Raw(conn).all(sql, params)]


#: The columns of an event's envelope, in the order of ``StoredEvent``'s fields.
ENVELOPE_COLUMNS = (
    "position",
    "event_id",
    "type",
    "schema_version",
    "project",
    "entity",
    "actor",
    "occurred_at",
    "recorded_at",
)
EVENT_COLUMNS = ", ".join(
    f"e.{c}" for c in (*ENVELOPE_COLUMNS, "body", "personal_refs", "trace_id", "leaf_hash")
)


def row_to_event(row: Sequence[Any]) -> StoredEvent:
    """A row of ``EVENT_COLUMNS`` plus the payload as a StoredEvent (whose fields
    follow the same order)."""
    *envelope, body, refs, trace_id, leaf, payload = row
    return StoredEvent(
        **dict(zip(ENVELOPE_COLUMNS, envelope, strict=True)),
        body=loads(body),
        personal_refs=tuple(json.loads(refs)) if refs != "[]" else (),
        trace_id=trace_id,
        leaf_hash=bytes(leaf),
        payload=None if payload is None else bytes(payload),
    )
