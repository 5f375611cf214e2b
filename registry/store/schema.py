"""Table definitions (SQLModel). Alembic migrations in ``migrations/`` own the
real schema; a test checks these definitions and the migrations agree.

Six groups:
- the log (``events``, ``event_payloads``, ``redactions``): append-only, refused
  UPDATE and DELETE by triggers, save the redaction of an event by an erasure
  (recorded first in ``redactions``, which is itself append-only);
- the vault (``project_secrets``, ``subject_keys``, ``vault_entries``,
  ``erasure_requests``): keys, encrypted personal data and erasures under way,
  the only place rows may be deleted (erasure);
- access (``api_keys``, ``access_trail``, ``web_sessions``): who may ask what, and
  who asked what.
  Not derived from the log, so never dropped by a rebuild; the trail is
  append-only like the log, and has a Merkle tree of its own;
- integrity (``checkpoints``): signed checkpoints of the two trees, append-only;
- projections: everything else (the events' Merkle tree ``merkle_nodes``
  included), a deterministic function of the log, dropped and replayed by
  ``mlledger rebuild``;
- the prediction filters' state (``prediction_filter_state``): the generation
  processes cache the filters by, which a rebuild bumps rather than drops.
"""

from __future__ import annotations

from typing import Any

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


def _col(type_: Any, *, key: bool = False, null: bool = False) -> Any:
    """A model field over one column: a primary key (never autoincremented), a
    required column, or (``null``) an optional one defaulting to None."""
    if key:
        return Field(sa_column=Column(type_, primary_key=True, autoincrement=False))
    if null:
        return Field(default=None, sa_column=Column(type_, nullable=True))
    return Field(sa_column=Column(type_, nullable=False))


def _str(length: int, *, key: bool = False, null: bool = False) -> Any:
    return _col(String(length), key=key, null=null)


def _big(*, key: bool = False, null: bool = False) -> Any:
    return _col(BigInteger, key=key, null=null)


def _txt(*, null: bool = False) -> Any:
    return _col(Text, null=null)


def _blob() -> Any:
    return _col(LargeBinary)


def _int() -> Any:
    return _col(Integer)


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
    position: int = _big(key=True)
    event_id: str = _str(36)
    type: str = _str(64)
    schema_version: int
    project: str = _str(128)
    entity: str = _str(300)
    actor: str = _str(300)
    occurred_at: str = _str(27)
    recorded_at: str = _str(27)
    body: str = _txt()
    personal_refs: str = _txt()
    trace_id: str | None = _str(64, null=True)
    leaf_hash: bytes = _blob()


class EventPayload(SQLModel, table=True):
    """Columnar rows of an event (prediction batches); append-only like ``events``."""

    __tablename__ = "event_payloads"
    position: int = _big(key=True)
    payload: bytes = _blob()


class Redaction(SQLModel, table=True):
    """An event an erasure rewrote (``audit.erasure``): the hash its redacted content
    now has (``leaf``, computed as a leaf hash) and its payload's new digest. The event
    keeps its original leaf hash, so the Merkle tree and every checkpoint stand; the
    ``subject-erased`` event at ``erased_pos`` declares the same values."""

    __tablename__ = "redactions"
    position: int = _big(key=True)
    erased_pos: int = _big(key=True)
    leaf: bytes = _blob()
    payload_digest: str | None = _str(71, null=True)


class ProjectionTracking(SQLModel, table=True):
    __tablename__ = "projection_tracking"
    name: str = _str(64, key=True)
    position: int = _big()


# --- vault --------------------------------------------------------------------------


class ProjectSecret(SQLModel, table=True):
    __tablename__ = "project_secrets"
    project: str = _str(128, key=True)
    wrapped: bytes = _blob()
    created_at: str = _str(27)


class SubjectKey(SQLModel, table=True):
    __tablename__ = "subject_keys"
    project: str = _str(128, key=True)
    subject: str = _str(32, key=True)
    wrapped: bytes = _blob()
    created_at: str = _str(27)


