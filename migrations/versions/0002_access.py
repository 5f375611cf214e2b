"""Access: API keys with per-project roles, and the append-only access trail.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S27 = sa.String(27)


def _id(name: str, length: int = 300, **kw):  # type: ignore[no-untyped-def]
    return sa.Column(name, sa.String(length), **kw)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        _id("key_id", 16, primary_key=True),
        _id("project", 128, nullable=False),
        _id("role", 16, nullable=False),
        _id("name", nullable=True),
        _id("secret_hash", 64, nullable=False),
        sa.Column("created_at", S27, nullable=False),
        _id("created_by", nullable=False),
        sa.Column("revoked_at", S27, nullable=True),
        _id("revoked_by", nullable=True),
    )
    op.create_index("ix_api_keys_project", "api_keys", ["project"])
    op.create_table(
        "access_trail",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", S27, nullable=False),
        _id("actor", nullable=False),
        _id("project", 128, nullable=True),
        _id("action", 64, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        _id("source", nullable=False),
        _id("outcome", 8, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _id("trace_id", 64, nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_access_trail_project", "access_trail", ["project", "seq"])

    # The trail refuses UPDATE and DELETE, whoever asks, as the log does. 0001's function
    # names the event log in its message, so the trail gets its own.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION mlledger_refuse_trail_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'mlledger: % refused on %: the access trail is append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = '55000';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER access_trail_append_only BEFORE UPDATE OR DELETE ON access_trail "
            "FOR EACH ROW EXECUTE FUNCTION mlledger_refuse_trail_change()"
        )
        op.execute(
            "CREATE TRIGGER access_trail_no_truncate BEFORE TRUNCATE ON access_trail "
            "FOR EACH STATEMENT EXECUTE FUNCTION mlledger_refuse_trail_change()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER access_trail_no_{verb.lower()} BEFORE {verb} ON access_trail "
                f"BEGIN SELECT RAISE(ABORT, 'mlledger: {verb} refused on access_trail: "
                "the access trail is append-only'); END"
            )


def downgrade() -> None:
    raise RuntimeError("the access trail cannot be downgraded: it is append-only")
