"""Access: API keys with per-project roles, and the append-only access trail.

Revision 0002, after 0001 (2026-11-29).
"""

import sqlalchemy as sa
from alembic import op

from migrations.ops import STAMP, append_only, big_key, project, refusal_function, string

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        string("key_id", 16, primary_key=True),
        project(nullable=False),
        string("role", 16, nullable=False),
        string("name", nullable=True),
        string("secret_hash", 64, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        string("created_by", nullable=False),
        sa.Column("revoked_at", STAMP, nullable=True),
        string("revoked_by", nullable=True),
    )
    op.create_index("ix_api_keys_project", "api_keys", ["project"])
    op.create_table(
        "access_trail",
        big_key("seq"),
        sa.Column("at", STAMP, nullable=False),
        string("actor", nullable=False),
        project(nullable=True),
        string("action", 64, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        string("source", nullable=False),
        string("outcome", 8, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        string("trace_id", 64, nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_access_trail_project", "access_trail", ["project", "seq"])

    # The trail refuses UPDATE and DELETE, whoever asks, as the log does. 0001's function
    # names the event log in its message, so the trail gets its own.
    refusal_function("mlledger_refuse_trail_change", "the access trail is append-only")
    append_only(
        "access_trail", "the access trail is append-only", function="mlledger_refuse_trail_change"
    )


def downgrade() -> None:
    raise RuntimeError("the access trail cannot be downgraded: it is append-only")
