"""The event types of the registry's own records: datasets, runs, models, deployments,
predictions and vault entries (``registry.events.catalogue`` registers each). Record
keys and subject ids appear in them only as keyed pseudonyms, personal attributes only
as vault entry ids."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from registry.canonical import number_problem
from registry.events.catalogue import (
    Body,
    Part,
    check_dataset,
    check_model,
    check_pseudonym,
    check_run,
    check_uuid,
    distinct,
    each,
    event_type,
    optional,
    validates,
)
from registry.ids import NodeId
from registry.limits import MAX_ERROR_TYPE, MAX_SAFE_INTEGER

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

    _parents = validates("derived_from", distinct(check_dataset, "parent"))
    _producer = validates("produced_by", optional(check_run))


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

    _records = validates("records", each(check_pseudonym))

    _subjects = validates("subjects", each(check_pseudonym))

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

    _parent = validates("parent_run", optional(check_run))


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

    _run = validates("run", optional(check_run))


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

    _model = validates("model", check_model)


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

    _models = validates("models", distinct(check_model, "model version"))


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

    _entry = validates("entry", check_uuid)
