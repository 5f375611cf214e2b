"""Prediction filters: a Bloom filter per epoch of the prediction index.

A lookup by record sought every epoch of the prediction index (200 index seeks at
10,000,000 predictions); with a filter of the (project, record) keys each epoch holds,
it seeks only the epochs that may hold the record. ``prediction_filters`` holds one
filter per epoch; ``prediction_filter_state`` one row: the generation the filters
were written in (a process caches them until it changes) and how many of the first
epochs still lack one.

The filters' layout is the application's (``lineage.prediction_filters``), which a
revision may not import: this one creates the tables empty and counts every epoch
already indexed as unfiltered. Until its filter is written, an epoch is sought by
every lookup, as before; each later batch of predictions writes one of them (and
``mlledger rebuild`` writes them all).

Revision 0008, after 0007 (2026-12-06).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "prediction_filters",
        sa.Column("epoch", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("bits", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "prediction_filter_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("unfiltered", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO prediction_filter_state (id, generation, unfiltered) "
        "SELECT 1, 0, COALESCE(MAX(epoch) + 1, 0) FROM prediction_index"
    )


def downgrade() -> None:
    raise RuntimeError("0008 cannot be downgraded: the revisions before it cannot be either")
