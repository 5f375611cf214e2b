"""Projections: deterministic functions of the log, each with a tracking position.

Every projection applies events in position order and records the last position it
applied in ``projection_tracking`` *in the same transaction* as its update, so each
event is applied exactly once, however the runner stops. ``ProjectionRunner.catch_up``
brings every projection to the head of the log; the ledger runs it inside each append
transaction (read-your-writes), and ``rebuild`` empties the tables and replays the
whole log.

This is the interface only. The projections themselves belong to the layers that own
their tables (``lineage.projections``: catalogue, indexes, lineage edges, erasures;
``audit.tree``: the Merkle tree) and are handed to the ledger by
``registry.assembly``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, delete, select

from registry.events import CATALOGUE, StoredEvent, upcast
from registry.store.base import Store
from registry.store.raw import Raw
from registry.store.schema import PROJECTION_TABLES, T
from registry.tracing import span

BATCH = 2_000


class Projection:
    """A named view of the log: the tables it owns, and how it applies events."""

    name: str = ""
    tables: tuple[str, ...] = ()

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Apply ``events`` (contiguous, in position order, upcast to their current
        schema) inside the caller's transaction."""
        raise NotImplementedError

    def reset(self, conn: Connection) -> None:
        """Empty the projection's tables before a replay (inside the caller's
        transaction); a projection keeping state about its tables outside them (a
        generation its readers cache by) says so here too."""
        for table in self.tables:
            conn.execute(delete(T[table]))


class ProjectionRunner:
    """Keeps every projection at the head of the log, exactly once."""

    def __init__(self, projections: Sequence[Projection]):
        self.projections = tuple(projections)

    def positions(self, conn: Connection) -> dict[str, int]:
        """Tracking position of each projection (-1: nothing applied)."""
        stored = dict(Raw(conn).all("SELECT name, position FROM projection_tracking"))
        return {p.name: int(stored.get(p.name, -1)) for p in self.projections}

    def apply(
        self,
        conn: Connection,
        events: Sequence[StoredEvent],
        positions: dict[str, int] | None = None,
    ) -> dict[str, int]:
        """Apply events (contiguous, in order) to every projection not past them, and
        track how far each got, in the caller's transaction; return the new positions."""
        if positions is None:
            positions = self.positions(conn)
        if not events:
            return positions
        raw = Raw(conn)
        # A projection has a tracking row once it has applied an event, and only then.
        known = {name for name, position in positions.items() if position >= 0}
        events = [_current(e) for e in events]
        moved = dict(positions)
        for projection in self.projections:
            todo = [e for e in events if e.position > positions[projection.name]]
            if todo:
                with span(
                    "projection.apply",
                    **{"mlledger.projection": projection.name, "mlledger.events": len(todo)},
                ):
                    projection.apply(conn, todo)
                moved[projection.name] = todo[-1].position
        raw.many(
            "UPDATE projection_tracking SET position = ? WHERE name = ?",
            [(moved[n], n) for n in sorted(known) if n in moved and moved[n] != positions[n]],
        )
        raw.many(
            "INSERT INTO projection_tracking (name, position) VALUES (?, ?)",
            [(n, moved[n]) for n in sorted(moved) if n not in known and moved[n] >= 0],
        )
        return moved

    def catch_up(self, conn: Connection, head: int, positions: dict[str, int] | None = None) -> int:
        """Apply every event up to ``head`` not yet applied; return how many were read."""
        if positions is None:
            positions = self.positions(conn)
        start = min(positions.values(), default=head) + 1
        read = 0
        with span("projection.catch_up", **{"mlledger.from_position": start}) as current:
            while start <= head:
                events = Store.select_events(conn, start, limit=BATCH, stop=head + 1)
                if not events:
                    break
                positions = self.apply(conn, events, positions)
                read += len(events)
                start = events[-1].position + 1
            current.set_attribute("mlledger.events", read)
        return read

    def reset(self, conn: Connection) -> None:
        """Empty every projection table and forget the tracking positions."""
        for projection in self.projections:
            projection.reset(conn)
        conn.execute(delete(T["projection_tracking"]))

    def rebuild(self, conn: Connection, head: int) -> int:
        """Empty every projection and replay the log up to ``head``; return events read.

        Secondary indexes are dropped during the replay and built again after
        it: one sort is much cheaper than a million random index inserts.
        """
        with span("projection.rebuild", **{"mlledger.head": head}) as current:
            self.reset(conn)
            indexes = [
                index
                for projection in self.projections
                for name in projection.tables
                for index in T[name].indexes
            ]
            for index in indexes:
                index.drop(conn)
            replayed = self.catch_up(conn, head)
            for index in indexes:
                index.create(conn)
            current.set_attribute("mlledger.events", replayed)
        return replayed


def _current(event: StoredEvent) -> StoredEvent:
    """The event with its body upcast to the current schema version."""
    if event.schema_version == CATALOGUE[event.type].schema_version:
        return event
    return replace(event, body=upcast(event.type, event.schema_version, event.body))


def projection_digest(conn: Connection) -> str:
    """SHA-256 over every projection row in a fixed order: equal digests, equal state."""
    digest = hashlib.sha256()
    for name, order in PROJECTION_TABLES.items():
        table = T[name]
        digest.update(name.encode() + b"\x00")
        columns = sorted(table.c.keys())
        query = select(*[table.c[c] for c in columns]).order_by(*[table.c[c] for c in order])
        for row in conn.execute(query):
            digest.update("\x1f".join(map(_plain, row)).encode())
            digest.update(b"\n")
    tracking = T["projection_tracking"]
    for name, position in conn.execute(
        select(tracking.c.name, tracking.c.position).order_by(tracking.c.name)
    ):
        digest.update(f"{name}={position}\n".encode())
    return digest.hexdigest()


def _plain(value: Any) -> str:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return "\x00" if value is None else str(value)
