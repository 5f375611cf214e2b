"""Group commit: the appends of one process that arrive while another is being written
go into one transaction together, with one durable commit.

Each append still stands or falls alone: it runs in a savepoint of the shared
transaction, and one refused (a conflict, a rule) is rolled back to its savepoint
without touching the others. The group commits once; only then does each caller
get its positions (or its error), so no caller is told its events are in the log
before they are durable, and a failed commit fails every append of the group.

One thread leads at a time: it takes every append waiting (its own among them),
writes them in the order they arrived, commits, wakes their callers, and hands the
lead to the first append that arrived meanwhile. A lone writer leads its own group
of one: it waits for nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from registry.store import Store

#: The most appends one transaction takes (the rest wait for the next).
MAX_GROUP = 64


@dataclass
class Pending:
    """One append waiting for its group: what to write, and how it ended."""

    events: list[Any]
    first_wins: bool
    context: Any = None  # what the caller hands ``write`` besides (its span)
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # handed the lead of the next group
    positions: list[int] | None = None
    error: BaseException | None = None

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        assert self.positions is not None, "an append woken before its group ended"
        return self.positions


#: Writes one append inside the group's transaction: ``write(conn, pending)``.
Write = Callable[[Connection, Pending], list[int]]


class GroupCommit:
    """The appends of one process to ``store``, written in groups by ``write``."""

    def __init__(self, store: Store, write: Write, max_group: int = MAX_GROUP):
        self.store, self.write, self.max_group = store, write, max_group
        self._lock = threading.Lock()
        self._waiting: list[Pending] = []
        self._leading = False

    def submit(self, events: list[Any], first_wins: bool, context: Any = None) -> list[int]:
        """Append ``events`` in the next group; return their positions once durable."""
        mine = self.pending(events, first_wins, context)
        with self._lock:
            self._waiting.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            try:
                mine.wake.wait()
            except BaseException:
                self._abandon(mine)
                raise
            if not mine.lead:
                return mine.result()
        with self._lock:
            group = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
        try:
            self._commit(group)
        finally:
            with self._lock:
                self._hand_on()
            for pending in group:
                if pending is not mine:
                    pending.wake.set()
        return mine.result()

    def pending(self, events: list[Any], first_wins: bool, context: Any) -> Pending:
        """The waiting append ``submit`` makes of its arguments."""
        return Pending(events, first_wins, context)

    def _hand_on(self) -> None:
        """Give the lead to the first append waiting, or end leading (under the lock)."""
        if self._waiting:
            following = self._waiting[0]
            following.lead = True
            following.wake.set()
        else:
            self._leading = False

    def _abandon(self, mine: Pending) -> None:
        """A caller stopped waiting (interrupted): its append leaves the queue unless a
        group already took it, and a lead handed to it goes on to the next."""
        with self._lock:
            if mine in self._waiting:
                self._waiting.remove(mine)
                if mine.lead:
                    self._hand_on()

    def _commit(self, group: list[Pending]) -> None:
        """Write ``group`` in one transaction, each append in a savepoint (an append
        alone needs none: the transaction is its own); set each one's positions or
        error once the transaction has ended."""
        done: list[tuple[Pending, list[int]]] = []
        alone = len(group) == 1
        try:
            with self.store.append_transaction() as conn:
                for pending in group:
                    if alone:
                        done.append((pending, self.write(conn, pending)))
                    else:
                        self._write_in_savepoint(conn, pending, done)
        except Exception as exc:
            if alone and not done:
                # Its own write refused it; the transaction was rolled back.
                group[0].error = exc
                return
            _fail(group, exc)
            raise
        except BaseException as exc:
            _fail(group, exc)
            raise
        for pending, positions in done:
            pending.positions = positions
        written = [p for _, positions in done for p in positions]
        if written:
            self.store.grown(max(written) + 1)

    def _write_in_savepoint(
        self, conn: Connection, pending: Pending, done: list[tuple[Pending, list[int]]]
    ) -> None:
        # Plain statements: SQLAlchemy's savepoint objects compile theirs on every use.
        conn.exec_driver_sql("SAVEPOINT mlledger_append")
        try:
            positions = self.write(conn, pending)
        except Exception as exc:  # this append alone is refused
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT mlledger_append")
            conn.exec_driver_sql("RELEASE SAVEPOINT mlledger_append")
            pending.error = exc
        else:
            conn.exec_driver_sql("RELEASE SAVEPOINT mlledger_append")
            done.append((pending, positions))


def _fail(group: list[Pending], exc: BaseException) -> None:
    """The group's transaction failed: every append of it not refused already fails
    with it. The others did not stop: an interruption of the leader's thread is theirs
    as an error, not as an interruption."""
    shared = (
        exc
        if isinstance(exc, Exception)
        else RuntimeError(
            f"the append group was interrupted ({type(exc).__name__}); nothing of it was written"
        )
    )
    for pending in group:
        if pending.error is None:
            pending.error = shared