class VaultEntry(SQLModel, table=True):
    __tablename__ = "vault_entries"
    __table_args__ = (Index("ix_vault_entries_subject", "project", "subject"),)
    project: str = _str(128, key=True)
    entry: str = _str(36, key=True)
    subject: str = _str(32)
    nonce: bytes = _blob()
    ciphertext: bytes = _blob()
    created_at: str = _str(27)


class ErasureRequest(SQLModel, table=True):
    """An erasure under way: the subject's pseudonym, kept only until it completes,
    so that an interrupted erasure can be resumed without the subject's id."""

    __tablename__ = "erasure_requests"
    erasure: str = _str(36, key=True)
    project: str = _str(128)
    subject: str = _str(32)
    reference: str = _str(32)
    requested_pos: int = _big()
    created_at: str = _str(27)


# --- access -------------------------------------------------------------------------


class ApiKeyRow(SQLModel, table=True):
    """An API key: its project and role, and the SHA-256 of its secret (never the secret)."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_project", "project"),)
    key_id: str = _str(16, key=True)
    project: str = _str(128)
    role: str = _str(16)
    name: str | None = _str(300, null=True)
    secret_hash: str = _str(64)
    created_at: str = _str(27)
    created_by: str = _str(300)
    revoked_at: str | None = _str(27, null=True)
    revoked_by: str | None = _str(300, null=True)


class WebSessionRow(SQLModel, table=True):
    """A signed-in session of the web interface: the SHA-256 of its token (never the
    token), the key it acts for, and its idle and absolute limits (``registry.sessions``)."""

    __tablename__ = "web_sessions"
    __table_args__ = (
        Index("ix_web_sessions_key", "key_id"),
        Index("ix_web_sessions_expires", "expires_at"),
    )
    token_hash: str = _str(64, key=True)
    key_id: str = _str(16)
    project: str = _str(128)
    created_at: str = _str(27)
    seen_at: str = _str(27)
    expires_at: str = _str(27)


class AccessTrailRow(SQLModel, table=True):
    """One access decision; append-only, refused UPDATE and DELETE by triggers."""

    __tablename__ = "access_trail"
    __table_args__ = (Index("ix_access_trail_project", "project", "seq"),)
    seq: int = _big(key=True)
    at: str = _str(27)
    actor: str = _str(300)
    project: str | None = _str(128, null=True)
    action: str = _str(64)
    resource: str = _txt()
    source: str = _str(300)
    outcome: str = _str(8)
    status: int = _int()
    reason: str = _txt()
    trace_id: str | None = _str(64, null=True)
    leaf_hash: bytes = _blob()


# --- integrity ------------------------------------------------------------------------


class MerkleNode(SQLModel, table=True):
    """A perfect subtree of the events' Merkle tree: ``(level, idx)`` covers positions
    ``[idx << level, (idx + 1) << level)``; level 0 holds a copy of each leaf hash.
    A projection of the log (``audit.tree``), so proofs read O(log n) rows."""

    __tablename__ = "merkle_nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)
    level: int = _col(SmallInteger, key=True)
    idx: int = _big(key=True)
    hash: bytes = _blob()


class TrailMerkleNode(SQLModel, table=True):
    """The same for the access trail's own tree, written with each trail entry."""

    __tablename__ = "trail_merkle_nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)
    level: int = _col(SmallInteger, key=True)
    idx: int = _big(key=True)
    hash: bytes = _blob()


class CheckpointRow(SQLModel, table=True):
    """A signed checkpoint (C2SP signed note) of one tree: ``events`` or ``access``.
    Append-only; ``seq`` is gap-free per tree."""

    __tablename__ = "checkpoints"
    tree: str = _str(16, key=True)
    seq: int = _big(key=True)
    tree_size: int = _big()
    root_hash: bytes = _blob()
    note: str = _txt()
    signed_at: str = _str(27)


# --- projections ----------------------------------------------------------------------


