"""Leaf hashes recomputed from what is stored, for verification and checkpoints.

An event's leaf is SHA-256(0x00 || RFC 8785 JSON of its hashed form), a trail
entry's the same over its fields. Recomputing them from the stored columns, and
comparing with the stored ``leaf_hash`` and the tree's copy, shows any column
edited, any row renumbered and any leaf hash rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection

from audit import merkle
from audit.trail import TRAIL_FIELDS
from audit.tree import EVENTS, TRAIL, TreeSpec
from registry.canonical import LEAF_PREFIX, NODE_PREFIX, canonical_text
from registry.events import canonical_event
from registry.store.raw import Raw

CHUNK = 10_000

_EVENT_COLUMNS = (
    "position, event_id, type, schema_version, project, entity, actor, occurred_at, "
    "recorded_at, body, personal_refs, trace_id, leaf_hash"
)


class Leaf(NamedTuple):
    """One stored leaf: its number (position or seq), the hash stored beside it, the
    hash of its content (None when the content cannot be read back), and the event's
    type and body text (events only).

    For an event an erasure redacted, ``redacted`` holds the erasure's position and
    ``computed`` is the stored hash when the content hashes to what that erasure
    declared (the original content is gone; the tree and checkpoints vouch for the
    stored hash), else the content's own hash, which then differs from it."""

    number: int
    stored: bytes
    computed: bytes | None
    type: str | None = None
    body: str | None = None
    redacted: int | None = None


class Redaction(NamedTuple):
    """The latest redaction of one event: the erasure's position, the hash the redacted
    content has, and the rewritten payload's digest (None: payload not rewritten)."""

    erased_pos: int
    leaf: bytes
    payload_digest: str | None


def redactions(conn: Connection, start: int = 0, stop: int | None = None) -> dict[int, Redaction]:
    """The latest redaction of each redacted event with ``start <= position < stop``."""
    sql = "SELECT position, erased_pos, leaf, payload_digest FROM redactions WHERE position >= ?"
    params: tuple[int, ...] = (start,)
    if stop is not None:
        sql += " AND position < ?"
        params = (start, stop)
    found: dict[int, Redaction] = {}
    for position, erased_pos, leaf, digest in Raw(conn).all(sql + " ORDER BY erased_pos", params):
        found[int(position)] = Redaction(int(erased_pos), bytes(leaf), digest)
    return found


class CompactRange:
    """The perfect subtrees of a growing tree, largest first: O(log n) memory to
    stream leaves and take the root at any size on the way.

    Only the hashes are kept: the subtree levels are the binary digits of ``size``,
    largest first, so a push merges one node per trailing 1-bit of the size."""

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None):
        hashes = hashes or []
        if len(hashes) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} frontier hashes")
        self.size = size
        self._hashes = list(hashes)

    def push(self, leaf: bytes) -> None:
        self.push_subtree(0, leaf)

    def push_subtree(self, level: int, value: bytes) -> None:
        """Add the perfect subtree of ``2**level`` leaves whose hash is ``value``.

        Requires ``size`` to be a multiple of ``2**level`` (the subtree starts on its
        own boundary, as the ranges a verification splits the leaves into do)."""
        if self.size & ((1 << level) - 1):
            raise ValueError(
                f"a subtree of {1 << level} leaves cannot follow {self.size} leaves: "
                f"expected a multiple of {1 << level}"
            )
        hashes, sha = self._hashes, hashlib.sha256
        carry = self.size >> level
        while carry & 1:
            value = sha(NODE_PREFIX + hashes.pop() + value).digest()
            carry >>= 1
        hashes.append(value)
        self.size += 1 << level

    def extend(self, leaves: Sequence[bytes]) -> None:
        """Push ``leaves`` in order: as whole perfect subtrees where they can be (their
        hashes level by level, ``merkle.root_hash``), which costs less than one push each."""
        done, count = 0, len(leaves)
        while done < count:
            size = self.size
            length = 1 << ((count - done).bit_length() - 1)
            if size:
                length = min(length, size & -size)  # what may follow the smallest subtree
            block = leaves[done : done + length]
            self.push_subtree(length.bit_length() - 1, merkle.root_hash(block))
            done += length

    def hashes(self) -> list[bytes]:
        """The frontier's hashes, largest subtree first (``merkle.frontier(size)``'s nodes)."""
        return list(self._hashes)

    def root(self) -> bytes:
        return merkle.fold(self._hashes)


