"""Web sessions: the signed-in sessions of the web interface.

A browser signs in with an API key and receives an opaque random session token in a
cookie; the table keeps only the token's SHA-256 (``token_hash``), the key it acts
for (``key_id``, ``project``), when it began (``created_at``), when it was last used
(``seen_at``, for the idle limit) and when it ends whatever happens
(``expires_at``, the absolute limit). A row is deleted when its session ends
(sign-out, expiry): a session is a credential, not a record; the access trail keeps
what each one did.

Revision 0009, after 0008 (2026-12-06).
"""

import sqlalchemy as sa
from alembic import op

from migrations.ops import STAMP, project, string

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        string("token_hash", 64, primary_key=True),
        string("key_id", 16, nullable=False),
        project(nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("seen_at", STAMP, nullable=False),
        sa.Column("expires_at", STAMP, nullable=False),
    )
    op.create_index("ix_web_sessions_key", "web_sessions", ["key_id"])
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires_at"])


def downgrade() -> None:
    raise RuntimeError("0009 cannot be downgraded: the revisions before it cannot be either")