class CatDataset(SQLModel, table=True):
    __tablename__ = "cat_datasets"
    __table_args__ = (Index("ix_cat_datasets_name", "project", "name"),)
    id: str = _str(300, key=True)
    project: str = _str(128)
    name: str = _str(128)
    version: str = _str(128)
    digest: str = _str(300)
    uri: str = _txt()
    schema_: str | None = Field(default=None, sa_column=Column("schema", Text, nullable=True))
    row_count: int | None = _big(null=True)
    produced_by: str | None = _str(64, null=True)
    derived_from: str = _txt()
    tags: str = _txt()
    registered_at: str = _str(27)
    position: int = _big()


class CatRun(SQLModel, table=True):
    __tablename__ = "cat_runs"
    __table_args__ = (Index("ix_cat_runs_job", "project", "job"),)
    id: str = _str(64, key=True)
    project: str = _str(128)
    job: str = _str(300)
    status: str = _str(16)
    params: str = _txt()
    metrics: str = _txt()
    code: str = _txt()
    environment: str = _txt()
    tags: str = _txt()
    parent_run: str | None = _str(64, null=True)
    actor: str = _str(300)
    started_at: str = _str(27)
    ended_at: str | None = _str(27, null=True)
    error_type: str | None = _str(300, null=True)
    position: int = _big()


class CatModel(SQLModel, table=True):
    __tablename__ = "cat_models"
    __table_args__ = (Index("ix_cat_models_name", "project", "name"),)
    id: str = _str(300, key=True)
    project: str = _str(128)
    name: str = _str(128)
    version: str = _str(128)
    run: str | None = _str(64, null=True)
    artifact_uri: str = _txt()
    artifact_digest: str = _str(300)
    framework: str | None = _str(128, null=True)
    tags: str = _txt()
    registered_at: str = _str(27)
    position: int = _big()


class ModelName(SQLModel, table=True):
    """One row per model name: how many versions it has, and its highest numeric one."""

    __tablename__ = "model_names"
    project: str = _str(128, key=True)
    name: str = _str(128, key=True)
    versions: int = _big()
    top_version: int | None = _big(null=True)


class AliasInterval(SQLModel, table=True):
    """Which version an alias pointed at, from when to when (to null: still does)."""

    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_alias", "project", "name", "alias"),)
    opened_pos: int = _big(key=True)
    project: str = _str(128)
    name: str = _str(128)
    alias: str = _str(128)
    model: str = _str(300)
    moved_by: str = _str(300)
    valid_from: str = _str(27)
    valid_to: str | None = _str(27, null=True)
    closed_pos: int | None = _big(null=True)


class CatDeployment(SQLModel, table=True):
    __tablename__ = "cat_deployments"
    id: str = _str(300, key=True)
    project: str = _str(128)
    name: str = _str(128)
    endpoint: str = _txt()
    status: str = _str(16)
    served: str = _txt()
    created_at: str = _str(27)
    updated_at: str = _str(27)
    position: int = _big()


class DeploymentInterval(SQLModel, table=True):
    """A model version served by a deployment with a traffic share, from when to when."""

    __tablename__ = "deployment_history"
    __table_args__ = (Index("ix_deployment_history_model", "model"),)
    deployment: str = _str(300, key=True)
    opened_pos: int = _big(key=True)
    model: str = _str(300, key=True)
    traffic: float
    endpoint: str = _txt()
    valid_from: str = _str(27)
    valid_to: str | None = _str(27, null=True)
    closed_pos: int | None = _big(null=True)


class RecordMembership(SQLModel, table=True):
    """Record index: dataset version <-> record pseudonym <-> subject pseudonym."""

    __tablename__ = "record_index"
    __table_args__ = (
        Index("ix_record_index_record", "project", "record"),
        Index("ix_record_index_subject", "project", "subject"),
    )
    dataset: str = _str(300, key=True)
    record: str = _str(32, key=True)
    project: str = _str(128)
    subject: str | None = _str(32, null=True)
    position: int = _big()


