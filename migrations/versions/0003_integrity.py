"""Integrity: the Merkle trees' stored subtrees and the signed checkpoints.

``merkle_nodes`` (the events' tree) is a projection: it starts empty and the
projection runner fills it from the log. ``trail_merkle_nodes`` is written with
each access-trail entry, so this revision builds it for the entries already
there. ``checkpoints`` is append-only, like the log.

The trail's tree is built here with code of its own (RFC 6962 node hashes over
the stored leaf hashes, every perfect subtree stored), not the application's, so
later changes to the application cannot change what this revision does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _nodes(name: str) -> None:
    op.create_table(
        name,
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _nodes("merkle_nodes")
    _nodes("trail_merkle_nodes")
    op.create_table(
        "checkpoints",
        sa.Column("tree", sa.String(16), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("tree_size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at", sa.String(27), nullable=False),
    )

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION mlledger_refuse_checkpoint_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'mlledger: % refused on %: checkpoints are append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = '55000';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints "
            "FOR EACH ROW EXECUTE FUNCTION mlledger_refuse_checkpoint_change()"
        )
        op.execute(
            "CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints "
            "FOR EACH STATEMENT EXECUTE FUNCTION mlledger_refuse_checkpoint_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER checkpoints_no_{verb.lower()} BEFORE {verb} ON checkpoints "
                f"BEGIN SELECT RAISE(ABORT, 'mlledger: {verb} refused on checkpoints: "
                "checkpoints are append-only'); END"
            )

    # The trail's tree, for the entries recorded before this revision.
    _build_trail_tree(bind)


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
