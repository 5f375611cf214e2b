"""Table definitions (SQLModel). Alembic migrations in ``migrations/`` own the
real schema; a test checks these definitions and the migrations agree.

Five groups:
- the log (``events``, ``event_payloads``, ``redactions``): append-only, refused
  UPDATE and DELETE by triggers, save the redaction of an event by an erasure
  (recorded first in ``redactions``, which is itself append-only);
- the vault (``project_secrets``, ``subject_keys``, ``vault_entries``,
  ``erasure_requests``): keys, encrypted personal data and erasures under way,
  the only place rows may be deleted (erasure);
- access (``api_keys``, ``access_trail``): who may ask what, and who asked what.
  Not derived from the log, so never dropped by a rebuild; the trail is
  append-only like the log, and has a Merkle tree of its own;
- integrity (``checkpoints``): signed checkpoints of the two trees, append-only;
- projections: everything else (the events' Merkle tree ``merkle_nodes``
  included), a deterministic function of the log, dropped and replayed by
  ``mlledger rebuild``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlmodel import Field, SQLModel


def _text(nullable: bool = False) -> Column[str]:
    return Column(Text, nullable=nullable)


# --- log ---------------------------------------------------------------------------


class EventRow(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_entity", "entity"),
        Index("ix_events_project_type", "project", "type"),
        # Event ids are the idempotency keys of one project: another project's ids
        # neither collide with nor reveal them.
        Index("uq_events_project_event_id", "project", "event_id", unique=True),
    )
    position: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(sa_column=Column(String(36), nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    schema_version: int
    project: str = Field(sa_column=Column(String(128), nullable=False))
    entity: str = Field(sa_column=Column(String(300), nullable=False))
    actor: str = Field(sa_column=Column(String(300), nullable=False))
    occurred_at: str = Field(sa_column=Column(String(27), nullable=False))
    recorded_at: str = Field(sa_column=Column(String(27), nullable=False))
    body: str = Field(sa_column=_text())
    personal_refs: str = Field(sa_column=_text())
    trace_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class EventPayload(SQLModel, table=True):
    """Columnar rows of an event (prediction batches); append-only like ``events``."""

    __tablename__ = "event_payloads"
    position: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Redaction(SQLModel, table=True):
    """An event an erasure rewrote (``audit.erasure``): the hash its redacted content
    now has (``leaf``, computed as a leaf hash) and its payload's new digest. The event
    keeps its original leaf hash, so the Merkle tree and every checkpoint stand; the
    ``subject-erased`` event at ``erased_pos`` declares the same values."""

    __tablename__ = "redactions"
    position: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    erased_pos: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    payload_digest: str | None = Field(default=None, sa_column=Column(String(71), nullable=True))


class ProjectionTracking(SQLModel, table=True):
    __tablename__ = "projection_tracking"
    name: str = Field(sa_column=Column(String(64), primary_key=True))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))


# --- vault --------------------------------------------------------------------------


class ProjectSecret(SQLModel, table=True):
    __tablename__ = "project_secrets"
    project: str = Field(sa_column=Column(String(128), primary_key=True))
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: str = Field(sa_column=Column(String(27), nullable=False))


class SubjectKey(SQLModel, table=True):
    __tablename__ = "subject_keys"
    project: str = Field(sa_column=Column(String(128), primary_key=True))
    subject: str = Field(sa_column=Column(String(32), primary_key=True))
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: str = Field(sa_column=Column(String(27), nullable=False))


class VaultEntry(SQLModel, table=True):
    __tablename__ = "vault_entries"
    __table_args__ = (Index("ix_vault_entries_subject", "project", "subject"),)
    project: str = Field(sa_column=Column(String(128), primary_key=True))
    entry: str = Field(sa_column=Column(String(36), primary_key=True))
    subject: str = Field(sa_column=Column(String(32), nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: str = Field(sa_column=Column(String(27), nullable=False))


class ErasureRequest(SQLModel, table=True):
    """An erasure under way: the subject's pseudonym, kept only until it completes,
    so that an interrupted erasure can be resumed without the subject's id."""

    __tablename__ = "erasure_requests"
    erasure: str = Field(sa_column=Column(String(36), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    subject: str = Field(sa_column=Column(String(32), nullable=False))
    reference: str = Field(sa_column=Column(String(32), nullable=False))
    requested_pos: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: str = Field(sa_column=Column(String(27), nullable=False))


# --- access -------------------------------------------------------------------------


class ApiKeyRow(SQLModel, table=True):
    """An API key: its project and role, and the SHA-256 of its secret (never the secret)."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_project", "project"),)
    key_id: str = Field(sa_column=Column(String(16), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    name: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    secret_hash: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: str = Field(sa_column=Column(String(27), nullable=False))
    created_by: str = Field(sa_column=Column(String(300), nullable=False))
    revoked_at: str | None = Field(default=None, sa_column=Column(String(27), nullable=True))
    revoked_by: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))


class AccessTrailRow(SQLModel, table=True):
    """One access decision; append-only, refused UPDATE and DELETE by triggers."""

    __tablename__ = "access_trail"
    __table_args__ = (Index("ix_access_trail_project", "project", "seq"),)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: str = Field(sa_column=Column(String(27), nullable=False))
    actor: str = Field(sa_column=Column(String(300), nullable=False))
    project: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    resource: str = Field(sa_column=_text())
    source: str = Field(sa_column=Column(String(300), nullable=False))
    outcome: str = Field(sa_column=Column(String(8), nullable=False))
    status: int = Field(sa_column=Column(Integer, nullable=False))
    reason: str = Field(sa_column=_text())
    trace_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


# --- integrity ------------------------------------------------------------------------


class MerkleNode(SQLModel, table=True):
    """A perfect subtree of the events' Merkle tree: ``(level, idx)`` covers positions
    ``[idx << level, (idx + 1) << level)``; level 0 holds a copy of each leaf hash.
    A projection of the log (``audit.tree``), so proofs read O(log n) rows."""

    __tablename__ = "merkle_nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)
    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class TrailMerkleNode(SQLModel, table=True):
    """The same for the access trail's own tree, written with each trail entry."""

    __tablename__ = "trail_merkle_nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)
    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRow(SQLModel, table=True):
    """A signed checkpoint (C2SP signed note) of one tree: ``events`` or ``access``.
    Append-only; ``seq`` is gap-free per tree."""

    __tablename__ = "checkpoints"
    tree: str = Field(sa_column=Column(String(16), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=_text())
    signed_at: str = Field(sa_column=Column(String(27), nullable=False))


# --- projections ----------------------------------------------------------------------


class CatDataset(SQLModel, table=True):
    __tablename__ = "cat_datasets"
    __table_args__ = (Index("ix_cat_datasets_name", "project", "name"),)
    id: str = Field(sa_column=Column(String(300), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    name: str = Field(sa_column=Column(String(128), nullable=False))
    version: str = Field(sa_column=Column(String(128), nullable=False))
    digest: str = Field(sa_column=Column(String(300), nullable=False))
    uri: str = Field(sa_column=_text())
    schema_: str | None = Field(default=None, sa_column=Column("schema", Text, nullable=True))
    row_count: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    produced_by: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    derived_from: str = Field(sa_column=_text())
    tags: str = Field(sa_column=_text())
    registered_at: str = Field(sa_column=Column(String(27), nullable=False))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))


class CatRun(SQLModel, table=True):
    __tablename__ = "cat_runs"
    __table_args__ = (Index("ix_cat_runs_job", "project", "job"),)
    id: str = Field(sa_column=Column(String(64), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    job: str = Field(sa_column=Column(String(300), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    params: str = Field(sa_column=_text())
    metrics: str = Field(sa_column=_text())
    code: str = Field(sa_column=_text())
    environment: str = Field(sa_column=_text())
    tags: str = Field(sa_column=_text())
    parent_run: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    actor: str = Field(sa_column=Column(String(300), nullable=False))
    started_at: str = Field(sa_column=Column(String(27), nullable=False))
    ended_at: str | None = Field(default=None, sa_column=Column(String(27), nullable=True))
    error_type: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))


class CatModel(SQLModel, table=True):
    __tablename__ = "cat_models"
    __table_args__ = (Index("ix_cat_models_name", "project", "name"),)
    id: str = Field(sa_column=Column(String(300), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    name: str = Field(sa_column=Column(String(128), nullable=False))
    version: str = Field(sa_column=Column(String(128), nullable=False))
    run: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    artifact_uri: str = Field(sa_column=_text())
    artifact_digest: str = Field(sa_column=Column(String(300), nullable=False))
    framework: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    tags: str = Field(sa_column=_text())
    registered_at: str = Field(sa_column=Column(String(27), nullable=False))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))


class ModelName(SQLModel, table=True):
    """One row per model name: how many versions it has, and its highest numeric one."""

    __tablename__ = "model_names"
    project: str = Field(sa_column=Column(String(128), primary_key=True))
    name: str = Field(sa_column=Column(String(128), primary_key=True))
    versions: int = Field(sa_column=Column(BigInteger, nullable=False))
    top_version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class AliasInterval(SQLModel, table=True):
    """Which version an alias pointed at, from when to when (to null: still does)."""

    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_alias", "project", "name", "alias"),)
    opened_pos: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    name: str = Field(sa_column=Column(String(128), nullable=False))
    alias: str = Field(sa_column=Column(String(128), nullable=False))
    model: str = Field(sa_column=Column(String(300), nullable=False))
    moved_by: str = Field(sa_column=Column(String(300), nullable=False))
    valid_from: str = Field(sa_column=Column(String(27), nullable=False))
    valid_to: str | None = Field(default=None, sa_column=Column(String(27), nullable=True))
    closed_pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class CatDeployment(SQLModel, table=True):
    __tablename__ = "cat_deployments"
    id: str = Field(sa_column=Column(String(300), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    name: str = Field(sa_column=Column(String(128), nullable=False))
    endpoint: str = Field(sa_column=_text())
    status: str = Field(sa_column=Column(String(16), nullable=False))
    served: str = Field(sa_column=_text())
    created_at: str = Field(sa_column=Column(String(27), nullable=False))
    updated_at: str = Field(sa_column=Column(String(27), nullable=False))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))


class DeploymentInterval(SQLModel, table=True):
    """A model version served by a deployment with a traffic share, from when to when."""

    __tablename__ = "deployment_history"
    __table_args__ = (Index("ix_deployment_history_model", "model"),)
    deployment: str = Field(sa_column=Column(String(300), primary_key=True))
    opened_pos: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    model: str = Field(sa_column=Column(String(300), primary_key=True))
    traffic: float
    endpoint: str = Field(sa_column=_text())
    valid_from: str = Field(sa_column=Column(String(27), nullable=False))
    valid_to: str | None = Field(default=None, sa_column=Column(String(27), nullable=True))
    closed_pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class RecordMembership(SQLModel, table=True):
    """Record index: dataset version <-> record pseudonym <-> subject pseudonym."""

    __tablename__ = "record_index"
    __table_args__ = (
        Index("ix_record_index_record", "project", "record"),
        Index("ix_record_index_subject", "project", "subject"),
    )
    dataset: str = Field(sa_column=Column(String(300), primary_key=True))
    record: str = Field(sa_column=Column(String(32), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    subject: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))


class DatasetRecordCount(SQLModel, table=True):
    """Distinct records per dataset version (kept by the record index)."""

    __tablename__ = "dataset_record_counts"
    dataset: str = Field(sa_column=Column(String(300), primary_key=True))
    records: int = Field(sa_column=Column(BigInteger, nullable=False))


class PredictionRow(SQLModel, table=True):
    """Prediction index: one row per prediction, looked up by record pseudonym."""

    __tablename__ = "prediction_index"
    # Partitioned by ``epoch`` (every EPOCH_ROWS predictions): a commit touches only the
    # newest partition's index pages, however many predictions came before.
    __table_args__ = (Index("ix_prediction_index_record", "epoch", "project", "record"),)
    # position * PREDICTIONS_PER_EVENT + seq; on SQLite an INTEGER key is the rowid itself.
    id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
        )
    )
    position: int = Field(sa_column=Column(BigInteger, nullable=False))
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    epoch: int = Field(sa_column=Column(Integer, nullable=False))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    record: str = Field(sa_column=Column(String(32), nullable=False))
    deployment: str = Field(sa_column=Column(String(300), nullable=False))
    model: str = Field(sa_column=Column(String(300), nullable=False))
    at: str = Field(sa_column=Column(String(27), nullable=False))
    output: str = Field(sa_column=_text())
    trace_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class PredictionCount(SQLModel, table=True):
    __tablename__ = "prediction_counts"
    deployment: str = Field(sa_column=Column(String(300), primary_key=True))
    model: str = Field(sa_column=Column(String(300), primary_key=True))
    n: int = Field(sa_column=Column(BigInteger, nullable=False))
    first_at: str = Field(sa_column=Column(String(27), nullable=False))
    last_at: str = Field(sa_column=Column(String(27), nullable=False))


class LineageNode(SQLModel, table=True):
    __tablename__ = "lineage_nodes"
    id: str = Field(sa_column=Column(String(300), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    project: str | None = Field(default=None, sa_column=Column(String(128), nullable=True))
    label: str = Field(sa_column=Column(String(300), nullable=False))
    created_at: str = Field(sa_column=Column(String(27), nullable=False))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))


class LineageEdge(SQLModel, table=True):
    """A lineage edge (upstream src -> downstream dst) valid from .. to (null: still)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        Index("ix_lineage_edges_dst", "dst"),
        Index("ix_lineage_edges_opened", "opened_pos"),
        Index("ix_lineage_edges_closed", "closed_pos"),
    )
    src: str = Field(sa_column=Column(String(300), primary_key=True))
    dst: str = Field(sa_column=Column(String(300), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), primary_key=True))
    opened_pos: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    valid_from: str = Field(sa_column=Column(String(27), nullable=False))
    valid_to: str | None = Field(default=None, sa_column=Column(String(27), nullable=True))
    closed_pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class ErasureRow(SQLModel, table=True):
    """One erasure of a data subject: requested, then erased (``summary``: what it touched)."""

    __tablename__ = "erasures"
    __table_args__ = (Index("ix_erasures_reference", "project", "reference"),)
    erasure: str = Field(sa_column=Column(String(36), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    reference: str = Field(sa_column=Column(String(32), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    requested_by: str = Field(sa_column=Column(String(300), nullable=False))
    requested_at: str = Field(sa_column=Column(String(27), nullable=False))
    requested_pos: int = Field(sa_column=Column(BigInteger, nullable=False))
    erased_at: str | None = Field(default=None, sa_column=Column(String(27), nullable=True))
    erased_pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    summary: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ErasedRef(SQLModel, table=True):
    """An erased subject or record, by its erasure reference (never its pseudonym)."""

    __tablename__ = "erased_refs"
    project: str = Field(sa_column=Column(String(128), primary_key=True))
    kind: str = Field(sa_column=Column(String(8), primary_key=True))
    reference: str = Field(sa_column=Column(String(32), primary_key=True))
    erased_pos: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    erasure: str = Field(sa_column=Column(String(36), nullable=False))


class ProjectGrant(SQLModel, table=True):
    """A project's grant of access to another (``project-access-granted``): the
    grantee may use its dataset and model versions and read them in answers, from
    the grant until its revocation (null: still granted)."""

    __tablename__ = "project_grants"
    project: str = Field(sa_column=Column(String(128), primary_key=True))
    grantee: str = Field(sa_column=Column(String(128), primary_key=True))
    granted_pos: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    granted_by: str = Field(sa_column=Column(String(300), nullable=False))
    granted_at: str = Field(sa_column=Column(String(27), nullable=False))
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    revoked_pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoked_by: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    revoked_at: str | None = Field(default=None, sa_column=Column(String(27), nullable=True))


class TrailPending(SQLModel, table=True):
    """A trail entry made durable but not yet folded into ``access_trail``
    (``audit.trail``; PostgreSQL: SQLite keeps this journal in a file of its own)."""

    __tablename__ = "trail_pending"
    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    entry: str = Field(sa_column=_text())


class TrailFolded(SQLModel, table=True):
    """How far a SQLite trail journal was folded into ``access_trail``."""

    __tablename__ = "trail_folded"
    journal: str = Field(sa_column=Column(String(36), primary_key=True))
    upto: int = Field(sa_column=Column(BigInteger, nullable=False))


class Remediation(SQLModel, table=True):
    """What an erasure asks of a model version trained on the subject's data."""

    __tablename__ = "remediations"
    __table_args__ = (Index("ix_remediations_project", "project", "status"),)
    model: str = Field(sa_column=Column(String(300), primary_key=True))
    erasure: str = Field(sa_column=Column(String(36), primary_key=True))
    project: str = Field(sa_column=Column(String(128), nullable=False))
    status: str = Field(sa_column=Column(String(32), nullable=False))
    justification: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    approver: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    flagged_pos: int = Field(sa_column=Column(BigInteger, nullable=False))
    resolved_by: str | None = Field(default=None, sa_column=Column(String(300), nullable=True))
    resolved_pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


PREDICTIONS_PER_EVENT = 1_000_000
# Predictions per partition of the prediction index (see PredictionRow).
EPOCH_ROWS = 50_000
LOG_TABLES = ("events", "event_payloads")
# Append-only too: which events an erasure rewrote (never dropped by a rebuild).
REDACTION_TABLES = ("redactions",)
VAULT_TABLES = ("project_secrets", "subject_keys", "vault_entries", "erasure_requests")
# Not projections: a rebuild must leave them alone.
ACCESS_TABLES = ("api_keys", "access_trail", "trail_merkle_nodes", "trail_pending", "trail_folded")
# Signed statements about the log, not a function of it: never dropped either.
CHECKPOINT_TABLES = ("checkpoints",)
# Projection tables with the columns that order their rows for a digest.
PROJECTION_TABLES: dict[str, tuple[str, ...]] = {
    "cat_datasets": ("id",),
    "cat_runs": ("id",),
    "cat_models": ("id",),
    "model_names": ("project", "name"),
    "alias_history": ("opened_pos",),
    "cat_deployments": ("id",),
    "deployment_history": ("deployment", "opened_pos", "model"),
    "record_index": ("dataset", "record"),
    "dataset_record_counts": ("dataset",),
    "prediction_index": ("id",),
    "prediction_counts": ("deployment", "model"),
    "lineage_nodes": ("id",),
    "lineage_edges": ("src", "dst", "kind", "opened_pos"),
    "merkle_nodes": ("level", "idx"),
    "erasures": ("erasure",),
    "erased_refs": ("project", "kind", "reference", "erased_pos"),
    "remediations": ("model", "erasure"),
    "project_grants": ("project", "grantee", "granted_pos"),
}

metadata = SQLModel.metadata
T = metadata.tables
