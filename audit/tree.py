"""The Merkle trees as stored: every perfect subtree's hash, so a proof costs
O(log n) row reads at any size.

Two trees, each over the RFC 6962 leaf hashes of one append-only table:

- ``EVENTS``: the event log (``events.leaf_hash`` by ``position``), stored in
  ``merkle_nodes``. A projection of the log, kept up to date inside each append
  transaction (``MerkleTree``, below) and replayed by a rebuild.
- ``TRAIL``: the access trail (``access_trail.leaf_hash`` by ``seq``), stored in
  ``trail_merkle_nodes`` by the transaction that writes each entry
  (``audit.trail``).

A node ``(level, idx)`` is the hash of leaves ``[idx << level, (idx + 1) << level)``;
level 0 holds a copy of each leaf hash, so a leaf hash rewritten in the log table
disagrees with the tree and verification can name it. Only perfect subtrees are
stored; the hash of any other subtree (a right edge) is folded from them by
``audit.merkle``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from audit import merkle
from audit.merkle import Node
from registry.errors import FieldError, IntegrityViolation, LedgerError
from registry.events import StoredEvent
from registry.projection import Projection
from registry.store.raw import Raw, placeholders

CHUNK = 10_000


class TreeIncomplete(LedgerError):
    """The stored tree lacks a node a proof needs: it lags the log or was tampered with."""


@dataclass(frozen=True)
class TreeSpec:
    """Where one tree's leaves and nodes live."""

    name: str  # "events" or "access": the name checkpoints and proofs use
    nodes: str  # table of perfect subtree hashes
    leaves: str  # append-only table holding the leaf hashes
    index: str  # its gap-free, 0-based sequence column


EVENTS = TreeSpec("events", "merkle_nodes", "events", "position")
TRAIL = TreeSpec("access", "trail_merkle_nodes", "access_trail", "seq")
TREES: dict[str, TreeSpec] = {t.name: t for t in (EVENTS, TRAIL)}


def tree_spec(name: str) -> TreeSpec:
    """The tree called ``name``, or a clear error naming the ones there are."""
    try:
        return TREES[name]
    except KeyError:
        raise FieldError(
            "tree", f"unknown tree {name!r}: expected one of {', '.join(sorted(TREES))}"
        ) from None


class StoredTree:
    """One tree's stored subtrees, read and extended on a connection
    (a ``merkle.NodeSource``)."""

    def __init__(self, conn: Connection, spec: TreeSpec):
        self.raw = Raw(conn)
        self.spec = spec

    def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        """Hashes of the perfect subtrees ``keys``, in one query."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        by_level: dict[int, list[int]] = defaultdict(list)
        for level, idx in wanted:
            by_level[level].append(idx)
        terms, params = [], []
        for level, indexes in sorted(by_level.items()):
            terms.append(f"(level = ? AND idx IN ({placeholders(len(indexes))}))")
            params += [level, *indexes]
        found = {
            (int(level), int(idx)): bytes(value)
            for level, idx, value in self.raw.all(
                f"SELECT level, idx, hash FROM {self.spec.nodes} WHERE " + " OR ".join(terms),
                params,
            )
        }
        missing = [key for key in wanted if key not in found]
        if missing:
            level, idx = missing[0]
            raise TreeIncomplete(
                f"the stored {self.spec.name} tree has no node at level {level}, index {idx} "
                f"(leaves {idx << level} to {((idx + 1) << level) - 1}): it lags the log or "
                "was changed; `mlledger rebuild` rebuilds it, `mlledger audit verify` checks it"
            )
        return found

    def leaf_copies(self, start: int, stop: int) -> dict[int, bytes]:
        """The tree's copies of leaves ``[start, stop)`` (level 0), by index."""
        rows = self.raw.all(
            f"SELECT idx, hash FROM {self.spec.nodes} WHERE level = 0 AND idx >= ? AND idx < ?",
            (start, stop),
        )
        return {int(idx): bytes(value) for idx, value in rows}

    def size(self) -> int:
        """Leaves in the stored tree."""
        value = self.raw.scalar(f"SELECT MAX(idx) FROM {self.spec.nodes} WHERE level = 0")
        return 0 if value is None else int(value) + 1

    def append(self, first: int, leaves: Sequence[bytes]) -> None:
        """Add leaves at ``first``, ``first + 1``, ... with every subtree they complete.
        ``first`` must be the stored tree's size."""
        if not leaves:
            return
        frontier = merkle.frontier(first)
        known = self.nodes(frontier)
        new = merkle.extend(first, [known[key] for key in frontier], leaves)
        rows = [(0, first + offset, leaf) for offset, leaf in enumerate(leaves)]
        rows += [(level, idx, value) for (level, idx), value in new.items()]
        self.raw.many(f"INSERT INTO {self.spec.nodes} (level, idx, hash) VALUES (?, ?, ?)", rows)

    def root(self, size: int) -> bytes:
        """The tree head of the first ``size`` leaves."""
        return merkle.root_at(size, self)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(index, size, self)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return merkle.consistency_proof(size1, size2, self)


def leaf_count(conn: Connection, spec: TreeSpec) -> int:
    """Rows in the tree's leaf table (its highest index + 1)."""
    value = Raw(conn).scalar(f"SELECT MAX({spec.index}) FROM {spec.leaves}")
    return 0 if value is None else int(value) + 1


def stored_leaves(
    conn: Connection, spec: TreeSpec, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """``(index, stored leaf hash)`` of the leaf table with ``start <= index < stop``,
    in order, fetched in chunks."""
    raw = Raw(conn)
    sql = f"SELECT {spec.index}, leaf_hash FROM {spec.leaves} WHERE {spec.index} >= ?"
    if stop is not None:
        sql += f" AND {spec.index} < ?"
    sql += f" ORDER BY {spec.index} LIMIT {CHUNK}"
    while True:
        rows = raw.all(sql, (start,) if stop is None else (start, stop))
        for index, value in rows:
            yield int(index), bytes(value)
        if len(rows) < CHUNK:
            return
        start = int(rows[-1][0]) + 1


def rebuild_nodes(conn: Connection, spec: TreeSpec) -> int:
    """Empty the stored tree and build it again from the leaf table; return its size."""
    raw = Raw(conn)
    raw.run(f"DELETE FROM {spec.nodes}")
    tree = StoredTree(conn, spec)
    size = 0
    batch: list[bytes] = []
    for index, value in stored_leaves(conn, spec):
        if index != size + len(batch):
            raise IntegrityViolation(
                f"the {spec.leaves} table has no row at {spec.index} {size + len(batch)}: "
                "the tree cannot be built over a gap"
            )
        batch.append(value)
        if len(batch) == CHUNK:
            tree.append(size, batch)
            size += len(batch)
            batch = []
    tree.append(size, batch)
    return size + len(batch)


class MerkleTree(Projection):
    """The events' Merkle tree as a projection of the log: each append adds its leaves
    in the same transaction, and a rebuild replays them."""

    name = "merkle"
    tables = ("merkle_nodes",)

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        StoredTree(conn, EVENTS).append(events[0].position, [e.leaf_hash for e in events])


#: The projections this layer owns (``registry.assembly`` hands them to the ledger).
PROJECTIONS: tuple[Projection, ...] = (MerkleTree(),)
