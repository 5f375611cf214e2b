"""Helpers the migration scripts share: the dialect check, the column sets several
tables repeat, and the triggers that make a table append-only.

FROZEN. A revision must build the same schema forever, whatever the application
becomes, so:

- nothing here imports the application (``registry``, ``lineage``, ``audit``):
  only SQLAlchemy, Alembic and SQL text written out here;
- what a helper does never changes once a revision calls it, not even the
  whitespace of the SQL it sends (SQLite keeps each trigger's text and PostgreSQL
  each function's body as given). A revision that needs something else gets a
  new helper, and the old one stays as it is.

The revisions import this module as ``migrations.ops``: the ``migrations``
package is importable wherever the ledger is (it is installed with it, and the
``alembic`` command line puts the repository root on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

#: A time as the log writes it: ``2026-12-01T00:00:00.000000Z``.
STAMP = sa.String(27)


def is_postgresql() -> bool:
    """Whether the migration runs on PostgreSQL (else it runs on SQLite)."""
    return op.get_bind().dialect.name == "postgresql"


# --- columns -------------------------------------------------------------------------


def string(name: str, length: int = 300, **kw: Any) -> sa.Column[Any]:
    """A ``VARCHAR(length)`` column (300: an id, a name or an actor)."""
    return sa.Column(name, sa.String(length), **kw)


def project(**kw: Any) -> sa.Column[Any]:
    """The project a row belongs to: ``project VARCHAR(128)``."""
    return string("project", 128, **kw)


def subject(**kw: Any) -> sa.Column[Any]:
    """A data subject's pseudonym in a project: ``subject VARCHAR(32)``."""
    return string("subject", 32, **kw)


def big_key(name: str) -> sa.Column[Any]:
    """A ``BIGINT`` that is (part of) the primary key, never generated: a log position,
    a sequence number or an index the application assigns."""
    return sa.Column(name, sa.BigInteger, primary_key=True, autoincrement=False)


def validity() -> list[sa.Column[Any]]:
    """When a row of a history held: from ``valid_from`` until ``valid_to`` (the
    position that closed it is ``closed_pos``); both NULL while it holds."""
    return [
        sa.Column("valid_from", STAMP, nullable=False),
        sa.Column("valid_to", STAMP, nullable=True),
        sa.Column("closed_pos", sa.BigInteger, nullable=True),
    ]


def catalogue_table(table: str, *columns: sa.Column[Any]) -> None:
    """A catalogue of versioned entries: ``id``, ``project``, ``name`` and ``version``,
    then ``columns``, then ``tags``, ``registered_at`` and the ``position`` of the
    event that registered it; indexed by (project, name) as ``ix_<table>_name``."""
    op.create_table(
        table,
        string("id", primary_key=True),
        project(nullable=False),
        string("name", 128, nullable=False),
        string("version", 128, nullable=False),
        *columns,
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("registered_at", STAMP, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index(f"ix_{table}_name", table, ["project", "name"])


# --- append-only tables --------------------------------------------------------------

# The body of a refusing function, as the first revisions wrote it.
_REFUSAL = """
            BEGIN
                RAISE EXCEPTION 'mlledger: % refused on %: {message}',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = '55000';
            END """


def refusal_function(name: str, message: str) -> None:
    """On PostgreSQL, the trigger function ``name()``: it raises ``mlledger: <operation>
    refused on <table>: <message>`` (SQLSTATE 55000) whatever row it is called for.
    On SQLite, nothing (a trigger there says its message itself)."""
    if is_postgresql():
        body = _REFUSAL.format(message=message)
        op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$")


def append_only(table: str, message: str, *, function: str) -> None:
    """Triggers refusing every UPDATE and DELETE of ``table``, whoever asks.

    PostgreSQL: ``<table>_append_only`` (UPDATE or DELETE, per row) and
    ``<table>_no_truncate`` (TRUNCATE) call ``function`` (made by
    :func:`refusal_function`), whose message is its own. SQLite:
    ``<table>_no_update`` and ``<table>_no_delete`` abort with ``mlledger: <VERB>
    refused on <table>: <message>``."""
    if is_postgresql():
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} BEGIN "
            f"SELECT RAISE(ABORT, 'mlledger: {verb} refused on {table}: {message}'); END"
        )
