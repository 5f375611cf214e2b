"""Core schema: the append-only event log, the vault and the first projections.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S27 = sa.String(27)


def _id(name: str, length: int = 300, **kw):  # type: ignore[no-untyped-def]
    return sa.Column(name, sa.String(length), **kw)


def upgrade() -> None:
    _log_tables()
    _vault_tables()
    _projection_tables()
    _append_only_log()


def _log_tables() -> None:
    """The event log, its payloads and where each projection got to."""
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        _id("event_id", 36, nullable=False, unique=True),
        _id("type", 64, nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        _id("project", 128, nullable=False),
        _id("entity", nullable=False),
        _id("actor", nullable=False),
        sa.Column("occurred_at", S27, nullable=False),
        sa.Column("recorded_at", S27, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("personal_refs", sa.Text, nullable=False),
        _id("trace_id", 64, nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_events_entity", "events", ["entity"])
    op.create_index("ix_events_project_type", "events", ["project", "type"])
    op.create_table(
        "event_payloads",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "projection_tracking",
        _id("name", 64, primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )


def _vault_tables() -> None:
    """Project secrets and the encrypted vault."""
    op.create_table(
        "project_secrets",
        _id("project", 128, primary_key=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", S27, nullable=False),
    )
    op.create_table(
        "subject_keys",
        _id("project", 128, primary_key=True),
        _id("subject", 32, primary_key=True),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("created_at", S27, nullable=False),
    )
    op.create_table(
        "vault_entries",
        _id("entry", 36, primary_key=True),
        _id("project", 128, nullable=False),
        _id("subject", 32, nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", S27, nullable=False),
    )
    op.create_index("ix_vault_entries_subject", "vault_entries", ["project", "subject"])


def _projection_tables() -> None:
    """The first projections: catalogue, indexes and lineage (declarative)."""
    op.create_table(
        "cat_datasets",
        _id("id", primary_key=True),
        _id("project", 128, nullable=False),
        _id("name", 128, nullable=False),
        _id("version", 128, nullable=False),
        _id("digest", nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("schema", sa.Text, nullable=True),
        sa.Column("row_count", sa.BigInteger, nullable=True),
        _id("produced_by", 64, nullable=True),
        sa.Column("derived_from", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("registered_at", S27, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cat_datasets_name", "cat_datasets", ["project", "name"])
    op.create_table(
        "cat_runs",
        _id("id", 64, primary_key=True),
        _id("project", 128, nullable=False),
        _id("job", nullable=False),
        _id("status", 16, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        _id("parent_run", 64, nullable=True),
        _id("actor", nullable=False),
        sa.Column("started_at", S27, nullable=False),
        sa.Column("ended_at", S27, nullable=True),
        _id("error_type", nullable=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cat_runs_job", "cat_runs", ["project", "job"])
    op.create_table(
        "cat_models",
        _id("id", primary_key=True),
        _id("project", 128, nullable=False),
        _id("name", 128, nullable=False),
        _id("version", 128, nullable=False),
        _id("run", 64, nullable=True),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        _id("artifact_digest", nullable=False),
        _id("framework", 128, nullable=True),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("registered_at", S27, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_cat_models_name", "cat_models", ["project", "name"])
    op.create_table(
        "model_names",
        _id("project", 128, primary_key=True),
        _id("name", 128, primary_key=True),
        sa.Column("versions", sa.BigInteger, nullable=False),
        sa.Column("top_version", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "alias_history",
        sa.Column("opened_pos", sa.BigInteger, primary_key=True, autoincrement=False),
        _id("project", 128, nullable=False),
        _id("name", 128, nullable=False),
        _id("alias", 128, nullable=False),
        _id("model", nullable=False),
        _id("moved_by", nullable=False),
        sa.Column("valid_from", S27, nullable=False),
        sa.Column("valid_to", S27, nullable=True),
        sa.Column("closed_pos", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_alias_history_alias", "alias_history", ["project", "name", "alias"])
    op.create_table(
        "cat_deployments",
        _id("id", primary_key=True),
        _id("project", 128, nullable=False),
        _id("name", 128, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        _id("status", 16, nullable=False),
        sa.Column("served", sa.Text, nullable=False),
        sa.Column("created_at", S27, nullable=False),
        sa.Column("updated_at", S27, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "deployment_history",
        _id("deployment", primary_key=True),
        sa.Column("opened_pos", sa.BigInteger, primary_key=True, autoincrement=False),
        _id("model", primary_key=True),
        sa.Column("traffic", sa.Float, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("valid_from", S27, nullable=False),
        sa.Column("valid_to", S27, nullable=True),
        sa.Column("closed_pos", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_deployment_history_model", "deployment_history", ["model"])
    op.create_table(
        "record_index",
        _id("dataset", primary_key=True),
        _id("record", 32, primary_key=True),
        _id("project", 128, nullable=False),
        _id("subject", 32, nullable=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_record_index_record", "record_index", ["project", "record"])
    op.create_index("ix_record_index_subject", "record_index", ["project", "subject"])
    op.create_table(
        "dataset_record_counts",
        _id("dataset", primary_key=True),
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
        _id("project", 128, nullable=False),
        _id("record", 32, nullable=False),
        _id("deployment", nullable=False),
        _id("model", nullable=False),
        sa.Column("at", S27, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        _id("trace_id", 64, nullable=True),
    )
    op.create_index(
        "ix_prediction_index_record", "prediction_index", ["epoch", "project", "record"]
    )
    op.create_table(
        "prediction_counts",
        _id("deployment", primary_key=True),
        _id("model", primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("first_at", S27, nullable=False),
        sa.Column("last_at", S27, nullable=False),
    )
    op.create_table(
        "lineage_nodes",
        _id("id", primary_key=True),
        _id("kind", 16, nullable=False),
        _id("project", 128, nullable=True),
        _id("label", nullable=False),
        sa.Column("created_at", S27, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "lineage_edges",
        _id("src", primary_key=True),
        _id("dst", primary_key=True),
        _id("kind", 16, primary_key=True),
        sa.Column("opened_pos", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("valid_from", S27, nullable=False),
        sa.Column("valid_to", S27, nullable=True),
        sa.Column("closed_pos", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_lineage_edges_dst", "lineage_edges", ["dst"])
    op.create_index("ix_lineage_edges_opened", "lineage_edges", ["opened_pos"])
    op.create_index("ix_lineage_edges_closed", "lineage_edges", ["closed_pos"])


def _append_only_log() -> None:
    # The log refuses UPDATE and DELETE, whoever asks.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION mlledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'mlledger: % refused on %: the event log is append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = '55000';
            END $$
            """
        )
        for table in ("events", "event_payloads"):
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION mlledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION mlledger_refuse_change()"
            )
    else:
        for table in ("events", "event_payloads"):
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} BEGIN "
                    f"SELECT RAISE(ABORT, 'mlledger: {verb} refused on {table}: "
                    "the event log is append-only'); END"
                )


def downgrade() -> None:
    raise RuntimeError("the event log cannot be downgraded: it is append-only")
