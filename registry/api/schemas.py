"""Request and response bodies: one family per entity (``XCreate``, ``XPublic``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Key = str | int
JSONScalar = str | int | float | bool | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- batches of events ------------------------------------------------------------------


class EventSubmission(Strict):
    """One event of a batch. For ``dataset-records-added``, ``predictions-logged`` and
    ``subject-data-stored`` the body carries raw keys (sealed into pseudonyms by the
    server); every other type carries its catalogue body (docs/events.md)."""

    event_id: str = Field(description="UUID chosen by the client: the idempotency key.")
    type: str = Field(description="Event type from the catalogue.")
    entity: str = Field(description="Typed node id the event is about.")
    body: dict[str, Any] = Field(description="Type-specific body.")
    occurred_at: str | None = Field(default=None, description="When it happened (RFC 3339).")
    actor: str | None = Field(
        default=None, description="Who caused it; stored with the key that sent it."
    )
    trace_id: str | None = Field(default=None, description="Trace id, if not the request's.")


class EventBatch(Strict):
    events: list[EventSubmission] = Field(description="Appended atomically, in order.")


class Positions(BaseModel):
    positions: list[int] = Field(description="Log position of each event, in order.")


class StoredEventPublic(BaseModel):
    position: int
    event_id: str
    type: str
    schema_version: int
    project: str
    entity: str
    actor: str
    occurred_at: str
    recorded_at: str
    body: dict[str, Any]
    personal_refs: list[str]
    trace_id: str | None
    leaf_hash: str


class EventsPublic(BaseModel):
    events: list[StoredEventPublic]
    next: int = Field(description="Position to ask for next.")


# --- native writes ------------------------------------------------------------------


class DatasetCreate(Strict):
    name: str
    version: str | None = None
    uri: str
    digest: str = Field(min_length=1, description="Content digest, e.g. 'sha256:<hex>'.")
    schema_: dict[str, str] | None = Field(default=None, alias="schema")
    row_count: int | None = Field(default=None, ge=0)
    records: list[Key] | None = Field(default=None, description="Record keys (raw).")
    subjects: list[Key | None] | None = Field(
        default=None, description="Each record's data-subject id (raw), or null."
    )
    derived_from: list[str] = Field(default_factory=list)
    produced_by: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    occurred_at: str | None = None


class DatasetPublic(BaseModel):
    id: str
    name: str
    version: str
    digest: str
    records: int


class RunCreate(Strict):
    job: str = Field(min_length=1)
    run_id: str | None = Field(default=None, description="UUID; a new one when absent.")
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    parent: str | None = None
    code: dict[str, Any] = Field(default_factory=dict, description="git_commit, git_dirty, ...")
    environment: dict[str, Any] = Field(default_factory=dict)
    occurred_at: str | None = None


class RunPublic(BaseModel):
    id: str
    job: str
    status: str


class RunInputs(Strict):
    inputs: list[str] = Field(min_length=1)
    occurred_at: str | None = None


class RunParams(Strict):
    params: dict[str, Any] = Field(min_length=1)
    occurred_at: str | None = None


class RunMetrics(Strict):
    metrics: dict[str, float] = Field(min_length=1)
    step: int | None = None
    occurred_at: str | None = None


class RunEnd(Strict):
    status: Literal["completed", "failed"] = "completed"
    error_type: str | None = Field(default=None, description="Exception class, when failed.")
    occurred_at: str | None = None


class ModelCreate(Strict):
    name: str
    version: str | None = Field(default=None, description="Next number when absent.")
    run: str | None = None
    artifact_uri: str
    artifact_digest: str = Field(min_length=1)
    framework: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    occurred_at: str | None = None


class ModelPublic(BaseModel):
    id: str
    name: str
    version: str
    artifact_digest: str


class AliasMove(Strict):
    version: str = Field(description="Model version (or another alias) to point at.")
    moved_by: str | None = None
    occurred_at: str | None = None


class DeploymentConfigure(Strict):
    endpoint: str
    served: dict[str, float] = Field(
        description="Model version id (or name@version) to traffic percentage; adds to 100."
    )
    occurred_at: str | None = None


class DeploymentPublic(BaseModel):
    id: str
    name: str
    endpoint: str
    served: dict[str, float]


class DeploymentRetire(Strict):
    reason: str | None = None
    occurred_at: str | None = None


class PredictionsCreate(Strict):
    records: list[Key] = Field(min_length=1, description="Record keys (raw).")
    outputs: list[Any] = Field(description="One JSON output per record.")
    model: str | None = Field(default=None, description="Model version of every row.")
    models: list[str] | None = Field(default=None, description="Model version per row.")
    at: str | list[str] | None = Field(default=None, description="One time, or one per row.")
    trace_ids: list[str | None] | None = None


class SubjectDataCreate(Strict):
    subject: Key = Field(description="Data-subject id (raw).")
    attributes: dict[str, Any] = Field(min_length=1)


class Entry(BaseModel):
    entry: str = Field(description="Vault entry id.")


class Position(BaseModel):
    position: int


# --- questions ------------------------------------------------------------------


class RecordQuery(Strict):
    record: Key = Field(description="Record key (raw), sent in the body to keep it out of URLs.")


class SubjectQuery(Strict):
    subject: Key = Field(description="Data-subject id (raw), sent in the body.")


Answer = dict[str, Any]


# --- keys -------------------------------------------------------------------------


class KeyCreate(Strict):
    role: Literal["viewer", "writer", "auditor", "dpo", "admin"]
    name: str | None = Field(default=None, max_length=200)


class KeyPublic(BaseModel):
    key_id: str
    project: str
    role: str
    name: str | None
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None


class KeyCreated(KeyPublic):
    token: str = Field(description="Shown once: store it now.")
