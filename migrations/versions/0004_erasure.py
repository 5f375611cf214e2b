"""Erasure: redactions of the log, pending erasure requests, and the erasure views.

- ``redactions`` (append-only, like the log) records each event an erasure
  rewrote: the hash of what it now holds, under the leaf hash it keeps.
- The log's triggers are replaced: an UPDATE of ``events`` or ``event_payloads``
  is refused unless a ``redactions`` row for that position exists and the
  event's envelope (position, id, type, times, actor, trace id, leaf hash) is
  unchanged; DELETE and TRUNCATE stay refused.
- ``erasure_requests`` holds the subject's pseudonym while an erasure is under
  way (deleted when it completes), so a crashed erasure can be resumed.
- ``erasures``, ``erased_refs`` and ``remediations`` are projections.

Revision 0004, after 0003 (2026-12-13).
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from migrations.ops import STAMP, append_only, big_key, is_postgresql, project, string, subject

revision = "0004"
down_revision = "0003"

# Columns of an event that a redaction never changes (entity, body and personal_refs may).
ENVELOPE = (
    "position",
    "event_id",
    "type",
    "schema_version",
    "project",
    "actor",
    "occurred_at",
    "recorded_at",
    "trace_id",
    "leaf_hash",
)


def upgrade() -> None:
    _tables()
    # No erasure event predates this revision: the new projection is at the head already
    # (without this row the next append would replay the whole log to find none).
    op.execute(
        "INSERT INTO projection_tracking (name, position) "
        "SELECT 'erasures', MAX(position) FROM events HAVING COUNT(*) > 0"
    )
    if is_postgresql():
        _postgresql_triggers()
    else:
        _sqlite_triggers()
    # On PostgreSQL the redactions share the log's refusing function (and its message).
    append_only("redactions", "redactions are append-only", function="mlledger_refuse_change")


def _erasure(**kw: Any) -> sa.Column[Any]:
    """The id of an erasure (a UUID): ``erasure VARCHAR(36)``."""
    return string("erasure", 36, **kw)


def _tables() -> None:
    """Redactions, pending requests and the erasure projections (declarative)."""
    op.create_table(
        "redactions",
        big_key("position"),
        big_key("erased_pos"),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        string("payload_digest", 71, nullable=True),
    )
    op.create_table(
        "erasure_requests",
        _erasure(primary_key=True),
        project(nullable=False),
        subject(nullable=False),
        string("reference", 32, nullable=False),
        sa.Column("requested_pos", sa.BigInteger, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )
    op.create_table(
        "erasures",
        _erasure(primary_key=True),
        project(nullable=False),
        string("reference", 32, nullable=False),
        string("status", 16, nullable=False),
        string("requested_by", nullable=False),
        sa.Column("requested_at", STAMP, nullable=False),
        sa.Column("requested_pos", sa.BigInteger, nullable=False),
        sa.Column("erased_at", STAMP, nullable=True),
        sa.Column("erased_pos", sa.BigInteger, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
    )
    op.create_index("ix_erasures_reference", "erasures", ["project", "reference"])
    op.create_table(
        "erased_refs",
        project(primary_key=True),
        string("kind", 8, primary_key=True),
        string("reference", 32, primary_key=True),
        big_key("erased_pos"),
        _erasure(nullable=False),
    )
    op.create_table(
        "remediations",
        string("model", primary_key=True),
        _erasure(primary_key=True),
        project(nullable=False),
        string("status", 32, nullable=False),
        sa.Column("justification", sa.Text, nullable=True),
        string("approver", nullable=True),
        sa.Column("flagged_pos", sa.BigInteger, nullable=False),
        string("resolved_by", nullable=True),
        sa.Column("resolved_pos", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_remediations_project", "remediations", ["project", "status"])


def _postgresql_triggers() -> None:
    """The log's UPDATE refused unless a redaction allows it."""
    unchanged = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in ENVELOPE)
    # One function per table: PL/pgSQL does not promise to short-circuit, and NEW of
    # event_payloads has none of the events' envelope columns.
    for table, allowed in (("events", f" AND ({unchanged})"), ("event_payloads", "")):
        op.execute(
            f"""
            CREATE FUNCTION mlledger_redact_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' AND EXISTS (
                    SELECT 1 FROM redactions WHERE redactions.position = OLD.position
                ){allowed} THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION 'mlledger: % refused on %: the event log is append-only '
                    '(only an erasure may redact an event, keeping its envelope)',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = '55000';
            END $$
            """
        )
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION mlledger_redact_{table}()"
        )


def _sqlite_triggers() -> None:
    """The log's UPDATE refused unless a redaction allows it."""
    same = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in ENVELOPE)
    redacted = "EXISTS (SELECT 1 FROM redactions r WHERE r.position = OLD.position)"
    for table, allowed in (("events", f"{redacted} AND {same}"), ("event_payloads", redacted)):
        op.execute(f"DROP TRIGGER {table}_no_update")
        op.execute(
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"WHEN NOT ({allowed}) BEGIN SELECT RAISE(ABORT, 'mlledger: UPDATE refused on "
            f"{table}: the event log is append-only (only an erasure may redact an event, "
            "keeping its envelope)'); END"
        )


def downgrade() -> None:
    raise RuntimeError("redactions cannot be downgraded: they are append-only")
