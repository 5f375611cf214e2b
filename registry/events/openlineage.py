"""The event types that keep OpenLineage events as received (``POST /api/v1/lineage``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from registry.events.catalogue import Body, Part, check_dataset, event_type, validates

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

    _dataset = validates("dataset", check_dataset)


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


# Fields the OpenLineage types share, each with its description.
_EventTime = Annotated[str, Field(description="eventTime exactly as sent.")]
_Producer = Annotated[str, Field(description="URI of the software that produced the event.")]
_SchemaUrl = Annotated[
    str, Field(description="schemaURL: the OpenLineage schema the event follows.")
]
_Job = Annotated[OpenLineageJob, Field(description="The job, with its facets.")]
_Inputs = Annotated[
    tuple[OpenLineageInput, ...], Field(description="Input datasets, in the order sent.")
]
_Outputs = Annotated[
    tuple[OpenLineageOutput, ...], Field(description="Output datasets, in the order sent.")
]
_Redacted = Annotated[
    tuple[str, ...],
    Field(
        description="JSON paths (dotted, from the event's root) of fields removed before storage."
    ),
]
_Stringified = Annotated[
    tuple[str, ...],
    Field(
        description="JSON paths of numbers stored as strings: integers beyond ±(2^53-1) and "
        "non-finite numbers, which canonical JSON cannot hold."
    ),
]


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
    event_time: _EventTime
    producer: _Producer
    schema_url: _SchemaUrl
    job: _Job
    run_facets: dict[str, Any] = Field(default_factory=dict, description="Run facets, as sent.")
    inputs: _Inputs = ()
    outputs: _Outputs = ()
    redacted: _Redacted = ()
    stringified: _Stringified = ()


@event_type("openlineage-dataset-event", entity="dataset")
class OpenLineageDatasetEvent(Body):
    """An OpenLineage DatasetEvent (static metadata about a dataset) as received.

    The entity is the dataset version it maps to: the one its DatasetVersion
    facet names, else the latest registered, else ``unversioned``; a version
    not yet registered is registered in the same batch. The facets are kept as
    sent; the version's schema, once registered, does not change.
    """

    event_time: _EventTime
    producer: _Producer
    schema_url: _SchemaUrl
    namespace: str = Field(description="OpenLineage dataset namespace (the data source).")
    name: str = Field(description="OpenLineage dataset name, unique within its namespace.")
    facets: dict[str, Any] = Field(default_factory=dict, description="Dataset facets, as sent.")
    redacted: _Redacted = ()
    stringified: _Stringified = ()


@event_type("openlineage-job-event", entity="job")
class OpenLineageJobEvent(Body):
    """An OpenLineage JobEvent (static metadata about a job, no run) as received.

    The entity is ``job:<project>/<name>``, the name derived from the
    OpenLineage namespace and name (see ``docs/openlineage.md``). Its datasets
    are registered as for a RunEvent's inputs; with no run there are no
    lineage edges, only this record of what the job declares.
    """

    event_time: _EventTime
    producer: _Producer
    schema_url: _SchemaUrl
    job: _Job
    inputs: _Inputs = ()
    outputs: _Outputs = ()
    redacted: _Redacted = ()
    stringified: _Stringified = ()
