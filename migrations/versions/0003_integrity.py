"""Integrity: the Merkle trees' stored subtrees and the signed checkpoints.

``merkle_nodes`` (the events' tree) is a projection: it starts empty and the
projection runner fills it from the log. ``trail_merkle_nodes`` is written with
each access-trail entry, so this revision builds it for the entries already
there. ``checkpoints`` is append-only, like the log.

The trail's tree is built here with code of its own (RFC 6962 node hashes over
the stored leaf hashes, every perfect subtree stored), not the application's, so
later changes to the application cannot change what this revision does.

Revision 0003, after 0002 (2026-12-06).
"""

import hashlib

import sqlalchemy as sa
from alembic import op

from migrations.ops import STAMP, append_only, big_key, refusal_function

revision = "0003"
down_revision = "0002"


def _nodes(name: str) -> None:
    op.create_table(
        name,
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        big_key("idx"),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _nodes("merkle_nodes")
    _nodes("trail_merkle_nodes")
    op.create_table(
        "checkpoints",
        sa.Column("tree", sa.String(16), primary_key=True),
        big_key("seq"),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at", STAMP, nullable=False),
    )

    refusal_function("mlledger_refuse_checkpoint_change", "checkpoints are append-only")
    append_only(
        "checkpoints", "checkpoints are append-only", function="mlledger_refuse_checkpoint_change"
    )

    # The trail's tree, for the entries recorded before this revision.
    _build_trail_tree(op.get_bind())


_CHUNK = 10_000
_INSERT = sa.text("INSERT INTO trail_merkle_nodes (level, idx, hash) VALUES (:level, :idx, :hash)")


def _build_trail_tree(bind: sa.Connection) -> None:
    """Store every perfect subtree of the access trail's leaf hashes (in ``seq`` order)
    in ``trail_merkle_nodes``: level 0 a copy of each leaf, and a node ``(level, idx)``
    the hash ``SHA-256(0x01 || left || right)`` of its two children. Refuse a gap in
    ``seq``: no tree can be built over it."""
    # (level, idx, hash) of the perfect subtrees not yet paired, largest first.
    pending: list[tuple[int, int, bytes]] = []
    rows: list[dict[str, object]] = []
    trail = bind.execute(sa.text("SELECT seq, leaf_hash FROM access_trail ORDER BY seq"))
    for expected, (seq, leaf) in enumerate(trail):
        if int(seq) != expected:
            raise RuntimeError(
                f"the access_trail table has no row at seq {expected}: "
                "the tree cannot be built over a gap"
            )
        node = (0, expected, bytes(leaf))
        rows.append({"level": 0, "idx": expected, "hash": node[2]})
        while pending and pending[-1][0] == node[0]:
            level, idx, left = pending.pop()
            node = (level + 1, idx // 2, hashlib.sha256(b"\x01" + left + node[2]).digest())
            rows.append({"level": node[0], "idx": node[1], "hash": node[2]})
        pending.append(node)
        if len(rows) >= _CHUNK:
            bind.execute(_INSERT, rows)
            rows = []
    if rows:
        bind.execute(_INSERT, rows)


def downgrade() -> None:
    raise RuntimeError("checkpoints cannot be downgraded: they are append-only")
