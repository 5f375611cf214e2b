"""Lineage positions: ``lineage_nodes`` indexed by the log position that made each node.

The Neo4j graph copies the lineage projection a window of log positions at a time;
without this index each window's nodes were found by reading the whole table (about
70 ms a window at 1,000,000 nodes, however small the window).

Revision 0007, after 0006 (2026-12-06).
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_index("ix_lineage_nodes_position", "lineage_nodes", ["position"])


def downgrade() -> None:
    raise RuntimeError("0007 cannot be downgraded: the revisions before it cannot be either")
