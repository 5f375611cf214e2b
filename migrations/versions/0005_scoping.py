"""Project scoping: event ids and vault entry ids are unique per project, and grants.

- ``events.event_id`` was unique across the whole log, so one project's writer
  could learn whether an id existed in another project, or take an id another
  project was about to use. It is now unique per project (the idempotency key of
  that project's writes).
- ``vault_entries`` is keyed by (project, entry): an entry id is the event id of
  the ``subject-data-stored`` event that stored it.
- ``project_grants`` (a projection of ``project-access-granted`` and
  ``project-access-revoked``) records which project lets which other project use
  and read its dataset and model versions. No grant event predates this revision,
  so the catalogue's tracking position stands.
- The access trail gets its own commit path (``audit.trail``): entries are made
  durable in a journal without the log's append lock and folded into
  ``access_trail`` later. ``trail_pending`` is that journal on PostgreSQL (SQLite
  keeps it in a file of its own: one SQLite file has one writer), and
  ``trail_folded`` records how far each SQLite journal was folded.

SQLite cannot drop a column's UNIQUE constraint or change a primary key in place:
those two tables are rebuilt (copied, dropped, renamed) and their indexes and
triggers re-created from the definitions SQLite kept.

Revision 0005, after 0004 (2026-12-05).
"""

import re
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from migrations.ops import STAMP, big_key, is_postgresql, project, string

revision = "0005"
down_revision = "0004"


def _sqlite_rebuild(table: str, edit: Callable[[str], str]) -> None:
    """Rebuild ``table`` with ``edit`` applied to its CREATE TABLE statement, keeping its
    rows, indexes and triggers."""
    bind = op.get_bind()
    create = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    extras = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
            "AND sql IS NOT NULL ORDER BY type, name",
            (table,),
        )
    ]
    staged = f"{table}__0005"
    new = edit(create)
    if new == create:
        raise RuntimeError(f"migration 0005: the definition of {table} is not the expected one")
    head = re.match(r'\s*CREATE TABLE\s+("?)' + re.escape(table) + r"\1", new)
    if head is None:
        raise RuntimeError(f"migration 0005: cannot read the definition of {table}")
    op.execute(f'CREATE TABLE "{staged}"' + new[head.end() :])
    op.execute(f'INSERT INTO "{staged}" SELECT * FROM "{table}"')
    # DROP TABLE fires no DELETE trigger; the table's own indexes and triggers go with it.
    op.execute(f'DROP TABLE "{table}"')
    op.execute(f'ALTER TABLE "{staged}" RENAME TO "{table}"')
    for statement in extras:
        op.execute(statement)


def _without_event_id_unique(create: str) -> str:
    return re.sub(r",\s*UNIQUE\s*\(\s*event_id\s*\)", "", create)


def _vault_key(create: str) -> str:
    return re.sub(r"PRIMARY KEY\s*\(\s*entry\s*\)", "PRIMARY KEY (project, entry)", create)


def upgrade() -> None:
    if is_postgresql():
        inspector = sa.inspect(op.get_bind())
        for constraint in inspector.get_unique_constraints("events"):
            if constraint["column_names"] == ["event_id"]:
                op.execute(f'ALTER TABLE events DROP CONSTRAINT "{constraint["name"]}"')
        key = inspector.get_pk_constraint("vault_entries")["name"]
        op.execute(f'ALTER TABLE vault_entries DROP CONSTRAINT "{key}"')
        op.execute("ALTER TABLE vault_entries ADD PRIMARY KEY (project, entry)")
    else:
        _sqlite_rebuild("events", _without_event_id_unique)
        _sqlite_rebuild("vault_entries", _vault_key)
    op.create_index("uq_events_project_event_id", "events", ["project", "event_id"], unique=True)
    op.create_table(
        "project_grants",
        project(primary_key=True),
        string("grantee", 128, primary_key=True),
        big_key("granted_pos"),
        string("granted_by", nullable=False),
        sa.Column("granted_at", STAMP, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("revoked_pos", sa.BigInteger, nullable=True),
        string("revoked_by", nullable=True),
        sa.Column("revoked_at", STAMP, nullable=True),
    )
    op.create_table(
        "trail_pending",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("entry", sa.Text, nullable=False),
    )  # fmt: skip
    op.create_table(
        "trail_folded",
        string("journal", 36, primary_key=True),
        sa.Column("upto", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    raise RuntimeError("0005 cannot be downgraded: per-project event ids may repeat")
