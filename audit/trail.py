"""The access trail: every access decision, append-only, hashed, in an order of its own.

A trail row carries an RFC 6962 leaf hash of its fields and the trail has a Merkle
tree of its own (``audit.tree.TRAIL``); the database refuses UPDATE and DELETE.

**Its own commit path.** A server must not answer before a decision's entry is
durable, and a read must not wait behind a long write of the log. So a server's
entries go first into the *trail journal* (``TrailJournal``), a small table written
with no lock of the log: on PostgreSQL ``trail_pending`` in the same database, on
SQLite (one writer per database file) a database file of its own beside the ledger
(``<ledger>.db-trail``). A committed journal row is durable. The journal is then
*folded* into ``access_trail`` (sequence numbers, leaf hashes, tree) by the
recorder's background thread within moments, and by everything that reads the
trail (``read_trail``, checkpoints, verification, exports) before it reads, so a
reader always sees every decision made so far. Folding is exactly once: on
PostgreSQL the folded rows are deleted in the same transaction; on SQLite the main
database keeps how far each journal was folded (``trail_folded``), in the
transaction that inserts the rows.

The trail never holds personal data: a resource is a node id or a pseudonym-free
URL (``registry.api.gate.trail_resource``), never a record key or subject id.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError

from audit.tree import TRAIL, StoredTree
from registry.canonical import canonical_text, leaf_hash
from registry.errors import FieldError
from registry.store.raw import Raw
from registry.store.sqlite import BUSY_TIMEOUT_MS, WriterQueue, create_private_file, durable
from registry.timeutil import now, to_timestamp

if TYPE_CHECKING:
    from registry.store import Store

log = logging.getLogger("mlledger.trail")

OUTCOMES = ("allow", "deny")
#: The fields of a trail row covered by its leaf hash, in the order they are read back.
TRAIL_FIELDS = (
    "seq",
    "at",
    "actor",
    "project",
    "action",
    "resource",
    "source",
    "outcome",
    "status",
    "reason",
    "trace_id",
)
_TRAIL_COLUMNS = ", ".join(TRAIL_FIELDS)
_INSERT_TRAIL = (
    f"INSERT INTO access_trail ({_TRAIL_COLUMNS}, leaf_hash) "
    f"VALUES ({', '.join('?' * (len(TRAIL_FIELDS) + 1))})"
)
# Column widths of the schema, checked here so that SQLite (which does not enforce
# them) and PostgreSQL (which does) refuse the same entries, with a message that helps.
ACTOR_MAX = 300
PROJECT_MAX = 128
ACTION_MAX = 64
SOURCE_MAX = 300
TRACE_MAX = 64
# Journal rows folded per transaction.
FOLD_BATCH = 5_000
# How long the recorder's folder waits for more entries before folding: readers of the
# trail fold first, so this only sets how many entries share a fold's commit.
FOLD_DELAY_S = 0.25
# Folded journal rows are deleted in bulk: after this many, or this many seconds.
PRUNE_EVERY = 2_000
PRUNE_SECONDS = 10.0


def check_text(value: Any, what: str, longest: int | None = None, *, empty: bool = False) -> str:
    """``value`` if it is a string of at most ``longest`` characters (non-empty unless
    ``empty``), else a LedgerError saying so."""
    if not isinstance(value, str):
        raise FieldError(what, f"{what}: expected a string, got {type(value).__name__}")
    if not value and not empty:
        raise FieldError(what, f"{what} is empty: expected some text")
    if longest is not None and len(value) > longest:
        raise FieldError(
            what, f"{what} is {len(value)} characters long: expected at most {longest}"
        )
    if "\x00" in value:
        raise FieldError(what, f"{what} holds a NUL character: expected printable text")
    return value


@dataclass
class AccessEntry:
    """One access decision, for the trail.

    ``actor`` is a key id, ``"anonymous"`` or a local user name; ``resource`` names
    what was asked about and must never carry personal data: callers pass node ids
    or pseudonyms, never a record key or subject id as the client sent it (the trail
    cannot be erased). ``at`` defaults to the time of recording.
    """

    actor: str
    project: str | None
    action: str
    resource: str
    source: str
    outcome: str  # "allow" or "deny" (OUTCOMES), checked when recorded
    status: int
    reason: str
    trace_id: str | None = None
    at: str | None = None


def entry_fields(entry: AccessEntry) -> dict[str, Any]:
    """The hashed fields of ``entry`` but its sequence number, checked and normalised
    (``at`` is the time of this call when the entry has none)."""
    if entry.project is not None:
        check_text(entry.project, "project", PROJECT_MAX)
    if entry.outcome not in OUTCOMES:
        raise FieldError(
            "outcome",
            f"outcome {entry.outcome!r} is not an outcome: expected one of {', '.join(OUTCOMES)}",
        )
    status = entry.status
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise FieldError("status", f"status {status!r} is not an HTTP status: expected 100 to 599")
    if entry.trace_id is not None:
        check_text(entry.trace_id, "trace_id", TRACE_MAX)
    return {
        "at": now() if entry.at is None else to_timestamp(entry.at, "at"),
        "actor": check_text(entry.actor, "actor", ACTOR_MAX),
        "project": entry.project,
        "action": check_text(entry.action, "action", ACTION_MAX),
        "resource": check_text(entry.resource, "resource", empty=True),
        "source": check_text(entry.source, "source", SOURCE_MAX, empty=True),
        "outcome": entry.outcome,
        "status": status,
        "reason": check_text(entry.reason, "reason", empty=True),
        "trace_id": entry.trace_id,
    }


def trail_leaf_hash(fields: Mapping[str, Any]) -> bytes:
    """RFC 6962 leaf hash of a trail row: SHA-256(0x00 || RFC 8785 JSON of its fields)."""
    text_, _ = canonical_text({name: fields[name] for name in TRAIL_FIELDS})
    return leaf_hash(text_.encode("utf-8"))


def _insert_fields(conn: Connection, checked: Sequence[Mapping[str, Any]]) -> list[int]:
    """Append checked entry fields (``entry_fields``) to the trail; return their numbers."""
    if not checked:
        return []
    raw = Raw(conn)
    last = raw.scalar("SELECT MAX(seq) FROM access_trail")
    first = 0 if last is None else int(last) + 1
    rows = []
    for offset, fields in enumerate(checked):
        full = {**fields, "seq": first + offset}
        rows.append([*(full[name] for name in TRAIL_FIELDS), trail_leaf_hash(full)])
    raw.many(_INSERT_TRAIL, rows)
    # The trail's own Merkle tree grows in the same transaction.
    StoredTree(conn, TRAIL).append(first, [row[-1] for row in rows])
    return [first + offset for offset in range(len(rows))]


def insert_access(conn: Connection, entries: Sequence[AccessEntry]) -> list[int]:
    """Append ``entries`` to the trail on ``conn``; return their sequence numbers.

    ``conn`` must be an append transaction (``Store.append_transaction``): the lock is
    what keeps the numbers gap-free and committed in order.
    """
    return _insert_fields(conn, [entry_fields(e) for e in entries])


def record_access(store: Store, entries: Sequence[AccessEntry]) -> list[int]:
    """Append ``entries`` to the trail in one transaction (after what the journal holds);
    return their sequence numbers (0-based, gap-free, in the order given)."""
    if not entries:
        return []
    fold_trail(store)
    with store.append_transaction() as conn:
        return insert_access(conn, entries)


# --- the journal ------------------------------------------------------------------------------


class TrailJournal:
    """Durable staging of trail entries, written without the log's append lock."""

    def __init__(self, store: Store):
        # Weakly: ``journal_of`` keeps a journal as long as its store lives, and a
        # journal holding its store would keep both (and their files) open for good.
        self.store: Store = weakref.proxy(store)
        self._fold_lock = threading.Lock()
        self._engine: Engine | None = None
        self.journal_id = "pending"
        self._unpruned = 0
        self._pruned_at = 0.0
        path = getattr(store, "path", "")
        self._file: Path | None = None
        self._queue: WriterQueue | None = None
        if store.dialect == "sqlite" and path and path != ":memory:":
            self._file = Path(f"{path}-trail")
            # The processes of a server write here on every request: they queue (as
            # the log's writers do) instead of sleeping in SQLite's busy handler.
            self._queue = WriterQueue(self._file)
            if self._file.exists():
                self._open()

    def _open(self) -> Engine:
        """The SQLite journal's engine, the file made (0600) on first use."""
        if self._engine is None:
            assert self._file is not None
            self._engine = _journal_engine(self._file)
            with self._engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE TABLE IF NOT EXISTS trail_pending "
                    "(id INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL)"
                )
                conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS trail_journal (id TEXT NOT NULL)")
                found = conn.exec_driver_sql("SELECT id FROM trail_journal").scalar()
                if found is None:
                    found = str(uuid.uuid4())
                    conn.exec_driver_sql("INSERT INTO trail_journal (id) VALUES (?)", (found,))
            # A journal file made anew has a new id: rows it numbers from 1 again are
            # never mistaken for rows of an earlier file already folded.
            self.journal_id = str(found)
        return self._engine

    @contextmanager
    def _journal(self) -> Iterator[Connection]:
        if self._queue is None:
            with self.store.engine.begin() as conn:
                yield conn
            return
        engine = self._open()
        with self._queue.held(), engine.begin() as conn:
            yield conn

    def write(self, entries: Sequence[AccessEntry | Mapping[str, Any]]) -> None:
        """Make ``entries`` durable: AccessEntry values, or their ``entry_fields``
        (checked first: a bad entry raises here, never when folded). Waits for no lock
        of the log."""
        if not entries:
            return
        rows = [
            (json.dumps(e if isinstance(e, Mapping) else entry_fields(e), sort_keys=True),)
            for e in entries
        ]
        if self._queue is None:
            with self._journal() as conn:
                Raw(conn).many("INSERT INTO trail_pending (entry) VALUES (?)", rows)
            return
        # A server writes here on every request: straight through the driver, which
        # takes a third of the time SQLAlchemy's transaction around it would.
        engine = self._open()
        with self._queue.held():
            dbapi = engine.raw_connection()
            try:
                _insert_journal(dbapi, rows)
            finally:
                dbapi.close()  # back to the pool

    def pending(self) -> bool:
        """Whether the journal holds entries not yet folded (read without any lock)."""
        if self._file is None:
            with self.store.read() as conn:
                return Raw(conn).one("SELECT 1 FROM trail_pending LIMIT 1") is not None
        if self._engine is None and not self._file.exists():
            return False  # no server wrote here yet: nothing to fold, no file to make
        engine = self._open()  # first: it reads the journal's id
        with self.store.read() as conn:
            upto = Raw(conn).scalar(
                "SELECT upto FROM trail_folded WHERE journal = ?", (self.journal_id,)
            )
        with engine.connect() as journal:
            found = Raw(journal).one(
                "SELECT 1 FROM trail_pending WHERE id > ? LIMIT 1", (int(upto or 0),)
            )
            journal.rollback()
        return found is not None

    def fold(self) -> int:
        """Move what the journal holds into the trail; return how many entries moved.
        Takes the log's append lock only when there is something to fold."""
        if not self.pending():
            return 0
        moved = 0
        with self._fold_lock:
            while True:
                count = self._fold_batch()
                moved += count
                if count < FOLD_BATCH:
                    return moved

    def _fold_batch(self) -> int:
        if self._file is None:
            with self.store.append_transaction() as conn:
                raw = Raw(conn)
                rows = raw.all(
                    f"SELECT id, entry FROM trail_pending ORDER BY id LIMIT {FOLD_BATCH}"
                )
                if rows:
                    _insert_fields(conn, [json.loads(r[1]) for r in rows])
                    raw.many("DELETE FROM trail_pending WHERE id = ?", [(r[0],) for r in rows])
                return len(rows)
        with self.store.append_transaction() as conn:
            raw = Raw(conn)
            upto = raw.scalar("SELECT upto FROM trail_folded WHERE journal = ?", (self.journal_id,))
            with self._journal() as journal:
                rows = Raw(journal).all(
                    "SELECT id, entry FROM trail_pending WHERE id > ? ORDER BY id "
                    f"LIMIT {FOLD_BATCH}",
                    (int(upto or 0),),
                )
            if rows:
                _insert_fields(conn, [json.loads(r[1]) for r in rows])
                last = int(rows[-1][0])
                if upto is None:
                    raw.run(
                        "INSERT INTO trail_folded (journal, upto) VALUES (?, ?)",
                        (self.journal_id, last),
                    )
                else:
                    raw.run(
                        "UPDATE trail_folded SET upto = ? WHERE journal = ?",
                        (last, self.journal_id),
                    )
        if rows:
            self._unpruned += len(rows)
            if self._unpruned >= PRUNE_EVERY or len(rows) < FOLD_BATCH:
                self._prune(last)
        return len(rows)

    def _prune(self, upto: int) -> None:
        """Forget the journal's folded rows. Their copies may stay a while (``upto``
        keeps them from being folded twice): pruning in bulk spares a commit per fold."""
        now_ = time.monotonic()
        if self._unpruned < PRUNE_EVERY and now_ - self._pruned_at < PRUNE_SECONDS:
            return
        with self._journal() as journal:
            journal.execute(text("DELETE FROM trail_pending WHERE id <= :n"), {"n": upto})
        self._unpruned = 0
        self._pruned_at = now_

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._queue is not None:
            self._queue.close()


