"""Physical purge: after an erasure, the deleted bytes leave the database files.

Deleting or rewriting a row does not remove its old bytes from disk by itself.
What does was measured, not assumed (``tests/test_purge.py`` keeps checking it):

- **SQLite** (WAL mode). ``PRAGMA secure_delete=ON`` (set on every connection
  by ``registry.store.sqlite``) zeroes a cell as it is freed, and
  ``wal_checkpoint(TRUNCATE)`` writes the WAL's page images back and empties
  it. Together they remove almost everything, but not all: when a b-tree page
  is rebalanced (a row grows, a neighbour page is merged) SQLite rebuilds it and
  leaves the old cell bytes in the page's *unallocated* gap, which
  ``secure_delete`` never visits. With 2,000 to 20,000 rows per table, deletes
  and updates that shrink and grow rows, one to three deleted values survived
  in each run, in table and index leaf pages of the database file (the WAL was
  empty, the ``-shm`` file never held row data). Only ``VACUUM`` (a rebuild of
  the file from the live rows; its temporary copy holds nothing else) removed
  all of them, with or without ``secure_delete``. So the purge is: checkpoint,
  ``VACUUM``, checkpoint; there is no cheaper mode that is safe.
- **PostgreSQL**. A plain ``VACUUM`` marks dead tuples' space free without
  overwriting it (about three quarters of the deleted or replaced values were
  still in the table, index and TOAST files after it); ``VACUUM FULL`` writes
  each table, its TOAST table and its indexes into new files and drops the old
  ones, and left none. Two more places were found holding erased values, and
  are purged too: ``pg_statistic`` (``ANALYZE``, autovacuum's included, copies
  sampled column values into histograms), refreshed by ``ANALYZE`` and then
  rewritten with ``VACUUM FULL``; and tuples that another transaction's
  snapshot can still see, which ``VACUUM FULL`` copies into the new file. The
  purge therefore first waits until no transaction older than the purge is
  left, and checks ``VACUUM VERBOSE``'s count of dead rows it could not remove.

Not reached by any of this (and not searched by ``find_bytes``): PostgreSQL's
write-ahead log (``pg_wal``), its archives and replicas, until they are
recycled; blocks the file system has freed (old WAL files, a truncated SQLite
WAL, PostgreSQL's dropped relation files), which only encrypted storage
covers; backups. See docs/gdpr.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from registry.errors import ConfigError, FieldError
from registry.store import Store
from registry.timeutil import now

#: Tables an erasure deletes from or rewrites; PostgreSQL rewrites those that exist.
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
#: Catalogs that copy column values (``ANALYZE``'s samples): rewritten after every purge.
STATISTICS_CATALOGS = ("pg_statistic", "pg_statistic_ext_data")
#: How long the purge waits for other transactions before it gives up.
BUSY_SECONDS = 60.0
_POLL_SECONDS = 0.05
# One SQLite checkpoint attempt holds off new writers while it waits for readers:
# short attempts let appends through between them.
_CHECKPOINT_ATTEMPT_MS = 200
_LOCK_NOT_AVAILABLE = "55P03"
_RECENTLY_DEAD = re.compile(r"(\d+) dead row versions cannot be removed yet")


#: The fields of a purge's report an erasure certificate records (``attested``).
ATTESTED = ("method", "finished_at", "seconds", "tables")


@dataclass
class PurgeReport:
    """What a purge did, when it finished (UTC, the ledger's timestamp form) and how long
    it took (``details``: per backend, see ``purge``)."""

    method: str
    seconds: float
    finished_at: str
    tables: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def attested(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a purge's report (``PurgeReport.as_dict()``) an erasure certificate
    records: the method, when it finished, its seconds and the tables it rewrote (the
    backend's ``details`` are diagnostics, left out)."""
    missing = [name for name in ATTESTED if name not in report]
    if missing:
        raise FieldError(
            "purge",
            f"the purge report has no {', '.join(missing)}: expected a report of "
            f"audit.erasure.purge.purge() with {', '.join(ATTESTED)}",
        )
    return {name: report[name] for name in ATTESTED}


class PurgeBusy(ConfigError):
    """The database stayed in use too long for the purge to finish: other
    transactions kept old snapshots (whose rows a purge may not remove) or locks."""


def purge(
    store: Store, tables: Sequence[str] = (), *, busy_seconds: float = BUSY_SECONDS
) -> PurgeReport:
    """Remove the bytes of deleted and rewritten rows from every file of ``store``.

    SQLite: ``wal_checkpoint(TRUNCATE)``, ``VACUUM``, ``wal_checkpoint(TRUNCATE)``
    over the whole file (``tables`` is not used: a file is rebuilt whole). Readers
    holding a snapshot keep the WAL from being emptied; the purge retries until
    ``busy_seconds`` have passed. ``VACUUM`` needs free disk space for a copy of
    the database, and holds the write lock while it runs (appends wait).

    PostgreSQL: ``VACUUM (FULL, ANALYZE)`` of each of ``tables`` (default
    ``ERASURE_TABLES``, those that exist; a table named explicitly must exist),
    then ``VACUUM FULL`` of ``pg_statistic`` and ``pg_statistic_ext_data``. Each
    runs in its own transaction (VACUUM cannot run inside one) and takes an
    ``ACCESS EXCLUSIVE`` lock on its table for as long as it rewrites it: reads
    and writes of that table wait, so a batch of erasures purges once, at its
    end. It needs free space for a copy of each table and its indexes, and the
    account must own the tables and the database (or be a superuser); anything
    VACUUM skips for want of privileges is an error, not a silent gap.

    Raises ``PurgeBusy`` when transactions older than the purge or locks on a
    table outlast ``busy_seconds``; nothing is left half-done that a retry
    would not finish.
    """
    began = time.monotonic()
    deadline = began + busy_seconds
    if store.dialect == "sqlite":
        done, details = _purge_sqlite(store, deadline, busy_seconds)
        method = "sqlite: wal_checkpoint(TRUNCATE), VACUUM, wal_checkpoint(TRUNCATE)"
    elif store.dialect == "postgresql":
        done, details = _purge_postgres(store, tables, deadline, busy_seconds)
        method = "postgresql: VACUUM (FULL, ANALYZE), VACUUM FULL pg_statistic"
    else:
        raise ConfigError(f"cannot purge a {store.dialect!r} store: sqlite or postgresql only")
    return PurgeReport(method, round(time.monotonic() - began, 3), now(), done, details)


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_path(store: Store) -> Path | None:
    """The database file, or None for an in-memory database (nothing on disk)."""
    path = getattr(store, "path", None)
    if path is None:
        path = store.url.split("///", 1)[1] if "///" in store.url else ""
    if not path or path == ":memory:" or str(path).startswith("file::memory:"):
        return None
    return Path(path)


def _sqlite_files(path: Path) -> list[Path]:
    """Every file SQLite writes for ``path``: the database, WAL, shared memory, journal,
    and the access trail's journal database (``audit.trail``) with its own."""
    suffixes = ("", "-wal", "-shm", "-journal", "-trail", "-trail-wal", "-trail-shm")
    return [path.with_name(path.name + suffix) for suffix in suffixes]


def _sizes(path: Path | None) -> dict[str, int]:
    if path is None:
        return {}
    return {p.name: p.stat().st_size for p in _sqlite_files(path) if p.exists()}


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _checkpoint(
    db: sqlite3.Connection, path: Path | None, deadline: float, busy_seconds: float
) -> dict[str, Any]:
    """``wal_checkpoint(TRUNCATE)``, retried while readers or a writer hold the WAL."""
    began = time.monotonic()
    wal_bytes = _sizes(path).get(path.name + "-wal", 0) if path is not None else 0
    attempts = 0
    while True:
        attempts += 1
        left_ms = max(1, int((deadline - time.monotonic()) * 1000))
        db.execute(f"PRAGMA busy_timeout={min(left_ms, _CHECKPOINT_ATTEMPT_MS)}")
        try:
            # (busy, WAL frames, frames checkpointed): after TRUNCATE both counts are 0.
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            busy = 1
        if not busy:
            return {
                "wal_bytes": wal_bytes,
                "attempts": attempts,
                "waited_seconds": round(time.monotonic() - began, 3),
            }
        if time.monotonic() >= deadline:
            raise PurgeBusy(
                f"cannot purge: the database stayed in use for {busy_seconds:g} s (a reader "
                "holds a snapshot or a writer the lock, so the WAL, which still holds the "
                "old pages, cannot be emptied); nothing was lost, retry when it is idle"
            )
        time.sleep(_POLL_SECONDS)


def _purge_sqlite(
    store: Store, deadline: float, busy_seconds: float
) -> tuple[list[str], dict[str, Any]]:
    path = _sqlite_path(store)
    before = _sizes(path)
    # A pooled connection: it has the store's settings (WAL, secure_delete, autocommit
    # driver mode, which VACUUM needs); its busy timeout is put back before it returns.
    raw = store.engine.raw_connection()
    try:
        db: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
        (previous_timeout,) = db.execute("PRAGMA busy_timeout").fetchone()
        try:
            (secure,) = db.execute("PRAGMA secure_delete").fetchone()
            tables = [
                r[0]
                for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            # First checkpoint: fail early (before the costly VACUUM) if readers stay,
            # and let VACUUM start from an empty WAL.
            first = _checkpoint(db, path, deadline, busy_seconds)
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            db.execute(f"PRAGMA busy_timeout={left_ms}")
            vacuum_began = time.monotonic()
            try:
                db.execute("VACUUM")
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                raise PurgeBusy(
                    f"cannot purge: VACUUM could not take the write lock within "
                    f"{busy_seconds:g} s ({exc}); nothing was lost, retry when it is idle"
                ) from None
            vacuum_seconds = time.monotonic() - vacuum_began
            # VACUUM wrote every page anew into the WAL; the old frames go with it.
            second = _checkpoint(db, path, deadline, busy_seconds)
        finally:
            db.execute(f"PRAGMA busy_timeout={int(previous_timeout)}")
    finally:
        raw.close()
    return tables, {
        "secure_delete": int(secure),
        "checkpoint_before": first,
        "vacuum_seconds": round(vacuum_seconds, 3),
        "checkpoint_after": second,
        "bytes_before": before,
        "bytes_after": _sizes(path),
    }


# --- PostgreSQL ---------------------------------------------------------------------------

# Transactions whose snapshot or xid is older than the horizon (the purge's start):
# VACUUM FULL must keep every row version they might still see. Autovacuum's plain
# VACUUMs are left out: PostgreSQL ignores their snapshots when it decides what is dead.
_OLDER_TRANSACTIONS = """
WITH h AS (SELECT CAST(CAST(:horizon AS text) AS xid8)::xid AS x)
SELECT 'backend ' || a.pid || ' (' || a.backend_type
       || coalesce(', ' || nullif(a.application_name, ''), '')
       || coalesce(', ' || a.state, '') || ')'
FROM pg_stat_activity a, h
WHERE a.pid <> pg_backend_pid()
  AND (a.datname = current_database() OR a.backend_type = 'walsender')
  AND NOT (a.backend_type = 'autovacuum worker'
           AND a.query LIKE 'autovacuum: VACUUM%' AND a.query NOT LIKE '%ANALYZE%')
  AND ((a.backend_xmin IS NOT NULL AND age(a.backend_xmin) > age(h.x))
       OR (a.backend_xid IS NOT NULL AND age(a.backend_xid) > age(h.x)))
UNION ALL
SELECT 'prepared transaction ' || quote_literal(p.gid)
FROM pg_prepared_xacts p, h
WHERE p.database = current_database() AND age(p.transaction) > age(h.x)
UNION ALL
SELECT 'replication slot ' || s.slot_name
FROM pg_replication_slots s, h
WHERE (s.database IS NULL OR s.database = current_database())
  AND ((s.xmin IS NOT NULL AND age(s.xmin) > age(h.x))
       OR (s.catalog_xmin IS NOT NULL AND age(s.catalog_xmin) > age(h.x)))
"""


def _horizon(conn: Connection) -> str:
    """The first transaction id not yet started: anything that committed before is older."""
    return str(conn.execute(text("SELECT pg_snapshot_xmax(pg_current_snapshot())")).scalar())


def _wait_for_older(
    conn: Connection, horizon: str, deadline: float, busy_seconds: float, why: str
) -> float:
    """Wait until no transaction older than ``horizon`` is left; seconds waited."""
    began = time.monotonic()
    while True:
        older = list(conn.execute(text(_OLDER_TRANSACTIONS), {"horizon": horizon}).scalars())
        if not older:
            return time.monotonic() - began
        if time.monotonic() >= deadline:
            raise PurgeBusy(
                f"cannot purge: after {busy_seconds:g} s these still see data older than the "
                f"purge ({why}): {', '.join(older)}; VACUUM FULL would copy the erased rows "
                "for them. Retry when they have finished"
            )
        time.sleep(_POLL_SECONDS)


def _quoted(conn: Connection, names: Sequence[str], explicit: bool) -> tuple[list[str], list[str]]:
    """The names that exist, as PostgreSQL quotes them; and the missing ones."""
    found, missing = [], []
    for name in names:
        regclass = conn.execute(text("SELECT to_regclass(:n)::text"), {"n": name}).scalar()
        if regclass is None:
            missing.append(name)
        else:
            found.append(str(regclass))
    if explicit and missing:
        raise ConfigError(f"cannot purge: no such table {', '.join(map(repr, missing))}")
    return found, missing


class _Notices:
    """Collects the server's messages (INFO, WARNING) during VACUUM VERBOSE."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def __call__(self, diagnostic: Any) -> None:
        # Copied now: the driver's diagnostic is valid only during this call.
        self.items.append(
            (
                diagnostic.severity_nonlocalized or "",
                diagnostic.message_primary or "",
                diagnostic.message_detail or "",
            )
        )

    def take(self) -> list[tuple[str, str, str]]:
        items, self.items = self.items, []
        return items


def _vacuum(
    conn: Connection, notices: _Notices, table: str, options: str, deadline: float, budget: float
) -> tuple[float, int | None]:
    """``VACUUM (options, VERBOSE) table`` within the lock wait left; its seconds and
    the dead row versions it had to keep (None when the server's message is unknown)."""
    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
    conn.execute(text(f"SET lock_timeout = {left_ms}"))
    notices.take()
    began = time.monotonic()
    try:
        conn.execute(text(f"VACUUM ({options}, VERBOSE) {table}"))
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            raise PurgeBusy(
                f"cannot purge: {table} stayed locked by other transactions for {budget:g} s "
                "(VACUUM FULL needs it to itself); retry when they have finished"
            ) from None
        raise
    seconds = time.monotonic() - began
    kept: int | None = None
    for severity, message, detail in notices.take():
        if severity == "WARNING":
            # "skipping ... only superuser or database owner can vacuum it"
            raise ConfigError(
                f"cannot purge {table}: {message}; the purge must run as the owner of the "
                "tables and of the database, or as a superuser"
            )
        match = _RECENTLY_DEAD.search(detail)
        if match:
            kept = (kept or 0) + int(match.group(1))
    return seconds, kept


def _purge_postgres(
    store: Store, tables: Sequence[str], deadline: float, busy_seconds: float
) -> tuple[list[str], dict[str, Any]]:
    names = list(tables) or list(ERASURE_TABLES)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        notices = _Notices()
        driver.add_notice_handler(notices)
        try:
            # Messages in English, so the count of rows VACUUM kept can be read
            # (allowed to superusers only; others keep the server's language).
            english = False
            with contextlib.suppress(DBAPIError):
                conn.execute(text("SET lc_messages = 'C'"))
                english = True
            present, missing = _quoted(conn, names, explicit=bool(tables))
            horizon = _horizon(conn)
            waited = _wait_for_older(conn, horizon, deadline, busy_seconds, "the erased rows")
            seconds: dict[str, float] = {}
            kept: dict[str, int | None] = {}
            for table in present:
                seconds[table], kept[table] = _vacuum(
                    conn, notices, table, "FULL, ANALYZE", deadline, busy_seconds
                )
            # ANALYZE just replaced the statistics rows sampled from the erased data;
            # the old versions are dead once every transaction older than it is gone.
            horizon = _horizon(conn)
            waited += _wait_for_older(conn, horizon, deadline, busy_seconds, "old statistics")
            catalogs, _ = _quoted(conn, STATISTICS_CATALOGS, explicit=False)
            for catalog in catalogs:
                seconds[catalog], kept[catalog] = _vacuum(
                    conn, notices, catalog, "FULL", deadline, busy_seconds
                )
        finally:
            driver.remove_notice_handler(notices)
            conn.execute(text("RESET lock_timeout"))
            if english:
                conn.execute(text("RESET lc_messages"))
    stuck = {name: n for name, n in kept.items() if n}
    if stuck:
        # A transaction the wait could not see (no right to read its snapshot in
        # pg_stat_activity) still needed them: the bytes are there.
        raise PurgeBusy(
            "cannot purge: VACUUM FULL had to keep dead rows that other transactions can "
            f"still see ({', '.join(f'{t}: {n}' for t, n in stuck.items())}); retry when "
            "every transaction older than the purge has finished"
        )
    return present, {
        "vacuum_seconds": {name: round(s, 3) for name, s in seconds.items()},
        "waited_seconds": round(waited, 3),
        "dead_rows_kept": kept,
        "missing_tables": missing,
    }


# --- checking a purge -----------------------------------------------------------------------

_CHUNK = 32 << 20
_SQL_CHUNK = 8 << 20
_ANCHOR = 4


class _Matcher:
    """Finds many needles in one pass per distinct 4-byte prefix (not one per needle):
    a candidate position is looked up by its prefix, then compared in full."""

    def __init__(self, needles: Sequence[bytes]):
        if not needles:
            raise ValueError("no needles to search for")
        if any(not isinstance(n, bytes) or not n for n in needles):
            raise ValueError("needles must be non-empty bytes")
        self.overlap = max(len(n) for n in needles) - 1
        grouped: dict[bytes, list[bytes]] = {}
        for needle in dict.fromkeys(needles):
            grouped.setdefault(needle[:_ANCHOR], []).append(needle)
        self.groups: list[tuple[bytes, int, dict[bytes, list[bytes]]]] = []
        for anchor, group in grouped.items():
            width = min(len(n) for n in group)
            index: dict[bytes, list[bytes]] = {}
            for needle in group:
                index.setdefault(needle[:width], []).append(needle)
            self.groups.append((anchor, width, index))

    def scan(self, chunks: Iterable[bytes]) -> set[bytes]:
        """The needles occurring in the concatenation of ``chunks``."""
        found: set[bytes] = set()
        tail = b""
        for chunk in chunks:
            buf = tail + chunk
            for anchor, width, index in self.groups:
                pos = buf.find(anchor)
                while pos >= 0:
                    for needle in index.get(buf[pos : pos + width], ()):
                        if buf.startswith(needle, pos):
                            found.add(needle)
                    pos = buf.find(anchor, pos + 1)
            # Kept for the next chunk: a needle may straddle the boundary.
            tail = buf[len(buf) - self.overlap :] if self.overlap else b""
        return found


def _read_file(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def find_bytes(
    store: Store, needles: Sequence[bytes], *, via: str = "auto"
) -> dict[bytes, list[str]]:
    """Where each needle occurs in the files the database wrote: ``{needle: [file, ...]}``
    (an empty list: found nowhere). For tests and for operators checking a purge.

    SQLite: the database file and its ``-wal``, ``-shm`` and ``-journal`` files, and
    the access trail's journal (``-trail`` and its ``-wal``, ``-shm``), read as they
    are (no checkpoint first: what the WAL holds is searched there).

    PostgreSQL: a ``CHECKPOINT`` first (pages still in shared buffers reach the
    files; needs a superuser or ``pg_checkpoint``), then every file of the
    database's directory (every table, TOAST table and index of every schema,
    the catalogs included, with all forks and ``.1``, ``.2`` ... segments, and
    files of no relation, such as a rewritten table's old file before it is
    removed), plus relations kept in other tablespaces. ``via``: ``"files"``
    reads them from the data directory (when it is on this machine, readable,
    and the same server: its ``pg_control`` system identifier is compared),
    ``"sql"`` through ``pg_read_binary_file`` (a superuser or
    ``pg_read_server_files``, and ``pg_ls_dir``), ``"auto"`` the former when it
    can.

    Not searched, by design: PostgreSQL's ``pg_wal`` (it holds every change
    until recycled, whatever the purge does: searching it would only restate
    that) and the shared catalogs in ``global/`` (roles, databases: no ledger
    data); the server log; blocks the file system has freed. Values PostgreSQL
    stores compressed (``pglz``/``lz4``, over about 2 kB and compressible) are
    not found by their plain bytes.
    """
    matcher = _Matcher(needles)
    hits: dict[bytes, list[str]] = {needle: [] for needle in needles}
    for name, chunks in _store_files(store, via):
        for needle in matcher.scan(chunks):
            hits[needle].append(name)
    return {needle: sorted(names) for needle, names in hits.items()}


def _store_files(store: Store, via: str) -> Iterator[tuple[str, Iterable[bytes]]]:
    if via not in ("auto", "files", "sql"):
        raise ValueError(f"via must be 'auto', 'files' or 'sql', not {via!r}")
    if store.dialect == "sqlite":
        path = _sqlite_path(store)
        if path is None:
            raise ConfigError("an in-memory SQLite database writes no files to search")
        for file in _sqlite_files(path):
            if file.exists():
                yield file.name, _read_file(file)
        return
    if store.dialect != "postgresql":
        raise ConfigError(f"cannot search a {store.dialect!r} store: sqlite or postgresql only")
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try:
            conn.execute(text("CHECKPOINT"))
        except DBAPIError as exc:
            raise ConfigError(
                "find_bytes needs CHECKPOINT (a superuser or pg_checkpoint): without it, "
                f"pages in shared buffers are not in the files yet ({exc.orig})"
            ) from None
        relations = {
            str(path): str(name)
            for path, name in conn.execute(
                text(
                    "SELECT pg_relation_filepath(c.oid), c.oid::regclass::text FROM pg_class c "
                    "WHERE pg_relation_filepath(c.oid) IS NOT NULL"
                )
            )
        }
        directory = str(Path(_catalog_path(conn)).parent)
        reader = _local_reader(conn) if via in ("auto", "files") else None
        if reader is None and via == "files":
            raise ConfigError(
                "find_bytes(via='files'): the data directory is not readable here, or not "
                "this server's"
            )
        files = _pg_files(conn, reader, directory, relations)
        for relpath in files:
            base = re.sub(r"(_fsm|_vm|_init)?(\.\d+)?$", "", relpath)
            label = f"{relpath} ({relations[base]})" if base in relations else relpath
            if reader is not None:
                yield label, _read_file(reader / relpath)
            else:
                yield label, _sql_chunks(conn, relpath)


def _catalog_path(conn: Connection) -> str:
    """A file of the database's default tablespace (``pg_class`` is always there)."""
    return str(conn.execute(text("SELECT pg_relation_filepath('pg_class')")).scalar())


def _local_reader(conn: Connection) -> Path | None:
    """The data directory, when this process can read it and it is this server's."""
    try:
        datadir = Path(str(conn.execute(text("SHOW data_directory")).scalar()))
        identifier = int(
            conn.execute(text("SELECT system_identifier FROM pg_control_system()")).scalar() or 0
        )
    except DBAPIError:
        return None
    control = datadir / "global" / "pg_control"
    try:
        with control.open("rb") as fh:
            (local,) = struct.unpack("=Q", fh.read(8))
    except (OSError, struct.error):
        return None
    # Another server may have a data directory at the same path on this machine.
    return datadir if local == identifier else None


def _pg_files(
    conn: Connection, reader: Path | None, directory: str, relations: dict[str, str]
) -> list[str]:
    """Paths (relative to the data directory) of the database's files."""
    try:
        if reader is not None:
            listed = sorted(
                f"{directory}/{entry.name}"
                for entry in os.scandir(reader / directory)
                if entry.is_file(follow_symlinks=False)
            )
        else:
            listed = sorted(
                f"{directory}/{name}"
                for name in conn.execute(text("SELECT pg_ls_dir(:d)"), {"d": directory}).scalars()
            )
    except DBAPIError as exc:
        raise ConfigError(
            "find_bytes on PostgreSQL needs a superuser (or pg_read_server_files and "
            "EXECUTE on pg_ls_dir), or the data directory readable on this machine "
            f"({exc.orig})"
        ) from None

    def exists(path: str) -> bool:
        if reader is not None:
            return (reader / path).is_file()
        size = conn.execute(text("SELECT size FROM pg_stat_file(:p, true)"), {"p": path})
        return size.scalar() is not None

    elsewhere = []
    for path in relations:
        if path.startswith((directory + "/", "global/")):
            continue
        elsewhere += _segments(path, exists)
    return listed + elsewhere


def _segments(path: str, exists: Callable[[str], bool]) -> list[str]:
    """Every fork and segment of a relation stored outside the database's directory."""
    out = []
    for fork in ("", "_fsm", "_vm", "_init"):
        segment = 0
        while True:
            part = f"{path}{fork}" + (f".{segment}" if segment else "")
            if not exists(part):
                break
            out.append(part)
            segment += 1
    return out


def _sql_chunks(conn: Connection, path: str) -> Iterator[bytes]:
    offset = 0
    while True:
        try:
            data = conn.execute(
                text("SELECT pg_read_binary_file(:p, :o, :n, true)"),
                {"p": path, "o": offset, "n": _SQL_CHUNK},
            ).scalar()
        except DBAPIError as exc:
            raise ConfigError(
                f"find_bytes(via='sql') needs a superuser or pg_read_server_files ({exc.orig})"
            ) from None
        if not data:
            return
        yield bytes(data)
        offset += len(data)
