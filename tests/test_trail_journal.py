"""The access trail's own commit path, on SQLite and PostgreSQL: a decision is durable in
the trail journal without the log's append lock, so a read is answered while a write
holds that lock; the journal is folded into the trail exactly once, crash or not, and
before anyone reads the trail."""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy.exc import SQLAlchemyError

from audit import trail
from audit.trail import AccessEntry, TrailJournal, read_trail
from registry.store import Store, open_store
from tests.support.apiserver import ApiServer
from tests.support.events import access_entry


@pytest.fixture
def store(store_url: str, isolated_env: Path) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.dispose()


def _entry(n: int) -> AccessEntry:
    """Entry ``n``: tester's allowed read of ``/r/N``."""
    return access_entry(actor="tester", action="test.read", resource=f"/r/{n}", reason="test")


def test_the_journal_needs_no_append_lock(store: Store) -> None:
    """An entry is made durable while another transaction holds the append lock; it
    joins the trail once the lock is free."""
    journal = TrailJournal(store)
    written = threading.Event()
    with store.append_transaction():
        writer = threading.Thread(target=lambda: (journal.write([_entry(1)]), written.set()))
        writer.start()
        assert written.wait(30), "the journal write waited for the append lock"
        writer.join()
    rows = read_trail(store)
    assert [(r["seq"], r["resource"]) for r in rows] == [(0, "/r/1")]


def test_a_fold_is_exactly_once_across_a_crash(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold that dies after its commit (before the journal forgets the rows) leaves
    nothing to fold twice."""
    journal = TrailJournal(store)
    journal.write([_entry(1), _entry(2)])
    if store.dialect == "sqlite":
        calls = {"n": 0}
        real = journal._journal

        def dying():  # the second use of the journal in a fold is the deletion
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("killed")
            return real()

        monkeypatch.setattr(journal, "_journal", dying)
        with pytest.raises(OSError):
            journal.fold()
        monkeypatch.undo()
    again = TrailJournal(store)  # a new process finds the journal as it was left
    again.fold()
    again.write([_entry(3)])
    assert [r["resource"] for r in read_trail(store)] == ["/r/1", "/r/2", "/r/3"]
    assert [r["seq"] for r in read_trail(store)] == [0, 1, 2]


def test_a_bad_entry_is_refused_when_written_never_when_folded(store: Store) -> None:
    journal = TrailJournal(store)
    bad = _entry(1)
    bad.trace_id = "x" * 65
    with pytest.raises(Exception, match="trace_id"):
        journal.write([bad])
    journal.write([_entry(2)])
    assert [r["resource"] for r in read_trail(store)] == ["/r/2"]


def test_a_new_journal_file_is_never_mistaken_for_a_folded_one(tmp_path: Path) -> None:
    """SQLite's journal is a file of its own (PostgreSQL keeps it in the database)."""
    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        first = TrailJournal(store)
        first.write([_entry(1)])
        first.fold()
        first.close()
        Path(f"{store.path}-trail").unlink()  # its rows were folded: the file may go
        for suffix in ("-wal", "-shm"):
            Path(f"{store.path}-trail{suffix}").unlink(missing_ok=True)
        second = TrailJournal(store)
        assert second.journal_id != first.journal_id
        second.write([_entry(2)])
        second.fold()
        assert [r["resource"] for r in read_trail(store)] == ["/r/1", "/r/2"]
        mode = Path(f"{store.path}-trail").stat().st_mode & 0o777
        assert mode == 0o600
    finally:
        store.dispose()


def test_a_read_is_answered_while_a_write_holds_the_append_lock(
    store_server: ApiServer,
) -> None:
    """The server records a viewer's decision and answers while the log's append lock is
    held by another process's transaction (a long write); the entry is in the trail
    once the lock is free."""
    token = store_server.key("held", "viewer")
    store = open_store(store_server.db)
    answered: list[int] = []
    try:
        with store.append_transaction(), store_server.client(token) as http:
            reader = threading.Thread(
                target=lambda: answered.append(
                    http.get("/projects/held/models/clf/top-version").status_code
                )
            )
            reader.start()
            reader.join(timeout=30)
            assert answered == [200], "the read waited for the append lock"
        rows = trail.read_trail(store, project="held")
        assert [r["action"] for r in rows][-1:] == ["models.read"]
    finally:
        store.dispose()


def test_a_bad_entry_fails_its_caller_alone(store: Store) -> None:
    """Entries recorded together share one commit; one that cannot be stored is refused
    to its own caller and never fails the others."""
    recorder = trail.TrailRecorder(store)
    bad = _entry(0)
    bad.reason = "\x00"
    errors: list[BaseException] = []

    def record(entry: AccessEntry) -> None:
        try:
            recorder.record(entry)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(_entry(n),)) for n in range(1, 9)]
    threads.append(threading.Thread(target=record, args=(bad,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()
    assert len(errors) == 1 and "NUL" in str(errors[0])
    assert sorted(r["resource"] for r in read_trail(store)) == [f"/r/{n}" for n in range(1, 9)]


def test_reading_the_trail_makes_no_journal_file(tmp_path: Path) -> None:
    """Only a writer creates SQLite's journal file; a reader that finds none has nothing
    to fold (and a journal made later by another process is folded all the same)."""
    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        reader = TrailJournal(store)
        assert read_trail(store) == []
        assert not Path(f"{store.path}-trail").exists()
        writer = TrailJournal(open_store(f"sqlite:///{tmp_path}/ledger.db"))
        writer.write([_entry(1)])
        assert reader.fold() == 1
        assert [r["resource"] for r in read_trail(store)] == ["/r/1"]
    finally:
        store.dispose()


def test_a_failed_journal_write_is_the_stores_error_and_leaves_nothing(tmp_path: Path) -> None:
    """A SQLite journal write the database refuses raises the store's error (as
    SQLAlchemy reports it: what the gate answers 503 for), leaves none of its entries,
    and the journal takes the next write."""
    store = open_store(f"sqlite:///{tmp_path}/ledger.db")
    try:
        journal = TrailJournal(store)
        journal.write([_entry(1)])
        with closing(sqlite3.connect(f"{store.path}-trail")) as conn:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON trail_pending "
                "WHEN NEW.entry LIKE '%/r/2\"%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
            conn.commit()
        with pytest.raises(SQLAlchemyError, match="refused"):
            journal.write([_entry(3), _entry(2)])
        journal.write([_entry(4)])
        assert [r["resource"] for r in read_trail(store)] == ["/r/1", "/r/4"]
    finally:
        store.dispose()


def test_a_disposed_store_leaves_no_journal_file_open(tmp_path: Path) -> None:
    """Stores opened, written through their trail journal and disposed of, one after
    another, leave no file open behind them (the journal, its database, its lock)."""

    def open_files() -> list[str]:
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                found.append(os.readlink(f"/proc/self/fd/{fd}"))
            except FileNotFoundError:
                continue  # the listing's own descriptor, closed meanwhile
        return [f for f in found if f.startswith(str(tmp_path))]

    for n in range(5):
        store = open_store(f"sqlite:///{tmp_path}/ledger.db")
        trail.journal_of(store).write([_entry(n)])
        trail.fold_trail(store)
        store.dispose()
        del store
        gc.collect()
    assert open_files() == []
