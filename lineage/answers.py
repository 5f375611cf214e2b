"""The answers of the lineage questions, as typed models.

``lineage.queries`` returns these; the HTTP API declares them as the response of
each question (so the OpenAPI document describes every answer), the CLI renders
them, and the SDK hands out their JSON form.

Shapes follow one rule (docs/api.md, "Answers"): a list of graph nodes is a list
of objects naming each node by its kind (``dataset``, ``run``, ``model``,
``deployment``) with its label (``label``; a run's is its ``job``); an id that a
member merely refers to (a prediction's model and deployment, a record's dataset
versions, the model versions a deployment serves) is a bare id. ``withheld``
(nodes of projects the asker may not read) and ``erased`` (the latest erasure of
the record or subject asked about) appear only when there is something to say.

An answer also reads like the mapping it is sent as (``answer["datasets"]`` is
the list of dictionaries the JSON holds, ``answer.get("erased")``), for code
written against the JSON.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    with_config,
)
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import TypedDict


class Shape(BaseModel):
    """A part of an answer: fields in wire order, sent by their JSON names."""

    model_config = ConfigDict(
        extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    def _field(self, key: str) -> str:
        for name, info in type(self).model_fields.items():
            if key in (name, info.serialization_alias):
                return name
        raise KeyError(key)

    def __getitem__(self, key: str) -> Any:
        """The member ``key`` in its JSON form (nested parts as dictionaries), as the
        JSON names it; KeyError when the JSON leaves it out."""
        return self.model_dump(mode="json", include={self._field(key)})[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self.model_dump()

    def get(self, key: str, default: Any = None) -> Any:
        """The member ``key``, or ``default`` when the JSON has none."""
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        """The members the JSON holds, in order."""
        return list(self.model_dump())

    @classmethod
    def built(cls, **values: Any) -> Self:
        """The answer a query built from the projections, held as built: not validated
        again. An answer may hold thousands of parts, and validating them cost more than
        the query itself; every question's answer is validated against its model in the
        tests instead (tests/test_answers.py). What ``model_construct`` makes, without its
        generality (aliases, default factories), which costs as much as a small question."""
        answer = cls.__new__(cls)
        given = set(values)
        for name, default in _defaults(cls):
            if name not in given:
                values[name] = default
        object.__setattr__(answer, "__dict__", values)
        object.__setattr__(answer, "__pydantic_fields_set__", given)
        object.__setattr__(answer, "__pydantic_extra__", None)
        object.__setattr__(answer, "__pydantic_private__", None)
        return answer


@functools.cache
def _defaults(kind: type[Shape]) -> tuple[tuple[str, Any], ...]:
    """The members of ``kind`` that have a default, with it (answers default only to
    constants: a default factory would have to run for each answer)."""
    found = []
    for name, field in kind.model_fields.items():
        if field.default_factory is not None:
            raise TypeError(f"{kind.__name__}.{name}: Shape.built takes no default factory")
        if not field.is_required():
            found.append((name, field.default))
    return tuple(found)


class Omitting(Shape):
    """A part whose JSON leaves out the members of ``OMITTED_WHEN_NONE`` while they are
    None (said only when there is something). Only such parts pay for the serializer
    that drops them: an answer holds thousands of the others."""

    #: Members left out of the JSON while they are None.
    OMITTED_WHEN_NONE: ClassVar[tuple[str, ...]] = ()

    # No return annotation: with one, pydantic would describe the answer by it (an
    # untyped object) instead of by its fields in the OpenAPI document.
    @model_serializer(mode="wrap")
    def _omit_unsaid(self, handler: SerializerFunctionWrapHandler):
        data = handler(self)
        for name in self.OMITTED_WHEN_NONE:
            if data.get(name, ...) is None:
                del data[name]
        return data


class Answered(Omitting):
    """An answer that may leave out nodes of projects the asker cannot read."""

    OMITTED_WHEN_NONE = ("erased", "withheld")


# --- parts -------------------------------------------------------------------------------------

#: The members of the answers' lists. An answer may hold thousands of them, so they are
#: typed dictionaries: the query builds them as plain values, and the answer holds them as
#: built (``Shape.built``) instead of making a model of each (docs/architecture.md).
part = with_config(ConfigDict(extra="forbid"))

#: A node's label: ``name@version`` of a dataset or model version.
Label = Annotated[str | None, Field(description="name@version.")]
#: When a span began, and when it ended (null while it lasts); sent as ``from``/``to``.
Start = Annotated[str, Field(serialization_alias="from", validation_alias="from")]
End = Annotated[
    str | None,
    Field(serialization_alias="to", validation_alias="to", description="null while it lasts."),
]
#: The log position of the predictions-logged event that logged a prediction.
LoggedAt = Annotated[int, Field(description="Log position of the predictions-logged event.")]
#: How many nodes of projects the asker may not read were left out; unsaid when none.
Withheld = Annotated[
    int | SkipJsonSchema[None],
    Field(description="Nodes of projects the asker may not read, left out."),
]
#: A record id (pseudonymous).
RecordId = Annotated[str, Field(description="Record id (pseudonymous).")]


class ErasureNote(Shape):
    """The latest erasure of a record or subject: which, at what log positions, when."""

    erasure: str = Field(description="The erasure's id.")
    position: int = Field(description="Log position of its subject-erased event.")
    requested_position: int = Field(description="Log position of its request.")
    erased_at: str | None = Field(description="When it completed (RFC 3339).")


@part
class RunNode(TypedDict):
    run: Annotated[str, Field(description="Run id.")]
    job: Annotated[str | None, Field(description="The run's job name (its label).")]


@part
class DatasetNode(TypedDict):
    dataset: Annotated[str, Field(description="Dataset version id.")]
    label: Label


@part
class ModelNode(TypedDict):
    model: Annotated[str, Field(description="Model version id.")]
    label: Label


@part
class DeploymentServing(TypedDict):
    deployment: Annotated[str, Field(description="Deployment id.")]
    serves_from_here: Annotated[
        list[str],
        Field(description="Ids of the model versions in this answer the deployment serves."),
    ]


@part
class PredictionCount(TypedDict):
    deployment: str
    model: str
    count: int
    first_at: str
    last_at: str


@part
class ScoredPrediction(TypedDict):
    deployment: str
    model: str
    at: str
    output: Annotated[Any, Field(description="The model's output, as logged (any JSON value).")]
    trace_id: str | None
    position: LoggedAt


@part
class SubjectPrediction(TypedDict):
    record: RecordId
    deployment: str
    model: str
    at: str
    position: LoggedAt


@part
class SubjectRecord(TypedDict):
    record: RecordId
    datasets: Annotated[list[str], Field(description="Ids of the dataset versions holding it.")]


@part
class TrainingDataset(TypedDict):
    dataset: Annotated[str, Field(description="Dataset version id.")]
    label: Label
    depth: Annotated[
        int, Field(description="Steps of data flow to the model (docs/concepts.md, Depth).")
    ]
    relation: Annotated[Literal["direct", "upstream"], Field(description="depth 1: direct.")]
    records: Annotated[int, Field(description="Distinct records in the dataset version.")]
    row_count: int | None
    digest: str | None


@part
class LineageNode(TypedDict):
    id: str
    kind: Literal["dataset", "run", "model", "deployment"]
    label: str | None
    created_at: str
    distance: Annotated[int, Field(description="Hops from the root.")]


@part
class LineageEdge(TypedDict):
    src: str
    dst: str
    kind: str
    valid_from: str
    valid_to: str | None


class ServingInterval(Shape):
    model: str
    traffic: float = Field(description="Share of the traffic, in percent.")
    endpoint: str
    start: Start
    end: End


class ServiceSpan(Shape):
    start: Start
    end: End


class ServedModel(Shape):
    model: str
    spans: list[ServiceSpan] = Field(description="Back-to-back intervals merged.")


class AliasSpan(Shape):
    model: str
    moved_by: str
    start: Start
    end: End


class Downstream(Shape):
    """The nodes derived from some dataset versions, grouped by kind, and the predictions
    of those model versions: shared by ``downstream`` and ``footprint``."""

    runs: list[RunNode]
    datasets: list[DatasetNode]
    models: list[ModelNode]
    deployments: list[DeploymentServing]
    predictions: list[PredictionCount]
    total_predictions: int


# --- answers -----------------------------------------------------------------------------------


class ScoredAnswer(Answered):
    """Every time a record was scored."""

    record: str | None = Field(description="Record id; null once the record is erased.")
    times_scored: int
    predictions: list[ScoredPrediction]
    erased: ErasureNote | SkipJsonSchema[None] = None


class TrainedOnAnswer(Answered):
    """The dataset versions that trained a model version, transitively."""

    model: str
    runs: list[RunNode]
    datasets: list[TrainingDataset]
    withheld: Withheld = None


class DatasetRoot(Answered):
    """The dataset version an answer starts from (its first member)."""

    dataset: str


class DownstreamAnswer(Downstream, DatasetRoot):
    """Everything downstream of a dataset version."""

    withheld: Withheld = None


class LineageAnswer(Answered):
    """The lineage subgraph around a node."""

    root: str
    direction: Literal["upstream", "downstream", "both"]
    depth: int
    as_of: str | None
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    erased: ErasureNote | SkipJsonSchema[None] = None
    withheld: Withheld = None


class FootprintAnswer(Answered):
    """Everything linked to a data subject."""

    subject: str = Field(description="subject:<project>/<erasure reference>.")
    records: list[SubjectRecord]
    datasets: list[DatasetNode]
    derived_datasets: list[DatasetNode]
    runs: list[RunNode]
    models: list[ModelNode]
    deployments: list[DeploymentServing]
    predictions: list[SubjectPrediction]
    vault_entries: int
    erased: ErasureNote | SkipJsonSchema[None] = None
    withheld: Withheld = None


class HistoryAnswer(Shape):
    """Which model versions a deployment served, from when to when."""

    deployment: str
    status: str
    endpoint: str
    intervals: list[ServingInterval]
    models: list[ServedModel]


class AliasesAnswer(Shape):
    """Where each alias of a model pointed, from when to when."""

    model: str = Field(description="The model's name.")
    current: dict[str, str] = Field(description="Alias -> the model version id it names now.")
    history: dict[str, list[AliasSpan]]


class MarquezEdge(Shape):
    """An edge of Marquez's lineage graph, between two of its node ids."""

    origin: str
    destination: str