def _event_entry(row: Sequence[Any]) -> bytes:
    """The leaf data of an event row (``_EVENT_COLUMNS``: the envelope and body, then
    ``personal_refs``, ``trace_id`` and ``leaf_hash``)."""
    refs = row[10]
    parsed = () if refs == "[]" else tuple(json.loads(refs))
    position, event_id, type_, version, project, entity, actor, occurred, recorded, body = row[:10]
    return canonical_event(
        position, event_id, type_, version, project, entity, actor, occurred, recorded, body,
        parsed, row[11],
    )  # fmt: skip


def _trail_entry(row: Sequence[Any]) -> bytes:
    """The leaf data of a trail row (``TRAIL_FIELDS`` then ``leaf_hash``)."""
    text, _ = canonical_text(dict(zip(TRAIL_FIELDS, row[: len(TRAIL_FIELDS)], strict=True)))
    return text.encode("utf-8")


def _select(spec: TreeSpec) -> tuple[str, Callable[[Sequence[Any]], bytes]]:
    if spec == EVENTS:
        return f"SELECT {_EVENT_COLUMNS} FROM events", _event_entry
    if spec == TRAIL:
        return f"SELECT {', '.join(TRAIL_FIELDS)}, leaf_hash FROM access_trail", _trail_entry
    raise ValueError(f"no leaves for tree {spec.name!r}")


def leaves(
    conn: Connection, spec: TreeSpec, start: int = 0, stop: int | None = None
) -> Iterator[Leaf]:
    """The stored leaves of tree ``spec`` with ``start <= index < stop``, in order,
    fetched in chunks, each with its hash recomputed from its content."""
    select, entry = _select(spec)
    events = spec == EVENTS
    sql = f"{select} WHERE {spec.index} >= ?"
    if stop is not None:
        sql += f" AND {spec.index} < ?"
    sql += f" ORDER BY {spec.index} LIMIT {CHUNK}"
    raw = Raw(conn)
    sha = hashlib.sha256
    # A million leaves go through here: tuple.__new__ skips the named tuple's
    # constructor, a Python function, which costs more than the tuple itself.
    make = tuple.__new__
    while True:
        rows = raw.all(sql, (start,) if stop is None else (start, stop))
        redacted = redactions(conn, start, int(rows[-1][0]) + 1) if events and rows else {}
        for row in rows:
            number, stored = int(row[0]), bytes(row[-1])
            try:
                computed: bytes | None = sha(LEAF_PREFIX + entry(row)).digest()
            except (TypeError, ValueError, AttributeError):
                computed = None
            if not events:
                yield make(Leaf, (number, stored, computed, None, None, None))
                continue
            redaction = redacted.get(number) if redacted else None
            if redaction is None:
                yield make(Leaf, (number, stored, computed, row[2], row[9], None))
                continue
            if computed == redaction.leaf:
                computed = stored
            yield Leaf(number, stored, computed, row[2], row[9], redaction.erased_pos)
        if len(rows) < CHUNK:
            return
        start = int(rows[-1][0]) + 1


def entry(conn: Connection, spec: TreeSpec, index: int) -> tuple[bytes, bytes] | None:
    """The leaf data of leaf ``index`` as stored (for a redacted event, its redacted
    content), and its stored leaf hash; None if absent."""
    select, make = _select(spec)
    row = Raw(conn).one(f"{select} WHERE {spec.index} = ?", (index,))
    return None if row is None else (make(row), bytes(row[-1]))
