"""Prediction days: predictions per deployment, model version and day (UTC).

A projection table of the prediction index (``lineage.projections.PredictionIndex``),
kept in the append transaction like ``prediction_counts``: the web interface's model
version and deployment pages chart predictions per day from it without counting the
index's rows (a million predictions counted per view took over a second). Filled here
from the prediction index of a ledger upgraded in place; a row an erasure redacted
before the upgrade is not in the index, so it is counted per day only after a rebuild
of the projection (``mlledger rebuild``), as ``prediction_counts`` counts it.

Revision 0010, after 0009 (2026-12-06).
"""

import sqlalchemy as sa
from alembic import op

from migrations.ops import string

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "prediction_days",
        string("deployment", primary_key=True),
        string("model", primary_key=True),
        string("day", 10, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO prediction_days (deployment, model, day, n) "
        "SELECT deployment, model, SUBSTR(at, 1, 10), COUNT(*) FROM prediction_index "
        "GROUP BY deployment, model, SUBSTR(at, 1, 10)"
    )


def downgrade() -> None:
    raise RuntimeError("0010 cannot be downgraded: the revisions before it cannot be either")
