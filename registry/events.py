"""The event catalogue: every event type the log can hold, frozen and documented.

Each type is a small pydantic model for the event's ``body``, registered with
its kebab-case name, its ``schema_version`` and the kind of node it is about.
The class docstring is the type's documentation and each field carries a
description; ``docs/events.md`` is generated from here and a test fails when
anything is undocumented. A type never changes once released: a new
``schema_version`` comes with an upcaster from the old body.

Bodies hold no personal data: record keys and subject ids appear only as keyed
pseudonyms, personal attributes only as references to vault entries.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from registry.canonical import NUL_MESSAGE, json_problem, number_problem, printable, text_problem
from registry.errors import FieldError, InvalidNodeId, LedgerError
from registry.ids import Kind, NodeId, check_name, new_id
from registry.limits import (
    MAX_ACTOR,
    MAX_ENTITY,
    MAX_ERROR_TYPE,
    MAX_PROJECT,
    MAX_SAFE_INTEGER,
    MAX_TRACE_ID,
)
from registry.timeutil import is_stored, to_timestamp

PSEUDONYM_RE = re.compile(r"^[0-9a-f]{32}$")


class Part(BaseModel):
    """Base of every event body and of the models nested in one: frozen, no unknown
    fields, and no NUL in a text field (projections copy text fields into columns,
    and PostgreSQL text cannot hold NUL; free-form JSON values may, being stored as
    JSON text where NUL is written \\u0000)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        texts = value if isinstance(value, tuple) else (value,)
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise PydanticCustomError("text", NUL_MESSAGE)
        return value


class Body(Part):
    """Base of every event body: frozen, no unknown fields, no NUL in text fields."""


@dataclass(frozen=True)
class EventType:
    """One entry of the catalogue."""

    name: str
    schema_version: int
    entity_kind: Kind
    body: type[Body]
    doc: str


CATALOGUE: dict[str, EventType] = {}
# (type, from_version) -> function turning an old body into the next version's body.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def event_type(name: str, *, entity: Kind, version: int = 1) -> Callable[[type[Body]], type[Body]]:
    """Register a body class in the catalogue under ``name``."""

    def register(cls: type[Body]) -> type[Body]:
        if name in CATALOGUE:
            raise RuntimeError(f"event type {name} registered twice")
        CATALOGUE[name] = EventType(name, version, entity, cls, (cls.__doc__ or "").strip())
        return cls

    return register


def _node(kind: Kind) -> Callable[[str], str]:
    def check(value: str) -> str:
        parsed = NodeId.parse(value)
        if parsed.kind != kind:
            raise ValueError(f"expected a {kind} id, got a {parsed.kind} id {value!r}")
        return value

    return check


_check_dataset = _node("dataset")
_check_run = _node("run")
_check_model = _node("model")


def _check_pseudonym(value: str) -> str:
    if not PSEUDONYM_RE.match(value):
        raise ValueError("expected a 32-character lowercase hex pseudonym, never a raw key")
    return value


# --- datasets -----------------------------------------------------------------


