"""${message}

Revision ${up_revision}, after ${down_revision | comma,n} (${create_date}).
"""

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
# Shared helpers (columns, append-only triggers): ``from migrations.ops import ...``.
# They are frozen; never import the application here (see migrations/ops.py).

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
% if branch_labels:
branch_labels = ${repr(branch_labels)}
% endif
% if depends_on:
depends_on = ${repr(depends_on)}
% endif


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