class DatasetRecordCount(SQLModel, table=True):
    """Distinct records per dataset version (kept by the record index)."""

    __tablename__ = "dataset_record_counts"
    dataset: str = _str(300, key=True)
    records: int = _big()


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
    position: int = _big()
    seq: int = _int()
    epoch: int = _int()
    project: str = _str(128)
    record: str = _str(32)
    deployment: str = _str(300)
    model: str = _str(300)
    at: str = _str(27)
    output: str = _txt()
    trace_id: str | None = _str(64, null=True)


class PredictionFilter(SQLModel, table=True):
    """Bloom filter of the (project, record) keys one epoch of the prediction index
    holds (``lineage.prediction_filters``): a lookup by record seeks only the epochs
    whose filter may hold it."""

    __tablename__ = "prediction_filters"
    epoch: int = _col(Integer, key=True)
    bits: bytes = _blob()


class PredictionFilterState(SQLModel, table=True):
    """One row (``id`` 1): the generation of the prediction filters, bumped whenever a
    sealed epoch's filter is written again (a rebuild, the end of the backfill) so that
    each process drops the filters it cached; and ``unfiltered``, how many of the first
    epochs may still lack a filter (those indexed before there were filters). Not a
    projection: it survives the rebuild that bumps it."""

    __tablename__ = "prediction_filter_state"
    id: int = _col(Integer, key=True)
    generation: int = _big()
    unfiltered: int = _int()


class PredictionCount(SQLModel, table=True):
    __tablename__ = "prediction_counts"
    deployment: str = _str(300, key=True)
    model: str = _str(300, key=True)
    n: int = _big()
    first_at: str = _str(27)
    last_at: str = _str(27)


class PredictionDay(SQLModel, table=True):
    """Predictions per deployment, model version and day (UTC, from each row's ``at``):
    what the entity pages chart, read without counting the prediction index."""

    __tablename__ = "prediction_days"
    deployment: str = _str(300, key=True)
    model: str = _str(300, key=True)
    day: str = _str(10, key=True)
    n: int = _big()


class LineageNode(SQLModel, table=True):
    __tablename__ = "lineage_nodes"
    __table_args__ = (Index("ix_lineage_nodes_position", "position"),)
    id: str = _str(300, key=True)
    kind: str = _str(16)
    project: str | None = _str(128, null=True)
    label: str = _str(300)
    created_at: str = _str(27)
    position: int = _big()


class LineageEdge(SQLModel, table=True):
    """A lineage edge (upstream src -> downstream dst) valid from .. to (null: still)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        Index("ix_lineage_edges_dst", "dst"),
        Index("ix_lineage_edges_opened", "opened_pos"),
        Index("ix_lineage_edges_closed", "closed_pos"),
    )
    src: str = _str(300, key=True)
    dst: str = _str(300, key=True)
    kind: str = _str(16, key=True)
    opened_pos: int = _big(key=True)
    valid_from: str = _str(27)
    valid_to: str | None = _str(27, null=True)
    closed_pos: int | None = _big(null=True)


class ErasureRow(SQLModel, table=True):
    """One erasure of a data subject: requested, then erased (``summary``: what it touched)."""

    __tablename__ = "erasures"
    __table_args__ = (Index("ix_erasures_reference", "project", "reference"),)
    erasure: str = _str(36, key=True)
    project: str = _str(128)
    reference: str = _str(32)
    status: str = _str(16)
    requested_by: str = _str(300)
    requested_at: str = _str(27)
    requested_pos: int = _big()
    erased_at: str | None = _str(27, null=True)
    erased_pos: int | None = _big(null=True)
    summary: str | None = _txt(null=True)


class ErasedRef(SQLModel, table=True):
    """An erased subject or record, by its erasure reference (never its pseudonym)."""

    __tablename__ = "erased_refs"
    project: str = _str(128, key=True)
    kind: str = _str(8, key=True)
    reference: str = _str(32, key=True)
    erased_pos: int = _big(key=True)
    erasure: str = _str(36)


class ProjectGrant(SQLModel, table=True):
    """A project's grant of access to another (``project-access-granted``): the
    grantee may use its dataset and model versions and read them in answers, from
    the grant until its revocation (null: still granted)."""

    __tablename__ = "project_grants"
    project: str = _str(128, key=True)
    grantee: str = _str(128, key=True)
    granted_pos: int = _big(key=True)
    granted_by: str = _str(300)
    granted_at: str = _str(27)
    reason: str | None = _txt(null=True)
    revoked_pos: int | None = _big(null=True)
    revoked_by: str | None = _str(300, null=True)
    revoked_at: str | None = _str(27, null=True)


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
    entry: str = _txt()


class TrailFolded(SQLModel, table=True):
    """How far a SQLite trail journal was folded into ``access_trail``."""

    __tablename__ = "trail_folded"
    journal: str = _str(36, key=True)
    upto: int = _big()


class Remediation(SQLModel, table=True):
    """What an erasure asks of a model version trained on the subject's data."""

    __tablename__ = "remediations"
    __table_args__ = (Index("ix_remediations_project", "project", "status"),)
    model: str = _str(300, key=True)
    erasure: str = _str(36, key=True)
    project: str = _str(128)
    status: str = _str(32)
    justification: str | None = _txt(null=True)
    approver: str | None = _str(300, null=True)
    flagged_pos: int = _big()
    resolved_by: str | None = _str(300, null=True)
    resolved_pos: int | None = _big(null=True)