class MarquezNode(Shape):
    """A node of Marquez's lineage graph: a dataset (``data`` shaped as Marquez's
    DatasetData) or a job (JobData), with its edges inside the graph."""

    id: str = Field(description="`dataset:<namespace>:<name>` or `job:<namespace>:<name>`.")
    type: Literal["DATASET", "JOB"]
    data: dict[str, Any] = Field(description="Marquez's DatasetData or JobData of the node.")
    inEdges: list[MarquezEdge]
    outEdges: list[MarquezEdge]


class MarquezLineage(Shape):
    """The lineage around a dataset or job, as Marquez's ``GET /api/v1/lineage`` answers."""

    graph: list[MarquezNode]


# --- jobs --------------------------------------------------------------------------------------

#: The status of a run's job: submitted, then scheduled and running (retrying between
#: attempts), until it succeeded, failed or was cancelled.
JobStatus = Literal[
    "submitted", "scheduled", "running", "retrying", "succeeded", "failed", "cancelled"
]


@part
class JobResources(TypedDict):
    cpu: Annotated[str | None, Field(description="CPU request ('2', '500m').")]
    memory: Annotated[str | None, Field(description="Memory request ('8Gi').")]
    gpus: Annotated[int, Field(description="GPUs asked for, per attempt.")]
    gpu_product: Annotated[str | None, Field(description="GPU product the job was pinned to.")]