def _insert_journal(dbapi: Any, rows: list[tuple[str]]) -> None:
    """Insert ``rows`` into the SQLite journal in one durable transaction (sqlite3's own
    errors reported as SQLAlchemy's, as every other write of the store reports them)."""
    statement = "INSERT INTO trail_pending (entry) VALUES (?)"
    cursor = dbapi.cursor()
    try:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.executemany(statement, rows)
            cursor.execute("COMMIT")
        except BaseException:
            if dbapi.driver_connection.in_transaction:  # a failed COMMIT may have ended it
                cursor.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc
    finally:
        cursor.close()


def _journal_engine(path: Path) -> Engine:
    create_private_file(path)
    # Connections are kept (set up once each): a server writes here on every request.
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=4,
        max_overflow=12,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        durable(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


_JOURNALS: weakref.WeakKeyDictionary[Any, TrailJournal] = weakref.WeakKeyDictionary()
_JOURNALS_LOCK = threading.Lock()


def journal_of(store: Store) -> TrailJournal:
    """The trail journal of ``store`` (one per store object)."""
    with _JOURNALS_LOCK:
        journal = _JOURNALS.get(store)
        if journal is None:
            journal = _JOURNALS[store] = TrailJournal(store)
        return journal


def fold_trail(store: Store) -> int:
    """Fold what the trail journal holds into the trail (before reading the trail)."""
    return journal_of(store).fold()


# --- a server's recorder -----------------------------------------------------------------------


class TrailRecorder:
    """A server's trail entries: group-committed into the journal, folded in the
    background.

    ``record`` returns once its entry is durable in the journal, so an answered
    request always has its entry; concurrent requests share one journal commit (the
    first to find no write in progress writes everything pending). A background
    thread folds the journal into the trail; ``close`` folds what is left.
    """

    def __init__(self, store: Store):
        self.store = store
        self.journal = journal_of(store)
        self._cond = threading.Condition()
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._next_ticket = 0
        self._done = 0  # tickets below this are settled
        self._writing = False
        self._failed: dict[int, BaseException] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._folder = threading.Thread(target=self._fold_loop, name="trail-fold", daemon=True)
        self._folder.start()

    def record(self, entry: AccessEntry) -> None:
        """Make one entry durable (with whatever else is pending). A bad entry is
        refused here, to its caller alone: it never fails the entries it would have
        been committed with."""
        fields = entry_fields(entry)
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._pending.append((ticket, fields))
            while self._done <= ticket and self._writing:
                self._cond.wait()
            if self._done > ticket:
                self._settled(ticket)
                return
            self._writing = True
            batch, self._pending = self._pending, []
        error: BaseException | None = None
        try:
            self.journal.write([e for _, e in batch])
        except BaseException as exc:  # every waiter of this batch must hear of it
            error = exc
        with self._cond:
            if error is not None:
                for t, _ in batch:
                    self._failed[t] = error
            self._done = batch[-1][0] + 1
            self._writing = False
            self._cond.notify_all()
            self._settled(ticket)
        self._wake.set()

    def _settled(self, ticket: int) -> None:
        error = self._failed.pop(ticket, None)
        if error is not None:
            raise error

    def _fold_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if not self._wake.wait(timeout=1.0):
                continue  # nothing recorded here since the last fold
            if self._stop.is_set():
                return
            self._wake.clear()
            self._stop.wait(FOLD_DELAY_S)  # let a burst of entries gather
            try:
                self.journal.fold()
                failures = 0
            except Exception:
                # The entries stay in the journal (durable) and are folded on a later
                # try or by the next reader; say so once per run of failures.
                failures += 1
                if failures == 1:
                    log.exception("could not fold the trail journal; retrying")
                self._stop.wait(min(30.0, 0.5 * failures))
                self._wake.set()

    def close(self) -> None:
        """Stop the background folder and fold what the journal holds."""
        self._stop.set()
        self._wake.set()
        self._folder.join(timeout=30)
        self.journal.fold()


def read_trail(
    store: Store, *, project: str | None = None, since: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """Trail rows with ``seq >= since`` (of ``project``, or all), in order, at most
    ``limit``; each a dict of ``TRAIL_FIELDS`` and ``leaf_hash`` in hex. What the
    journal holds is folded first."""
    for value, what in ((since, "since"), (limit, "limit")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FieldError(what, f"{what} {value!r} is not a whole number of 0 or more")
    fold_trail(store)
    sql = f"SELECT {_TRAIL_COLUMNS}, leaf_hash FROM access_trail WHERE seq >= ?"
    params: list[Any] = [since]
    if project is not None:
        sql += " AND project = ?"
        params.append(project)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    with store.read() as conn:
        rows = Raw(conn).all(sql, params)
    return [
        {**dict(zip(TRAIL_FIELDS, row[:-1], strict=True)), "leaf_hash": bytes(row[-1]).hex()}
        for row in rows
    ]


@dataclass(frozen=True)
class TrailFilter:
    """Which entries of a project's trail to list: by the key that asked (``actor``,
    exactly), the action (``action``, its beginning: ``web.`` for every page view),
    the ``outcome`` (``allow`` or ``deny``), the time (``at`` from ``since_at``, before
    ``until_at``: ISO 8601 UTC text, compared as written), and for the next page, the
    entries before trail ``seq`` ``before``."""

    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    since_at: str | None = None
    until_at: str | None = None
    before: int | None = None


def search_trail(
    store: Store, project: str, where: TrailFilter, *, limit: int = 50, window: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """At most ``limit`` of ``project``'s trail entries that ``where`` selects, newest
    first, each a dict of ``TRAIL_FIELDS``; and, with ``window``, where the search
    stopped: it looks at the ``window`` seqs below ``where.before`` (below the newest
    entry's when it is None) only, so a filter that matches little costs a bounded
    read; the lowest seq it looked at when the project has older entries (search on
    from before it), else None. What the journal holds is folded first."""
    fold_trail(store)
    with store.read() as conn:
        raw = Raw(conn)
        scope = "project = ?"
        params: list[Any] = [project]
        top = where.before
        if window is not None and top is None:
            newest = raw.scalar("SELECT MAX(seq) FROM access_trail")
            top = None if newest is None else int(newest) + 1
        if top is not None:
            scope += " AND seq < ?"
            params.append(top)
        floor = None
        if window is not None and top is not None and top - window > 0:
            older = raw.one(
                "SELECT 1 FROM access_trail WHERE project = ? AND seq < ? LIMIT 1",
                (project, top - window),
            )
            if older is not None:
                floor = top - window
                scope += " AND seq >= ?"
                params.append(floor)
        sql = f"SELECT {_TRAIL_COLUMNS} FROM access_trail WHERE {scope}"
        if where.actor:
            sql += " AND actor = ?"
            params.append(where.actor)
        if where.action:
            sql += " AND substr(action, 1, ?) = ?"
            params += [len(where.action), where.action]
        if where.outcome:
            sql += " AND outcome = ?"
            params.append(where.outcome)
        if where.since_at:
            sql += " AND at >= ?"
            params.append(where.since_at)
        if where.until_at:
            sql += " AND at < ?"
            params.append(where.until_at)
        rows = raw.all(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
    return [dict(zip(TRAIL_FIELDS, row, strict=True)) for row in rows], floor
