"""Physical purge: after an erasure, the deleted bytes leave the database files.

Deleting or rewriting a row does not remove its old bytes from disk by itself:

- **SQLite** keeps deleted content in free space and old page images in the
  WAL. Every connection runs with ``PRAGMA secure_delete=ON`` (deleted content
  is overwritten with zeros as it is freed); the purge then checkpoints the WAL
  into the database and truncates it, rebuilds the file with ``VACUUM`` (no free
  page, no stale cell survives it), and checkpoints again.
- **PostgreSQL** leaves an updated or deleted tuple in the table file until it
  is vacuumed, and a plain ``VACUUM`` only marks its space free. ``VACUUM FULL``
  rewrites each table, its TOAST table and its indexes into new files and
  unlinks the old ones. It holds an ``ACCESS EXCLUSIVE`` lock on each table
  while it rewrites it (reads and appends wait), so a batch of erasures purges
  once, at its end.

Neither reaches PostgreSQL's write-ahead log (``pg_wal``) and its archives,
nor blocks the file system has freed: see docs/gdpr.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from registry.errors import ConfigError
from registry.store import Store

# Tables an erasure deletes from or rewrites (PostgreSQL rewrites each with VACUUM FULL).
ERASURE_TABLES = (
    "vault_entries",
    "subject_keys",
    "erasure_requests",
    "events",
    "event_payloads",
    "record_index",
    "dataset_record_counts",
    "prediction_index",
)
BUSY_SECONDS = 60.0


@dataclass
class PurgeReport:
    """What a purge did and how long it took."""

    method: str
    seconds: float
    tables: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PurgeBusy(ConfigError):
    """The database stayed in use too long for the purge to finish."""


def purge(
    store: Store, tables: Sequence[str] = (), *, busy_seconds: float = BUSY_SECONDS
) -> PurgeReport:
    """Remove the bytes of deleted and rewritten rows from every file of ``store``."""
    began = time.perf_counter()
    if store.dialect == "sqlite":
        details = _purge_sqlite(store, busy_seconds)
        return PurgeReport(
            "sqlite: secure_delete, wal_checkpoint(TRUNCATE), VACUUM",
            round(time.perf_counter() - began, 3),
            [],
            details,
        )
    done = _purge_postgres(store, list(tables) or list(ERASURE_TABLES))
    return PurgeReport("postgresql: VACUUM FULL", round(time.perf_counter() - began, 3), done, {})


def _checkpoint(cursor: Any, busy_seconds: float) -> tuple[int, int]:
    """``wal_checkpoint(TRUNCATE)``, retried while readers hold old snapshots."""
    deadline = time.monotonic() + busy_seconds
    while True:
        busy, frames, copied = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return int(frames), int(copied)
        if time.monotonic() > deadline:
            raise PurgeBusy(
                f"cannot purge: the database stayed in use for {busy_seconds:.0f} s (a reader "
                "holds an old snapshot, so the WAL cannot be emptied); retry when it is idle"
            )
        time.sleep(0.05)


def _purge_sqlite(store: Store, busy_seconds: float) -> dict[str, Any]:
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cursor.execute("PRAGMA secure_delete=ON")
        before = _checkpoint(cursor, busy_seconds)
        free = cursor.execute("PRAGMA freelist_count").fetchone()[0]
        try:
            cursor.execute("VACUUM")
        except Exception as exc:  # the driver's OperationalError: database is locked
            raise PurgeBusy(f"cannot purge: VACUUM failed ({exc}); retry when idle") from None
        after = _checkpoint(cursor, busy_seconds)
        cursor.close()
    finally:
        raw.close()
    return {
        "wal_frames_before": before[0],
        "free_pages_before": int(free),
        "wal_frames_after_vacuum": after[0],
    }


def _purge_postgres(store: Store, tables: list[str]) -> list[str]:
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        present = {
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        }
        done = [t for t in tables if t in present]
        for table in done:
            conn.execute(text(f'VACUUM FULL "{table}"'))
    return done


# --- checking a purge -------------------------------------------------------------------------


def find_bytes(store: Store, needles: Sequence[bytes]) -> dict[bytes, list[str]]:
    """Where each needle occurs in the files the database wrote: SQLite's database, WAL,
    shared-memory and journal files; PostgreSQL's files of every table of the schema,
    their TOAST tables and all their indexes (after a CHECKPOINT, so what sits in
    shared buffers is on disk; needs a superuser or ``pg_read_server_files``).

    Not searched: PostgreSQL's WAL (``pg_wal``), free blocks of the file system."""
    found: dict[bytes, list[str]] = {needle: [] for needle in needles}
    for name, content in _files(store):
        for needle in needles:
            if needle in content:
                found[needle].append(name)
    return found


def _files(store: Store) -> list[tuple[str, bytes]]:
    if store.dialect == "sqlite":
        base = Path(store.url.split("///", 1)[1])
        out = []
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = base.with_name(base.name + suffix)
            if path.exists():
                out.append((str(path), path.read_bytes()))
        return out
    out = []
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CHECKPOINT"))
        relations = conn.execute(
            text(
                "SELECT c.relname, pg_relation_filepath(c.oid) FROM pg_class c "
                "WHERE c.relfilenode <> 0 AND (c.relnamespace = current_schema()::regnamespace "
                "OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE relnamespace = "
                "current_schema()::regnamespace) OR c.oid IN (SELECT i.indexrelid FROM "
                "pg_index i JOIN pg_class t ON t.oid = i.indrelid WHERE t.relnamespace = "
                "'pg_toast'::regnamespace AND t.oid IN (SELECT reltoastrelid FROM pg_class "
                "WHERE relnamespace = current_schema()::regnamespace)))"
            )
        ).all()
        for name, path in relations:
            segment = 0
            while True:
                part = path if segment == 0 else f"{path}.{segment}"
                size = conn.execute(
                    text("SELECT size FROM pg_stat_file(:p, true)"), {"p": part}
                ).scalar()
                if size is None:
                    break
                data = conn.execute(text("SELECT pg_read_binary_file(:p)"), {"p": part}).scalar()
                out.append((f"{name} ({part})", bytes(data or b"")))
                segment += 1
    return out