@part
class JobExecution(TypedDict):
    """The job that executes a run: as its executor submitted it, and as the platform
    reported it since."""

    run: Annotated[str, Field(description="The run the job executes.")]
    project: str
    executor: Annotated[Literal["local", "kubernetes"], Field(description="Which executor.")]
    target: Annotated[str, Field(description="The Kubernetes server and namespace, or host.")]
    name: Annotated[str, Field(description="The job's object name.")]
    image: Annotated[str | None, Field(description="Container image.")]
    command: Annotated[list[str], Field(description="Command and arguments, as submitted.")]
    resources: Annotated[JobResources, Field(description="Asked for, per attempt.")]
    retries: Annotated[int, Field(description="Attempts allowed after the first.")]
    deadline_s: Annotated[int | None, Field(description="Seconds the whole job may run.")]
    spec_digest: Annotated[str, Field(description="sha256 of the submitted spec.")]
    status: JobStatus
    attempts: Annotated[int, Field(description="Attempts scheduled so far.")]
    attempt: Annotated[str | None, Field(description="The last attempt (pod name or pid).")]
    node: Annotated[str | None, Field(description="Node of the last attempt, as reported.")]
    gpus: Annotated[int | None, Field(description="GPUs the last attempt held, as reported.")]
    gpu_product: Annotated[str | None, Field(description="The node's GPU product, as reported.")]
    reason: Annotated[str | None, Field(description="Why the job failed or was cancelled.")]
    exit_code: Annotated[int | None, Field(description="Exit code of the last attempt.")]
    attempt_reason: Annotated[
        str | None, Field(description="The last attempt's reason (OOMKilled, Evicted, ...).")
    ]
    submitted_at: str
    scheduled_at: Annotated[str | None, Field(description="When the last attempt was placed.")]
    started_at: Annotated[str | None, Field(description="When the last attempt started.")]
    ended_at: Annotated[str | None, Field(description="When the job ended.")]
    submitted_position: Annotated[int, Field(description="Log position of job-submitted.")]
    position: Annotated[int, Field(description="Log position of the job's last event.")]