@event_type("dataset-version-registered", entity="dataset")
class DatasetVersionRegistered(Body):
    """A dataset version came into being: its content digest, location, schema and size.

    The entity is ``dataset:<project>/<name>@<version>``. A version is immutable:
    registering the same id again is refused. ``derived_from`` names the versions
    it was made from (cleaning, sampling, joining) and ``produced_by`` the run that
    wrote it, if any; both become lineage edges.
    """

    name: str = Field(max_length=128, description="Dataset name, unique within the project.")
    version: str = Field(max_length=128, description="Version label, unique within the dataset.")
    digest: str = Field(
        min_length=1, max_length=300, description="Content digest, e.g. 'sha256:<hex>'."
    )
    uri: str = Field(description="Where the data lives (file://, s3://, ...).")
    schema_: dict[str, str] | None = Field(
        default=None, alias="schema", description="Column name to type, when known."
    )
    row_count: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SAFE_INTEGER,
        strict=True,
        description="Number of rows, when known.",
    )
    derived_from: tuple[str, ...] = Field(
        default=(), description="Dataset version ids this version was derived from."
    )
    produced_by: str | None = Field(default=None, description="Run id that wrote this version.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("derived_from")
    @classmethod
    def _parents(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            _check_dataset(item)
        if len(set(value)) != len(value):
            raise ValueError("lists the same parent twice")
        return value

    @field_validator("produced_by")
    @classmethod
    def _producer(cls, value: str | None) -> str | None:
        return None if value is None else _check_run(value)


@event_type("dataset-records-added", entity="dataset")
class DatasetRecordsAdded(Body):
    """Record membership of a dataset version, in chunks: which records it holds.

    ``records`` are record-key pseudonyms; ``subjects`` holds, position for
    position, the pseudonym of each record's data subject or null. Large
    versions are split over several events appended in the same batch.
    """

    records: tuple[str, ...] = Field(description="Record-key pseudonyms.")
    subjects: tuple[str | None, ...] = Field(
        description="Data-subject pseudonym of each record, or null, aligned with records."
    )

    @field_validator("records")
    @classmethod
    def _records(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            _check_pseudonym(item)
        return value

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, value: tuple[str | None, ...]) -> tuple[str | None, ...]:
        for item in value:
            if item is not None:
                _check_pseudonym(item)
        return value

    @model_validator(mode="after")
    def _aligned(self) -> DatasetRecordsAdded:
        if len(self.records) != len(self.subjects):
            raise ValueError(
                f"records has {len(self.records)} items but subjects has {len(self.subjects)}; "
                "expected one subject (or null) per record"
            )
        return self


# --- runs -----------------------------------------------------------------------


@event_type("run-started", entity="run")
class RunStarted(Body):
    """A run of a job began, with the code version and environment it ran in."""

    job: str = Field(
        min_length=1, max_length=300, description="Job name (what kind of work this run does)."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters at start.")
    code: dict[str, Any] = Field(
        default_factory=dict, description="Code version: git_commit, git_dirty, git_branch."
    )
    environment: dict[str, Any] = Field(
        default_factory=dict, description="python, platform, host and key package versions."
    )
    parent_run: str | None = Field(default=None, description="Run id of the parent run, if any.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")

    @field_validator("parent_run")
    @classmethod
    def _parent(cls, value: str | None) -> str | None:
        return None if value is None else _check_run(value)


@event_type("run-inputs-used", entity="run")
class RunInputsUsed(Body):
    """A run read these dataset versions or model versions (lineage edges into the run)."""

    inputs: tuple[str, ...] = Field(min_length=1, description="Dataset or model version ids.")

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if NodeId.parse(item).kind not in ("dataset", "model"):
                raise ValueError(f"{item!r}: expected a dataset or model version id")
        return value


@event_type("run-params-logged", entity="run")
class RunParamsLogged(Body):
    """Parameters set during a run; a key logged again keeps its latest value."""

    params: dict[str, Any] = Field(min_length=1, description="Parameter name to JSON value.")


class Metric(Part):
    """One metric observation."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key: str = Field(min_length=1, description="Metric name.")
    value: float = Field(strict=True, description="Finite value.")
    step: int | None = Field(default=None, strict=True, description="Training step, when known.")

    @field_validator("value", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        why = number_problem(value) if type(value) is int else None
        if why is not None:  # a double would round it
            raise ValueError(why)
        return value

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value


@event_type("run-metrics-logged", entity="run")
class RunMetricsLogged(Body):
    """Metric observations of a run."""

    metrics: tuple[Metric, ...] = Field(min_length=1, description="Observations.")


@event_type("run-completed", entity="run")
class RunCompleted(Body):
    """A run ended successfully."""


@event_type("run-failed", entity="run")
class RunFailed(Body):
    """A run ended with an error. Only the error's type is kept: messages may hold personal data."""

    error_type: str = Field(
        max_length=MAX_ERROR_TYPE, description="Qualified name of the exception class."
    )


# --- models ---------------------------------------------------------------------


@event_type("model-version-registered", entity="model")
class ModelVersionRegistered(Body):
    """A model version was produced (normally by a run) and its artifact digested."""

    name: str = Field(max_length=128, description="Model name, unique within the project.")
    version: str = Field(max_length=128, description="Version label, unique within the model.")
    run: str | None = Field(default=None, description="Run id that produced it.")
    artifact_uri: str = Field(description="Where the artifact lives.")
    artifact_digest: str = Field(
        min_length=1, max_length=300, description="Artifact digest, 'sha256:<hex>'."
    )
    framework: str | None = Field(
        default=None, max_length=128, description="sklearn, pytorch, xgboost, ..."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")

    @field_validator("run")
    @classmethod
    def _run(cls, value: str | None) -> str | None:
        return None if value is None else _check_run(value)


@event_type("model-alias-moved", entity="model")
class ModelAliasMoved(Body):
    """An alias or stage (e.g. 'production') of a model now points at this version.

    The actor in the envelope is who moved it; the alias's previous target is
    derived from the log.
    """

    alias: str = Field(min_length=1, max_length=128, description="Alias or stage name.")


# --- deployments -------------------------------------------------------------------


class Served(Part):
    """One model version behind a deployment and its share of traffic."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="Model version id.")
    traffic: float = Field(ge=0, le=100, strict=True, description="Percent of requests, 0-100.")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return _check_model(value)


@event_type("deployment-configured", entity="deployment")
class DeploymentConfigured(Body):
    """A deployment was created or changed: its endpoint and the model versions it serves.

    Each event states the whole configuration; model versions absent from it
    stop being served at the event's time.
    """

    endpoint: str = Field(description="Serving endpoint (URL or service name).")
    served: tuple[Served, ...] = Field(min_length=1, description="Model versions and traffic.")

    @model_validator(mode="after")
    def _split(self) -> DeploymentConfigured:
        models = [s.model for s in self.served]
        if len(set(models)) != len(models):
            raise ValueError("lists the same model version twice")
        total = sum(s.traffic for s in self.served)
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"traffic adds up to {total:g}, expected 100")
        return self


@event_type("deployment-retired", entity="deployment")
class DeploymentRetired(Body):
    """A deployment stopped serving; every model version behind it stops at this time."""

    reason: str | None = Field(default=None, description="Why, in a few words.")


# --- predictions ----------------------------------------------------------------------


@event_type("predictions-logged", entity="deployment")
class PredictionsLogged(Body):
    """A batch of predictions made by a deployment.

    The rows travel as a columnar payload (an Arrow IPC stream, see
    ``registry.payloads``: record pseudonym, model index, JSON output, time,
    trace id) stored under the event's position; the body names the batch's
    model versions, its row count and the payload's SHA-256, so the leaf hash
    covers every row.
    """

    models: tuple[str, ...] = Field(
        min_length=1,
        description="Distinct model version ids; the payload's model column indexes it.",
    )
    count: int = Field(
        ge=1,
        strict=True,
        le=1_000_000,
        description="Number of predictions (rows), at most 1,000,000.",
    )
    payload_digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="'sha256:<hex>' of the payload bytes."
    )
    payload_format: Literal["arrow-ipc-stream/1"] = Field(
        default="arrow-ipc-stream/1", description="Encoding of the payload."
    )

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            _check_model(item)
        if len(set(value)) != len(value):
            raise ValueError("lists the same model version twice")
        return value


# Types whose events carry a payload, and the check that it fits the body.
PAYLOAD_TYPES = frozenset({"predictions-logged"})


# --- personal data -------------------------------------------------------------------


@event_type("subject-data-stored", entity="subject")
class SubjectDataStored(Body):
    """Personal attributes of a data subject were put in the encrypted vault.

    Only the vault entry id and the attribute names enter the log; the values
    are encrypted under the subject's own key and can be erased.
    """

    entry: str = Field(description="Vault entry id (uuid).")
    fields: tuple[str, ...] = Field(description="Attribute names stored (never values).")

    @field_validator("entry")
    @classmethod
    def _entry(cls, value: str) -> str:
        return str(uuid.UUID(value))


# --- erasure ---------------------------------------------------------------------------------

REMEDIATION_STATUSES = ("retrain-required", "retained-with-justification")


def _check_uuid(value: str) -> str:
    return str(uuid.UUID(value))


class Retention(Part):
    """A model version kept in service despite the erasure, and who approved why."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="Model version id, or '*' for every affected model version.")
    justification: str = Field(min_length=1, max_length=2000, description="Why it is kept.")
    approver: str = Field(min_length=1, max_length=300, description="Who approved keeping it.")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return value if value == "*" else _check_model(value)


@event_type("subject-erasure-requested", entity="subject")
class SubjectErasureRequested(Body):
    """A data subject's erasure was requested (GDPR Art. 17) and is under way.

    The entity is ``subject:<project>/<reference>``, the reference being a keyed
    hash of the subject's pseudonym (``Pseudonymizer.erasure_reference``): it
    names the erasure without naming the pseudonym the erased data carried.
    ``retain`` lists the affected model versions kept in service, with a
    justification and an approver; every other one is flagged
    ``retrain-required``. Appended only by ``mlledger erase``.
    """

    erasure: str = Field(description="Erasure id (uuid), shared by the request and completion.")
    retain: tuple[Retention, ...] = Field(
        default=(), description="Model versions retained with a justification ('*': all)."
    )

    @field_validator("erasure")
    @classmethod
    def _erasure(cls, value: str) -> str:
        return _check_uuid(value)


class Flag(Part):
    """The remediation status an erasure gave one affected model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="Model version id.")
    status: Literal["retrain-required", "retained-with-justification"] = Field(
        description="retrain-required, or retained-with-justification."
    )
    justification: str | None = Field(default=None, description="Why it is retained, if it is.")
    approver: str | None = Field(default=None, description="Who approved retaining it.")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return _check_model(value)


class Redacted(Part):
    """One event the erasure rewrote, and the hashes of what it now holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    position: int = Field(ge=0, description="Position of the rewritten event.")
    leaf: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="Hex leaf hash (SHA-256 of 0x00 and the RFC 8785 form) of its new content.",
    )
    payload: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="'sha256:<hex>' of its new payload, when its payload was rewritten.",
    )


@event_type("subject-erased", entity="subject")
class SubjectErased(Body):
    """A data subject's erasure completed: what it touched and what it asks of models.

    Same entity as its ``subject-erasure-requested``. In the same transaction the
    subject's vault entries and key were deleted, their records and predictions
    removed from the indexes, and every event that held their pseudonyms
    rewritten (``redactions``): each keeps its original leaf hash, so every
    checkpoint and proof stands, and this event declares the hash of what each
    now holds. ``record_refs`` are the erased records' erasure references, kept so
    that a question about them answers "erased". Appended only by
    ``mlledger erase``.
    """

    erasure: str = Field(description="Erasure id (uuid) of the request.")
    request: int = Field(ge=0, description="Position of the subject-erasure-requested event.")
    records: int = Field(ge=0, description="Number of the subject's records erased.")
    record_refs: tuple[str, ...] = Field(
        default=(), description="Erasure references of those records, sorted."
    )
    datasets: tuple[str, ...] = Field(
        default=(), description="Dataset versions that held the records."
    )
    derived_datasets: tuple[str, ...] = Field(
        default=(), description="Dataset versions downstream of those."
    )
    runs: tuple[str, ...] = Field(default=(), description="Runs downstream of the datasets.")
    models: tuple[Flag, ...] = Field(
        default=(), description="Model versions downstream, each with its remediation status."
    )
    deployments: tuple[str, ...] = Field(
        default=(), description="Deployments that served those model versions."
    )
    predictions: int = Field(ge=0, description="Predictions about the records, redacted.")
    vault_entries: int = Field(ge=0, description="Vault entries of the subject, deleted.")
    redactions: tuple[Redacted, ...] = Field(
        default=(), description="Events rewritten, by position."
    )

    @field_validator("erasure")
    @classmethod
    def _erasure(cls, value: str) -> str:
        return _check_uuid(value)

    @field_validator("record_refs")
    @classmethod
    def _refs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            _check_pseudonym(item)
        return value


@event_type("erasure-remediated", entity="model")
class ErasureRemediated(Body):
    """This model version remediates an erasure: it replaces ``model``, which the
    erasure flagged ``retrain-required``, and was trained without the erased records.

    The ledger checks that the flag is open and that no dataset version the
    producing run read holds an erased record or was affected by the erasure;
    the flag is then resolved by this event.
    """

    erasure: str = Field(description="Erasure id (uuid).")
    model: str = Field(description="The flagged model version this one replaces.")

    @field_validator("erasure")
    @classmethod
    def _erasure(cls, value: str) -> str:
        return _check_uuid(value)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return _check_model(value)


# Types only the ledger's own erasure process appends; a client sending one is refused.
INTERNAL_TYPES = frozenset({"subject-erasure-requested", "subject-erased"})


# --- projects ----------------------------------------------------------------------------

_REASON_MAX = 1000


def _grantee(value: str) -> str:
    try:
        return check_name(value, "grantee project")
    except InvalidNodeId as exc:  # a plain ValueError, for pydantic to report
        raise ValueError(str(exc)) from None


class _Grant(Body):
    grantee: str = Field(description="The project granted access.")
    reason: str | None = Field(
        default=None, max_length=_REASON_MAX, description="Why, in a few words."
    )

    @field_validator("grantee")
    @classmethod
    def _check_grantee(cls, value: str) -> str:
        return _grantee(value)


@event_type("project-access-granted", entity="project")
class ProjectAccessGranted(_Grant):
    """A project lets another project use and read its dataset and model versions.

    The grantee's runs may then take this project's dataset and model versions as
    inputs and derive datasets from them, and the grantee's readers see this
    project's nodes in lineage answers. Appended by the granting project's admin
    (``registry.grants``).
    """


@event_type("project-access-revoked", entity="project")
class ProjectAccessRevoked(_Grant):
    """A project withdraws the access it granted another project.

    New links to this project's versions are refused from now on; links made under
    the grant stay in the log. Appended by the granting project's admin.
    """

    grantee: str = Field(description="The project whose access ends.")


# --- OpenLineage -----------------------------------------------------------------------

OpenLineageEventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]


class OpenLineageJob(Part):
    """The job of an OpenLineage event, as sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    namespace: str = Field(description="OpenLineage job namespace (usually the scheduler's).")
    name: str = Field(description="OpenLineage job name, unique within its namespace.")
    facets: dict[str, Any] = Field(default_factory=dict, description="Job facets, as sent.")


class _OpenLineageDataset(Part):
    """Fields common to the inputs and outputs of an OpenLineage event."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    namespace: str = Field(description="OpenLineage dataset namespace (the data source).")
    name: str = Field(description="OpenLineage dataset name, unique within its namespace.")
    facets: dict[str, Any] = Field(default_factory=dict, description="Dataset facets, as sent.")
    dataset: str = Field(description="Dataset version id it maps to in this ledger.")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        return _check_dataset(value)


class OpenLineageInput(_OpenLineageDataset):
    """An input dataset of an OpenLineage event, as sent, and the dataset version it maps to."""

    input_facets: dict[str, Any] = Field(
        default_factory=dict, description="The dataset's inputFacets, as sent."
    )


class OpenLineageOutput(_OpenLineageDataset):
    """An output dataset of an OpenLineage event, as sent, and the dataset version it maps to."""

    output_facets: dict[str, Any] = Field(
        default_factory=dict, description="The dataset's outputFacets, as sent."
    )


_REDACTED = "JSON paths (dotted, from the event's root) of fields removed before storage."
_STRINGIFIED = (
    "JSON paths of numbers stored as strings: integers beyond ±(2^53-1) and non-finite "
    "numbers, which canonical JSON cannot hold."
)


@event_type("openlineage-run-event", entity="run")
class OpenLineageRunEvent(Body):
    """An OpenLineage RunEvent as received (``POST /api/v1/lineage``), with its facets.

    The entity is ``run:<runId>``. The same batch holds what the event means in
    this ledger: ``run-started`` the first time the run is seen (and one for an
    unknown parent run), the dataset versions it read and wrote, and
    ``run-completed`` or ``run-failed`` for COMPLETE, FAIL and ABORT. This event
    keeps everything else: the event type and time as sent, the producer, and
    every facet. Fields that may hold personal data (an error's message and
    stack trace, environment variables) are removed and listed in
    ``redacted``. The event id is derived from the project and the whole
    OpenLineage document, so sending a document again appends nothing.
    """

    event_type: OpenLineageEventType | None = Field(
        default=None, description="eventType as sent (START, RUNNING, COMPLETE, ...), if any."
    )
    event_time: str = Field(description="eventTime exactly as sent.")
    producer: str = Field(description="URI of the software that produced the event.")
    schema_url: str = Field(description="schemaURL: the OpenLineage schema the event follows.")
    job: OpenLineageJob = Field(description="The job, with its facets.")
    run_facets: dict[str, Any] = Field(default_factory=dict, description="Run facets, as sent.")
    inputs: tuple[OpenLineageInput, ...] = Field(
        default=(), description="Input datasets, in the order sent."
    )
    outputs: tuple[OpenLineageOutput, ...] = Field(
        default=(), description="Output datasets, in the order sent."
    )
    redacted: tuple[str, ...] = Field(default=(), description=_REDACTED)
    stringified: tuple[str, ...] = Field(default=(), description=_STRINGIFIED)


@event_type("openlineage-dataset-event", entity="dataset")
class OpenLineageDatasetEvent(Body):
    """An OpenLineage DatasetEvent (static metadata about a dataset) as received.

    The entity is the dataset version it maps to: the one its DatasetVersion
    facet names, else the latest registered, else ``unversioned``; a version
    not yet registered is registered in the same batch. The facets are kept as
    sent; the version's schema, once registered, does not change.
    """

    event_time: str = Field(description="eventTime exactly as sent.")
    producer: str = Field(description="URI of the software that produced the event.")
    schema_url: str = Field(description="schemaURL: the OpenLineage schema the event follows.")
    namespace: str = Field(description="OpenLineage dataset namespace (the data source).")
    name: str = Field(description="OpenLineage dataset name, unique within its namespace.")
    facets: dict[str, Any] = Field(default_factory=dict, description="Dataset facets, as sent.")
    redacted: tuple[str, ...] = Field(default=(), description=_REDACTED)
    stringified: tuple[str, ...] = Field(default=(), description=_STRINGIFIED)


@event_type("openlineage-job-event", entity="job")
class OpenLineageJobEvent(Body):
    """An OpenLineage JobEvent (static metadata about a job, no run) as received.

    The entity is ``job:<project>/<name>``, the name derived from the
    OpenLineage namespace and name (see ``docs/openlineage.md``). Its datasets
    are registered as for a RunEvent's inputs; with no run there are no
    lineage edges, only this record of what the job declares.
    """

    event_time: str = Field(description="eventTime exactly as sent.")
    producer: str = Field(description="URI of the software that produced the event.")
    schema_url: str = Field(description="schemaURL: the OpenLineage schema the event follows.")
    job: OpenLineageJob = Field(description="The job, with its facets.")
    inputs: tuple[OpenLineageInput, ...] = Field(
        default=(), description="Input datasets, in the order sent."
    )
    outputs: tuple[OpenLineageOutput, ...] = Field(
        default=(), description="Output datasets, in the order sent."
    )
    redacted: tuple[str, ...] = Field(default=(), description=_REDACTED)
    stringified: tuple[str, ...] = Field(default=(), description=_STRINGIFIED)


# --- envelope --------------------------------------------------------------------------


class NewEvent(BaseModel):
    """An event about to be appended: everything but position, recorded_at and hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(description="UUID; the idempotency key.")
    type: str = Field(description="Event type name from the catalogue.")
    schema_version: int = Field(description="Version of the body schema.")
    project: str = Field(description="Project the event belongs to.")
    entity: str = Field(
        description=f"Typed node id the event is about; at most {MAX_ENTITY} characters."
    )
    actor: str = Field(
        description=f"Who caused it (user, service, key); 1 to {MAX_ACTOR} characters."
    )
    occurred_at: str = Field(
        description="When it happened, as reported by the writer (years 1 to 9999, UTC)."
    )
    body: dict[str, Any] = Field(
        description=(
            "Type-specific, non-personal body; objects and arrays nest at most "
            "64 levels, the body being the first."
        )
    )
    personal_refs: tuple[str, ...] = Field(default=(), description="Vault entry ids.")
    trace_id: str | None = Field(
        default=None,
        description=f"Trace id of the request, if any; at most {MAX_TRACE_ID} characters.",
    )
    payload: bytes | None = Field(
        default=None,
        repr=False,
        description="Columnar rows (predictions), covered by the body's payload_digest.",
    )
    # Set by make_event to the body and payload it has just validated, so append need
    # not validate them again; a copy with another body or payload is checked anew.
    _checked: tuple[int, int] | None = PrivateAttr(default=None)

    def is_checked(self) -> bool:
        """Whether make_event validated this very body and payload."""
        checked = self.__pydantic_private__.get("_checked")  # type: ignore[union-attr]
        return bool(checked == (id(self.body), id(self.payload)))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the log."""

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
    personal_refs: tuple[str, ...]
    trace_id: str | None
    leaf_hash: bytes
    payload: bytes | None = None

    def hashed_form(self) -> dict[str, Any]:
        """The fields covered by the leaf hash, as hashed."""
        return hashed_form(
            self.position,
            self.event_id,
            self.type,
            self.schema_version,
            self.project,
            self.entity,
            self.actor,
            self.occurred_at,
            self.recorded_at,
            self.body,
            self.personal_refs,
            self.trace_id,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, leaf hash in hex."""
        out = self.hashed_form()
        out["leaf_hash"] = self.leaf_hash.hex()
        return out


def hashed_form(
    position: int,
    event_id: str,
    type: str,
    schema_version: int,
    project: str,
    entity: str,
    actor: str,
    occurred_at: str,
    recorded_at: str,
    body: dict[str, Any],
    personal_refs: tuple[str, ...] | list[str],
    trace_id: str | None,
) -> dict[str, Any]:
    """The dictionary whose canonical JSON is the Merkle leaf of an event."""
    return {
        "position": position,
        "event_id": event_id,
        "type": type,
        "schema_version": schema_version,
        "project": project,
        "entity": entity,
        "actor": actor,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "body": body,
        "personal_refs": list(personal_refs),
        "trace_id": trace_id,
    }


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(printable(str(part)) for part in loc)


def _text_field(value: str, most: int) -> str | None:
    """Why a text field of the envelope cannot be stored, or None."""
    if not value:
        return "is empty; expected a non-empty string"
    if len(value) > most:
        return f"is {len(value)} characters long; expected at most {most}"
    return text_problem(value)


def envelope_problem(
    project: str, entity: str, actor: str, trace_id: str | None
) -> tuple[str, str] | None:
    """``(field, why)`` for the first envelope field the stores cannot hold, or None."""
    for field, value, most in (
        ("project", project, MAX_PROJECT),
        ("entity", entity, MAX_ENTITY),
        ("actor", actor, MAX_ACTOR),
        ("trace_id", trace_id, MAX_TRACE_ID),
    ):
        if value is None:
            continue
        if not isinstance(value, str):
            return field, f"expected a string, got {type(value).__name__}"
        why = _text_field(value, most)
        if why is not None:
            return field, why
    return None


def body_problem(body: Any) -> tuple[str, str] | None:
    """``(field, why)`` for the first part of a body no store can hold (a lone surrogate,
    nesting deeper than ``MAX_DEPTH``), or None. NUL in text fields is the body
    model's to refuse (``Part``)."""
    found = json_problem(body)
    if found is None:
        return None
    path, why = found
    return ("body." + path if path else "body"), why


def make_event(
    type: str,
    *,
    project: str,
    entity: str,
    actor: str,
    body: dict[str, Any] | Body,
    occurred_at: Any = None,
    event_id: str | uuid.UUID | None = None,
    personal_refs: tuple[str, ...] = (),
    trace_id: str | None = None,
    payload: bytes | None = None,
) -> NewEvent:
    """Build a validated event; raise LedgerError naming the bad field."""
    try:
        spec = CATALOGUE[type]
    except KeyError:
        raise LedgerError(
            f"unknown event type {type!r}; expected one of {', '.join(CATALOGUE)}"
        ) from None
    problem = envelope_problem(project, entity, actor, trace_id)
    if problem is not None:
        raise FieldError(problem[0], f"{type}: {problem[0]} {problem[1]}")
    parsed = NodeId.parse(entity)
    if parsed.kind != spec.entity_kind:
        raise FieldError(
            "entity",
            f"{type}: entity {entity!r} is a {parsed.kind} id, expected a {spec.entity_kind} id",
        )
    if parsed.project is not None and parsed.project != project:
        raise FieldError(
            "entity",
            f"{type}: entity {entity!r} belongs to project {parsed.project!r}, not {project!r}",
        )
    if isinstance(body, Body):
        model = body
    else:
        problem = body_problem(body)
        if problem is not None:
            where = problem[0].removeprefix("body").removeprefix(".")
            raise FieldError(
                problem[0],
                f"{type}: body field {where!r} {problem[1]}"
                if where
                else f"{type}: body {problem[1]}",
            )
        try:
            model = spec.body.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = _field_path(err["loc"])
            raise FieldError(
                "body." + where if where else "body",
                f"{type}: body field {where!r}: {err['msg']}"
                if where
                else f"{type}: body: {err['msg']}",
            ) from None
    try:
        event_uuid = str(uuid.UUID(str(event_id))) if event_id is not None else new_id()
    except ValueError:
        raise FieldError("event_id", f"{type}: event_id {str(event_id)!r} is not a UUID") from None
    event = NewEvent(
        event_id=event_uuid,
        type=type,
        schema_version=spec.schema_version,
        project=project,
        entity=entity,
        actor=actor,
        occurred_at=to_timestamp(occurred_at, "occurred_at"),
        body=model.model_dump(mode="json", by_alias=True, exclude_none=False),
        personal_refs=tuple(personal_refs),
        trace_id=trace_id,
        payload=payload,
    )
    _check_payload(event)
    event._checked = (id(event.body), id(event.payload))
    return event


def validate_new(event: NewEvent) -> tuple[str, str] | None:
    """Re-check an event built elsewhere (e.g. sent over the wire).

    Return ``(field, message)`` for the first problem, or None when it is valid.
    """
    if event.is_checked():
        return None
    spec = CATALOGUE.get(event.type)
    if spec is None:
        return "type", f"unknown event type {event.type!r}"
    if event.schema_version != spec.schema_version:
        return "schema_version", f"{event.schema_version} is not current ({spec.schema_version})"
    problem = envelope_problem(event.project, event.entity, event.actor, event.trace_id)
    if problem is not None:
        return problem
    if not is_stored(event.occurred_at):
        return "occurred_at", (
            f"{event.occurred_at!r} is not a stored timestamp: expected "
            "YYYY-MM-DDTHH:MM:SS.ffffffZ (registry.timeutil.to_timestamp makes one)"
        )
    try:
        parsed = NodeId.parse(event.entity)
    except LedgerError as exc:
        return "entity", str(exc)
    if parsed.kind != spec.entity_kind:
        return "entity", f"expected a {spec.entity_kind} id, got {event.entity!r}"
    if parsed.project is not None and parsed.project != event.project:
        return "entity", f"belongs to project {parsed.project!r}, not {event.project!r}"
    problem = body_problem(event.body)
    if problem is not None:
        return problem
    try:
        spec.body.model_validate(event.body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _field_path(err["loc"])
        return ("body." + where if where else "body"), err["msg"]
    if event.type in PAYLOAD_TYPES:
        from registry.payloads import check_predictions

        return check_predictions(event.body, event.payload)
    if event.payload is not None:
        return "payload", f"{event.type} events carry no payload"
    return None


def normalised(event: NewEvent) -> NewEvent:
    """The event with its body in schema form (defaults filled, aliases applied), as
    ``make_event`` builds it; call after ``validate_new`` found no problem."""
    if event.is_checked():
        return event
    body = CATALOGUE[event.type].body.model_validate(event.body)
    return event.model_copy(update={"body": body.model_dump(mode="json", by_alias=True)})


def _check_payload(event: NewEvent) -> None:
    """A payload must go with the types that have one, and match the body's digest."""
    if (event.payload is not None) != (event.type in PAYLOAD_TYPES):
        raise LedgerError(
            f"{event.type}: "
            + ("needs its rows as a payload" if event.payload is None else "carries no payload")
        )
    if event.payload is not None:
        from registry.payloads import digest

        if digest(event.payload) != event.body["payload_digest"]:
            raise LedgerError(
                f"{event.type}: body field 'payload_digest' does not match the payload"
            )


def upcast(type: str, schema_version: int, body: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored body up to the current schema version of its type."""
    current = CATALOGUE[type].schema_version
    while schema_version < current:
        body = UPCASTERS[(type, schema_version)](body)
        schema_version += 1
    return body


# JSON string literal, as RFC 8785 writes it (same escapes as the C encoder, no \u for
# non-ASCII): the C function itself, without the encoder object around it.
_string: Callable[[str], str] = json.encoder.encode_basestring


def canonical_event(
    position: int,
    event_id: str,
    type: str,
    schema_version: int,
    project: str,
    entity: str,
    actor: str,
    occurred_at: str,
    recorded_at: str,
    body_json: str,
    personal_refs: tuple[str, ...] | list[str],
    trace_id: str | None,
) -> bytes:
    """RFC 8785 form of ``hashed_form(...)``, given the body's canonical JSON.

    Equal to ``canonical_json(hashed_form(...))`` (a test checks it against the
    reference encoder) but serialises the body, the large part, only once.
    """
    refs = "[" + ",".join(_string(r) for r in personal_refs) + "]"
    trace = "null" if trace_id is None else _string(trace_id)
    return (
        f'{{"actor":{_string(actor)},"body":{body_json},"entity":{_string(entity)},'
        f'"event_id":{_string(event_id)},"occurred_at":{_string(occurred_at)},'
        f'"personal_refs":{refs},"position":{position},"project":{_string(project)},'
        f'"recorded_at":{_string(recorded_at)},"schema_version":{schema_version},'
        f'"trace_id":{trace},"type":{_string(type)}}}'
    ).encode()
