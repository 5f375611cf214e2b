"""Group commit (``registry.groupcommit``) on a real SQLite ledger: appends of one
process arriving together share a transaction, each standing or falling alone; no
caller hears of its positions before the group has committed; an interrupted caller
or leader leaves the others able to append."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.assembly import open_ledger
from registry.errors import Conflict
from registry.events import make_event
from registry.groupcommit import GroupCommit, Pending
from registry.ledger import Ledger

P = "grouped"


@pytest.fixture
def ledger(tmp_path: Path, isolated_env: Path) -> Iterator[Ledger]:
    opened = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    yield opened
    opened.close()


@pytest.fixture
def any_ledger(store_url: str, isolated_env: Path) -> Iterator[Ledger]:
    """A ledger on each store (SQLite, PostgreSQL)."""
    opened = open_ledger(store_url)
    yield opened
    opened.close()


def _event(i: int, body: dict[str, Any] | None = None) -> Any:
    return make_event(
        "dataset-version-registered",
        entity=f"dataset:{P}/d{i}@1",
        body=body
        or {"name": f"d{i}", "version": "1", "uri": f"s3://d/{i}", "digest": f"sha256:{i:064x}"},
        project=P,
        actor="tester",
        event_id=f"00000000-0000-4000-8000-{i:012x}",
    )


def test_concurrent_appends_stand_or_fall_alone(any_ledger: Ledger) -> None:
    """Eight threads, every fifth append a conflicting retry: the others are all
    written, gap-free, and each conflict is refused without touching its group (rolled
    back to its savepoint, on either store)."""
    ledger = any_ledger
    ledger.append([_event(i) for i in range(0, 256, 5)])  # the ids the conflicts reuse
    head = ledger.head()
    results: dict[int, list[int]] = {}
    refused: list[int] = []
    lock = threading.Lock()

    def writer(start: int) -> None:
        for i in range(start, 256, 8):
            clash = i % 5 == 0
            body = {"name": f"d{i}", "version": "1", "uri": "s3://other", "digest": "sha256:00"}
            try:
                positions = ledger.append([_event(i, body if clash else None)])
            except Conflict:
                with lock:
                    refused.append(i)
            else:
                with lock:
                    results[i] = positions

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(refused) == list(range(0, 256, 5))
    appended = ledger.read(head + 1)
    assert [e.position for e in appended] == list(range(head + 1, head + 1 + len(results)))
    assert {e.entity for e in appended} == {f"dataset:{P}/d{i}@1" for i in results}
    assert all(e.type == "dataset-version-registered" for e in appended)
    assert sorted(p for positions in results.values() for p in positions) == [
        e.position for e in appended
    ]


class _Slow(GroupCommit):
    """Group commit whose first write waits until released: the next submits queue."""

    def __init__(self, ledger: Ledger, interrupt: set[int]):
        self.release, self.started, self.interrupt = threading.Event(), threading.Event(), interrupt
        self.calls = 0
        super().__init__(ledger.store, self._write)
        self.ledger = ledger

    def _write(self, conn: Any, pending: Pending) -> list[int]:
        self.calls += 1
        if self.calls == 1:
            self.started.set()
            self.release.wait(10)
        return self.ledger._locked(conn, pending.events, pending.context, pending.first_wins)

    def pending(self, events: list[Any], first_wins: bool, context: Any) -> Pending:
        made = super().pending(events, first_wins, context)
        if int(events[0].entity.split("/d")[1].split("@")[0]) in self.interrupt:
            made.wake = _Interrupting()
        return made


class _Interrupting(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        raise KeyboardInterrupt


def _submit(group: GroupCommit, i: int) -> list[int]:
    from opentelemetry.trace import INVALID_SPAN

    return group.submit([_event(i)], False, INVALID_SPAN)


def test_an_interrupted_waiter_leaves_the_others_appending(ledger: Ledger) -> None:
    group = _Slow(ledger, interrupt={2})
    first = threading.Thread(target=_submit, args=(group, 1))
    first.start()
    assert group.started.wait(10)
    with pytest.raises(KeyboardInterrupt):
        _submit(group, 2)  # queued behind the first, then interrupted
    group.release.set()
    first.join(10)
    # The next append is not left waiting for a lead handed to nobody.
    done: list[list[int]] = []
    later = threading.Thread(target=lambda: done.append(_submit(group, 3)))
    later.start()
    later.join(10)
    assert done, "an append after an interrupted one never returned"
    assert {e.entity for e in ledger.read(0)} == {f"dataset:{P}/d1@1", f"dataset:{P}/d3@1"}


class _Failing:
    """A store whose transaction fails when it commits."""

    def __init__(self, store: Any):
        self.store = store

    def append_transaction(self) -> Any:
        store = self.store

        class Transaction:
            def __enter__(self) -> Any:
                self.inner = store.append_transaction()
                return self.inner.__enter__()

            def __exit__(self, *exc: Any) -> bool:
                self.inner.__exit__(RuntimeError, RuntimeError("disk full"), None)
                raise OSError("disk full at commit")

        return Transaction()

    def grown(self, size: int) -> None:
        raise AssertionError("nothing was written")


def test_a_failed_commit_fails_every_append_of_the_group(ledger: Ledger) -> None:
    group = GroupCommit(
        _Failing(ledger.store),  # type: ignore[arg-type]
        lambda conn, p: ledger._locked(conn, p.events, p.context, p.first_wins),
    )
    with pytest.raises(OSError, match="disk full"):
        _submit(group, 1)
    # The event was written inside the transaction, and rolled back with it.
    assert ledger.head() == -1


def test_an_interrupted_leader_is_an_error_to_the_others(ledger: Ledger) -> None:
    hold = threading.Event()
    entered = threading.Event()
    calls = {"n": 0}

    def write(conn: Any, pending: Pending) -> list[int]:
        calls["n"] += 1
        if calls["n"] == 1:
            entered.set()
            hold.wait(10)
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the leader's thread stops mid-group
        return [0]

    group = GroupCommit(ledger.store, write)
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            _submit(group, i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in (1, 2, 3)]
    threads[0].start()
    assert entered.wait(10)
    threads[1].start()
    threads[2].start()
    while len(group._waiting) < 2:
        threading.Event().wait(0.01)
    hold.set()
    for thread in threads:
        thread.join(10)
    assert sorted(type(e).__name__ for e in errors) == ["KeyboardInterrupt", "RuntimeError"]
    assert "interrupted" in str(next(e for e in errors if isinstance(e, RuntimeError)))


def test_sqlite_writers_queue_on_a_private_lock_file_with_a_bound(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the writer lock file (an open file description of its
    own stands for one) makes a writer fail as SQLite's lock would, once the busy
    timeout has passed; the file is its owner's alone."""
    import fcntl
    import os

    from sqlalchemy.exc import OperationalError

    from registry.store import sqlite

    ledger.append([_event(1)])
    lock = Path(f"{ledger.store.path}-writer.lock")
    assert lock.stat().st_mode & 0o777 == 0o600
    monkeypatch.setattr(sqlite, "BUSY_TIMEOUT_MS", 200)
    other = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(OperationalError, match="database is locked"):
            ledger.append([_event(2)])
    finally:
        os.close(other)
    assert [e.entity for e in ledger.read(0)] == [f"dataset:{P}/d1@1"]
    ledger.append([_event(3)])  # released: writers go on
    assert ledger.head() == 1


def test_closing_the_writer_queue_waits_for_the_append_holding_it(ledger: Ledger) -> None:
    """A store disposed of (its writer queue closed) while an append holds the queue
    waits for it: the append is answered with its positions, never with an error
    after its commit."""
    ledger.append([_event(0)])
    head = ledger.head()
    real = ledger._locked
    inside, go = threading.Event(), threading.Event()

    def slow(*args: Any, **kwargs: Any) -> list[int]:
        positions = real(*args, **kwargs)
        inside.set()
        assert go.wait(30)
        return positions

    ledger._group.write = lambda conn, p: slow(conn, p.events, p.context, p.first_wins)
    answered: list[Any] = []
    writer = threading.Thread(target=lambda: answered.append(ledger.append([_event(1)])))
    writer.start()
    assert inside.wait(30)
    closer = threading.Thread(target=ledger.store._queue.close)  # type: ignore[attr-defined]
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "the queue was closed under the append holding it"
    go.set()
    writer.join(30)
    closer.join(30)
    assert answered == [[head + 1]]
    assert [e.entity for e in ledger.read(head + 1)] == [f"dataset:{P}/d1@1"]