@part
class JobEvent(TypedDict):
    position: Annotated[int, Field(description="Log position.")]
    type: Annotated[str, Field(description="job-submitted, job-scheduled, ...")]
    actor: str
    occurred_at: str
    body: Annotated[dict[str, Any], Field(description="The event's body, as in the log.")]


class JobsAnswer(Shape):
    """The project's jobs, newest submission first."""

    jobs: list[JobExecution]


class JobAnswer(Shape):
    """One run's job, and its events in log order."""

    run: str = Field(description="The run the job executes.")
    project: str
    executor: Literal["local", "kubernetes"] = Field(description="Which executor.")
    target: str = Field(description="The Kubernetes server and namespace, or host.")
    name: str = Field(description="The job's object name.")
    image: str | None = Field(description="Container image.")
    command: list[str] = Field(description="Command and arguments, as submitted.")
    resources: JobResources = Field(description="Asked for, per attempt.")
    retries: int = Field(description="Attempts allowed after the first.")
    deadline_s: int | None = Field(description="Seconds the whole job may run.")
    spec_digest: str = Field(description="sha256 of the submitted spec.")
    status: JobStatus
    attempts: int = Field(description="Attempts scheduled so far.")
    attempt: str | None = Field(description="The last attempt (pod name or pid).")
    node: str | None = Field(description="Node of the last attempt, as reported.")
    gpus: int | None = Field(description="GPUs the last attempt held, as reported.")
    gpu_product: str | None = Field(description="The node's GPU product, as reported.")
    reason: str | None = Field(description="Why the job failed or was cancelled.")
    exit_code: int | None = Field(description="Exit code of the last attempt.")
    attempt_reason: str | None = Field(
        description="The last attempt's reason (OOMKilled, Evicted, ...)."
    )
    submitted_at: str
    scheduled_at: str | None = Field(description="When the last attempt was placed.")
    started_at: str | None = Field(description="When the last attempt started.")
    ended_at: str | None = Field(description="When the job ended.")
    submitted_position: int = Field(description="Log position of job-submitted.")
    position: int = Field(description="Log position of the job's last event.")
    events: list[JobEvent] = Field(description="The job's events, in log order.")


# --- the overview of a project (the web interface's home and search) ----------------------


class ProjectCounts(Shape):
    """How much a project's catalogue and log hold."""

    project: str
    datasets: int = Field(description="Dataset versions registered.")
    runs: int = Field(description="Runs started.")
    models: int = Field(description="Model versions registered.")
    deployments: int = Field(description="Deployments, retired ones included.")
    events: int = Field(description="Events of the project in the log.")
    head: int = Field(description="Position of the log's newest event (any project), -1: none.")


@with_config(ConfigDict(extra="forbid"))
class FeedEvent(TypedDict):
    """An event of the log as a feed lists it (no body, no payload)."""

    position: int
    type: str
    entity: str
    actor: str
    recorded_at: str


class EventFeed(Shape):
    """A project's newest events, newest first."""

    project: str
    events: list[FeedEvent] = Field(description="Newest first.")
    head: int = Field(description="Position of the log's newest event (any project), -1: none.")


#: What a search may look for: our four kinds of node, and OpenLineage's jobs.
SearchKind = Literal["dataset", "model", "run", "deployment", "job"]


@with_config(ConfigDict(extra="forbid"))
class SearchHit(TypedDict):
    """A name found: its kind, the name, how many nodes bear it, and the newest."""

    kind: SearchKind
    name: str
    count: int
    newest: str
    updated_at: str


class SearchAnswer(Shape):
    """Names of a project's nodes holding a text, one page of them."""

    project: str
    text: str
    kinds: list[SearchKind]
    total: int = Field(
        description="Names found over every page (at most 10,100 of each kind are read)."
    )
    offset: int
    limit: int
    hits: list[SearchHit] = Field(description="By name, then kind.")


# --- entities (one node each: the web interface's pages and their API routes) -------------

#: The most members an entity's list holds; the answer says how many there are in all.
ENTITY_LIST_MAX = 200


@with_config(ConfigDict(extra="forbid"))
class Neighbour(TypedDict):
    """A node next to another in the lineage graph, through one kind of edge."""

    id: str
    kind: Literal["dataset", "run", "model", "deployment"]
    label: str | None
    edge: Annotated[str, Field(description="input, output, derived, serves or child.")]


