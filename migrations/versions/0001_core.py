"""Core schema: the append-only event log, the vault and the first projections.

Revision 0001, the first (2026-11-22).
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from migrations.ops import (
    STAMP,
    append_only,
    big_key,
    catalogue_table,
    project,
    refusal_function,
    string,
    subject,
    validity,
)

revision = "0001"
down_revision = None


def upgrade() -> None:
    _log_tables()
    _vault_tables()
    _projection_tables()
    _append_only_log()


def _log_tables() -> None:
    """The event log, its payloads and where each projection got to."""
    op.create_table(
        "events",
        big_key("position"),
        string("event_id", 36, nullable=False, unique=True),
        string("type", 64, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        project(nullable=False),
        string("entity", nullable=False),
        string("actor", nullable=False),
        sa.Column("occurred_at", STAMP, nullable=False),
        sa.Column("recorded_at", STAMP, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("personal_refs", sa.Text, nullable=False),
        string("trace_id", 64, nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_events_entity", "events", ["entity"])
    op.create_index("ix_events_project_type", "events", ["project", "type"])
    op.create_table(
        "event_payloads",
        big_key("position"),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "projection_tracking",
        string("name", 64, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def _vault_tables() -> None:
    """Project secrets and the encrypted vault."""
    _wrapped_keys("project_secrets", project(primary_key=True))
    _wrapped_keys("subject_keys", project(primary_key=True), subject(primary_key=True))
    op.create_table(
        "vault_entries",
        string("entry", 36, primary_key=True),
        project(nullable=False),
        subject(nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )
    op.create_index("ix_vault_entries_subject", "vault_entries", ["project", "subject"])


def _wrapped_keys(table: str, *key: sa.Column[Any]) -> None:
    """A table of keys wrapped under the master key, one per ``key``."""
    op.create_table(
        table,
        *key,
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )


def _projection_tables() -> None:
    """The first projections: catalogue, indexes and lineage (declarative)."""
    catalogue_table(
        "cat_datasets",
        string("digest", nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("schema", sa.Text, nullable=True),
        sa.Column("row_count", sa.BigInteger, nullable=True),
        string("produced_by", 64, nullable=True),
        sa.Column("derived_from", sa.Text, nullable=False),
    )
    op.create_table(
        "cat_runs",
        string("id", 64, primary_key=True),
        project(nullable=False),
        string("job", nullable=False),
        string("status", 16, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        string("parent_run", 64, nullable=True),
        string("actor", nullable=False),
        sa.Column("started_at", STAMP, nullable=False),
        sa.Column("ended_at", STAMP, nullable=True),
        string("error_type", nullable=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cat_runs_job", "cat_runs", ["project", "job"])
    catalogue_table(
        "cat_models",
        string("run", 64, nullable=True),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        string("artifact_digest", nullable=False),
        string("framework", 128, nullable=True),
    )
    op.create_table(
        "model_names",
        project(primary_key=True),
        string("name", 128, primary_key=True),
        sa.Column("versions", sa.BigInteger, nullable=False),
        sa.Column("top_version", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "alias_history",
        big_key("opened_pos"),
        project(nullable=False),
        string("name", 128, nullable=False),
        string("alias", 128, nullable=False),
        string("model", nullable=False),
        string("moved_by", nullable=False),
        *validity(),
    )
    op.create_index("ix_alias_history_alias", "alias_history", ["project", "name", "alias"])
    op.create_table(
        "cat_deployments",
        string("id", primary_key=True),
        project(nullable=False),
        string("name", 128, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        string("status", 16, nullable=False),
        sa.Column("served", sa.Text, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "deployment_history",
        string("deployment", primary_key=True),
        big_key("opened_pos"),
        string("model", primary_key=True),
        sa.Column("traffic", sa.Float, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        *validity(),
    )
    op.create_index("ix_deployment_history_model", "deployment_history", ["model"])
    op.create_table(
        "record_index",
        string("dataset", primary_key=True),
        string("record", 32, primary_key=True),
        project(nullable=False),
        subject(nullable=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_record_index_record", "record_index", ["project", "record"])
    op.create_index("ix_record_index_subject", "record_index", ["project", "subject"])
    op.create_table(
        "dataset_record_counts",
        string("dataset", primary_key=True),
        sa.Column("records", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "prediction_index",
        # position * 1_000_000 + seq; INTEGER on SQLite makes it the rowid (no extra index)
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        project(nullable=False),
        string("record", 32, nullable=False),
        string("deployment", nullable=False),
        string("model", nullable=False),
        sa.Column("at", STAMP, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        string("trace_id", 64, nullable=True),
    )
    op.create_index(
        "ix_prediction_index_record", "prediction_index", ["epoch", "project", "record"]
    )
    op.create_table(
        "prediction_counts",
        string("deployment", primary_key=True),
        string("model", primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("first_at", STAMP, nullable=False),
        sa.Column("last_at", STAMP, nullable=False),
    )
    op.create_table(
        "lineage_nodes",
        string("id", primary_key=True),
        string("kind", 16, nullable=False),
        project(nullable=True),
        string("label", nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "lineage_edges",
        string("src", primary_key=True),
        string("dst", primary_key=True),
        string("kind", 16, primary_key=True),
        big_key("opened_pos"),
        *validity(),
    )
    op.create_index("ix_lineage_edges_dst", "lineage_edges", ["dst"])
    op.create_index("ix_lineage_edges_opened", "lineage_edges", ["opened_pos"])
    op.create_index("ix_lineage_edges_closed", "lineage_edges", ["closed_pos"])


def _append_only_log() -> None:
    """The log refuses UPDATE and DELETE, whoever asks."""
    refusal_function("mlledger_refuse_change", "the event log is append-only")
    for table in ("events", "event_payloads"):
        append_only(table, "the event log is append-only", function="mlledger_refuse_change")


def downgrade() -> None:
    raise RuntimeError("the event log cannot be downgraded: it is append-only")