class RunExecution(SQLModel, table=True):
    """The job that executes a run, as its executor submitted it and as the platform
    reported it since (``job-*`` events): where it was scheduled (node, GPUs), its
    attempts, and how it ended."""

    __tablename__ = "run_executions"
    __table_args__ = (Index("ix_run_executions_status", "project", "status"),)
    run: str = _str(64, key=True)
    project: str = _str(128)
    executor: str = _str(16)
    target: str = _str(300)
    name: str = _str(253)
    image: str | None = _str(500, null=True)
    command: str = _txt()
    resources: str = _txt()
    retries: int = _int()
    deadline_s: int | None = _big(null=True)
    spec_digest: str = _str(71)
    status: str = _str(16)
    attempts: int = _int()
    attempt: str | None = _str(253, null=True)
    node: str | None = _str(253, null=True)
    gpus: int | None = _col(Integer, null=True)
    gpu_product: str | None = _str(128, null=True)
    reason: str | None = _str(200, null=True)
    exit_code: int | None = _big(null=True)
    attempt_reason: str | None = _str(80, null=True)
    submitted_at: str = _str(27)
    scheduled_at: str | None = _str(27, null=True)
    started_at: str | None = _str(27, null=True)
    ended_at: str | None = _str(27, null=True)
    submitted_pos: int = _big()
    position: int = _big()


PREDICTIONS_PER_EVENT = 1_000_000
# Predictions per partition of the prediction index (see PredictionRow).
EPOCH_ROWS = 50_000
LOG_TABLES = ("events", "event_payloads")
# Append-only too: which events an erasure rewrote (never dropped by a rebuild).
REDACTION_TABLES = ("redactions",)
VAULT_TABLES = ("project_secrets", "subject_keys", "vault_entries", "erasure_requests")
# Not projections: a rebuild must leave them alone.
ACCESS_TABLES = (
    "api_keys",
    "access_trail",
    "trail_merkle_nodes",
    "trail_pending",
    "trail_folded",
    "web_sessions",
)
# Signed statements about the log, not a function of it: never dropped either.
CHECKPOINT_TABLES = ("checkpoints",)
# Projection tables with the columns that order their rows for a digest. Not
# ``prediction_filters``: its bits depend on the epoch size the rows were written with.
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
    "prediction_days": ("deployment", "model", "day"),
    "lineage_nodes": ("id",),
    "lineage_edges": ("src", "dst", "kind", "opened_pos"),
    "merkle_nodes": ("level", "idx"),
    "erasures": ("erasure",),
    "erased_refs": ("project", "kind", "reference", "erased_pos"),
    "remediations": ("model", "erasure"),
    "project_grants": ("project", "grantee", "granted_pos"),
    "run_executions": ("run",),
}

metadata = SQLModel.metadata
T = metadata.tables