class Neighbours(Shape):
    """Some of a node's neighbours on one side, and how many there are in all."""

    total: int = Field(description="Neighbours of the projects the asker may read.")
    nodes: list[Neighbour] = Field(description=f"At most {ENTITY_LIST_MAX}, oldest edge first.")
    withheld: int = Field(description="Neighbours of projects the asker may not read.")


@with_config(ConfigDict(extra="forbid"))
class MetricPoint(TypedDict):
    step: int | None
    value: float
    position: Annotated[int, Field(description="Log position of its run-metrics-logged event.")]


class MetricSeries(Shape):
    """Every value logged for one metric of a run, in log order (as far as read)."""

    key: str
    points: list[MetricPoint]
    total: int = Field(description="Values of this metric among the events read.")


class RunAnswer(Shape):
    """One run: what it was, what it read and wrote, and its metrics over time."""

    run: str
    project: str
    job: str
    status: str = Field(description="running, completed or failed.")
    started_by: str
    started_at: str
    ended_at: str | None
    error_type: str | None
    parent_run: str | None
    params: dict[str, Any]
    metrics: dict[str, Any] = Field(description="The latest value of each metric.")
    code: dict[str, Any]
    environment: dict[str, Any]
    tags: dict[str, Any]
    inputs: Neighbours
    outputs: Neighbours
    series: list[MetricSeries] = Field(description="At most 50 metrics, by name.")
    metric_events: int = Field(description="The run's run-metrics-logged events in the log.")
    metric_events_read: int = Field(description="How many of them the series were read from.")


class DatasetVersionAnswer(Shape):
    """One dataset version: its identity, where it lives, and its lineage neighbours."""

    dataset: str
    project: str
    name: str
    version: str
    digest: str
    uri: str
    schema_: dict[str, Any] | None = Field(serialization_alias="schema", validation_alias="schema")
    row_count: int | None
    records: int = Field(description="Distinct records in the record index.")
    tags: dict[str, Any]
    registered_at: str
    position: int
    upstream: Neighbours = Field(description="What it was derived from or produced by.")
    downstream: Neighbours = Field(description="What read it or was derived from it.")


class AliasMove(Shape):
    """An alias pointing at a model version, from when to when, and who moved it there."""

    alias: str
    moved_by: str
    start: Start
    end: End


class ServedBy(Shape):
    """A deployment serving a model version with a traffic share, from when to when."""

    deployment: str
    traffic: float = Field(description="Share of the traffic, in percent.")
    endpoint: str
    start: Start
    end: End


@with_config(ConfigDict(extra="forbid"))
class DayCount(TypedDict):
    day: Annotated[str, Field(description="YYYY-MM-DD (UTC).")]
    count: int


@with_config(ConfigDict(extra="forbid"))
class ModelFlag(TypedDict):
    erasure: str
    status: str
    justification: str | None
    approver: str | None
    flagged_position: int
    resolved_by: str | None
    resolved_position: int | None


class Volume(Shape):
    """Predictions: in all, and per day over the last days (the newest day's last)."""

    total: int = Field(description="Every prediction, however old.")
    days: int = Field(description="How many days back the daily counts reach.")
    since: str = Field(description="The first day counted (YYYY-MM-DD, UTC).")
    daily: list[DayCount] = Field(description="Days with predictions only, oldest first.")


class ModelVersionAnswer(Shape):
    """One model version: identity, training data, aliases, deployments, predictions and
    the flags erasures put on it."""

    model: str
    project: str
    name: str
    version: str
    run: str | None
    artifact_uri: str
    artifact_digest: str
    framework: str | None
    tags: dict[str, Any]
    registered_at: str
    training: list[TrainingDataset] = Field(description="Dataset versions, transitively.")
    training_withheld: int = Field(description="Training nodes of projects not readable.")
    aliases: list[AliasMove] = Field(description="Every move of an alias to this version.")
    deployments: list[ServedBy] = Field(description="Every interval a deployment served it.")
    deployments_total: int
    predictions: Volume
    flags: list[ModelFlag] = Field(description="Remediation flags put on it by erasures.")


@with_config(ConfigDict(extra="forbid"))
class ModelVolume(TypedDict):
    model: str
    count: int
    first_at: str
    last_at: str


class DeploymentAnswer(Shape):
    """One deployment: what it served when (traffic splits) and its prediction volume."""

    deployment: str
    project: str
    name: str
    status: str
    endpoint: str
    created_at: str
    updated_at: str
    intervals: list[ServingInterval] = Field(description="Newest first.")
    intervals_total: int
    served_now: list[ServingInterval] = Field(description="The open intervals.")
    by_model: list[ModelVolume] = Field(description="Predictions per model version.")
    predictions: Volume
