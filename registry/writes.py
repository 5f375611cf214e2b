"""The native writes, as service functions over a ledger.

Each function takes the ledger and who writes (a ``Writer``: the project written
to and the actor each event names; the API's ``Principal`` is one), builds the
events of one write from plain values and appends them as one batch through
``registry.intake`` (which seals personal data) and ``Ledger.append``. The HTTP
API's write routes call them; the builders (``event``, ``envelope``,
``dataset_items``, ``model_event``, ``deployment_event``, ``prediction_items``,
``subject_data_item``) make the same events without appending, for a caller that
batches writes itself (the SDK's local connection).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lineage import queries
from registry import intake
from registry.errors import Conflict, EventRejected, FieldError, InvalidInput
from registry.events import NewEvent, make_event
from registry.ids import dataset_id, deployment_id, model_id, new_id, run_id
from registry.intake import Item, Predictions, RecordsAdded, SubjectData
from registry.ledger import Ledger
from registry.store.raw import Raw
from registry.timeutil import timestamps, to_timestamp
from registry.tracing import current_trace_id

#: Records per ``dataset-records-added`` event, and rows per ``predictions-logged`` event.
RECORD_CHUNK = 10_000
PREDICTION_CHUNK = 20_000


class Writer(Protocol):
    """Who writes: the project written to and the actor each event names."""

    @property
    def project(self) -> str: ...

    @property
    def actor(self) -> str: ...


@dataclass(frozen=True)
class Author:
    """A ``Writer`` as plain values."""

    project: str
    actor: str


@dataclass(frozen=True)
class Node:
    """A node a write registered or configured: its ``str()`` is its node id, accepted
    wherever a node id is (the SDK hands these out as its handles)."""

    id: str

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class DatasetVersion(Node):
    """A registered dataset version: its node id, name, version, digest and record count."""

    name: str
    version: str
    digest: str
    records: int


@dataclass(frozen=True)
class ModelVersion(Node):
    """A registered model version: its node id, name, version and artifact digest."""

    name: str
    version: str
    artifact_digest: str


@dataclass(frozen=True)
class Deployment(Node):
    """A configured deployment: its node id, name, endpoint and traffic split."""

    name: str
    endpoint: str
    served: tuple[tuple[str, float], ...]


#: The names the write routes knew these by.
DatasetWritten = DatasetVersion
ModelWritten = ModelVersion
DeploymentWritten = Deployment


def append(ledger: Ledger, items: Sequence[Item]) -> list[int]:
    """Append a batch atomically, personal data sealed; return the positions."""
    events, before_commit = intake.seal(ledger, items)
    return ledger.append(events, before_commit=before_commit)


def append_one(ledger: Ledger, made: NewEvent) -> int:
    """Append one event; return its position."""
    return append(ledger, [made])[0]


def event(
    by: Writer,
    type: str,
    entity: str,
    body: Mapping[str, Any],
    occurred_at: Any = None,
    event_id: str | None = None,
) -> NewEvent:
    """One event written by ``by``; a value the ledger would refuse raises
    ``EventRejected`` here, where the event is made."""
    event_id = event_id or new_id()
    try:
        return make_event(
            type,
            project=by.project,
            entity=entity,
            actor=by.actor,
            body=dict(body),
            occurred_at=occurred_at,
            trace_id=current_trace_id(),
            event_id=event_id,
        )
    except FieldError as exc:
        raise EventRejected(0, str(event_id), type, exc.field, str(exc)) from None


def envelope(
    by: Writer, entity: str, occurred_at: Any = None, event_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """Envelope fields of a write carrying personal data (a new event id unless given)."""
    return {
        "event_id": new_id() if event_id is None else str(event_id),
        "project": by.project,
        "entity": entity,
        "actor": by.actor,
        "occurred_at": to_timestamp(occurred_at, "occurred_at"),
        "trace_id": current_trace_id(),
    }


# --- datasets ---------------------------------------------------------------------------------


def known_dataset(ledger: Ledger, node: str) -> dict[str, Any] | None:
    """``{"digest", "records"}`` of a registered dataset version, or None."""
    with ledger.store.read() as conn:
        row = Raw(conn).one(
            "SELECT d.digest, c.records FROM cat_datasets d LEFT JOIN "
            "dataset_record_counts c ON c.dataset = d.id WHERE d.id = ?",
            (node,),
        )
    return None if row is None else {"digest": row[0], "records": row[1] or 0}


def version_of(digest: str) -> str:
    """The version a dataset registered without one gets: its digest's first 12 hex
    digits (``sha256:0123456789ab…`` → ``0123456789ab``)."""
    return digest.split(":")[-1][:12]


def same_dataset(node: str, digest: str, existing: Mapping[str, Any]) -> int:
    """The record count of the registered version ``node`` when it has ``digest``;
    Conflict when it holds other content."""
    if existing["digest"] != digest:
        raise Conflict(
            f"dataset version {node} is already registered with digest "
            f"{existing['digest']}, not {digest}; register a new version"
        )
    return int(existing["records"])


def dataset_items(
    by: Writer,
    node: str,
    body: Mapping[str, Any],
    records: Sequence[Any],
    subjects: Sequence[Any] | None,
    occurred_at: Any = None,
) -> list[Item]:
    """The registration of dataset version ``node`` (``body``: its event's body, a
    missing ``row_count`` counted from the records) and its records with their
    subjects, in chunks."""
    keys = list(records)
    if subjects is not None:
        subject_list = list(subjects)
        if len(subject_list) != len(keys):
            raise FieldError(
                "subjects",
                f"dataset {body['name']!r}: {len(keys)} records but "
                f"{len(subject_list)} subjects; expected one subject per record",
            )
    else:
        subject_list = [None] * len(keys)
    full = dict(body)
    if full.get("row_count") is None:
        full["row_count"] = len(keys) or None
    items: list[Item] = [event(by, "dataset-version-registered", node, full, occurred_at)]
    for start in range(0, len(keys), RECORD_CHUNK):
        items.append(
            RecordsAdded(
                **envelope(by, node, occurred_at),
                records=keys[start : start + RECORD_CHUNK],
                subjects=subject_list[start : start + RECORD_CHUNK],
            )
        )
    return items


def register_dataset(
    ledger: Ledger,
    by: Writer,
    body: Mapping[str, Any],
    *,
    records: Sequence[Any] | None = None,
    subjects: Sequence[Any] | None = None,
    occurred_at: Any = None,
) -> DatasetVersion:
    """Register a dataset version; ``body`` is its event's body (name, version, digest,
    uri, schema, row_count, derived_from, produced_by, tags), a missing version the
    digest's first 12 hex digits. The same name, version and digest again answer the
    existing version."""
    name, digest = body["name"], body["digest"]
    version = body.get("version") or version_of(digest)
    node = dataset_id(by.project, name, version)
    existing = known_dataset(ledger, node)
    if existing is not None:
        return DatasetVersion(node, name, version, digest, same_dataset(node, digest, existing))
    keys = list(records or [])
    full = {**body, "version": version}
    append(ledger, dataset_items(by, node, full, keys, subjects, occurred_at))
    return DatasetVersion(node, name, version, digest, len(set(keys)))


# --- runs -------------------------------------------------------------------------------------


def run_node(run: str, field: str = "run") -> str:
    """The node id of a run given as ``run:<uuid>`` or ``<uuid>`` in ``field``."""
    try:
        return run_id(run.removeprefix("run:"))
    except ValueError:
        raise InvalidInput(
            f"run {run!r}: expected a run id ('run:<uuid>' or '<uuid>')", field=field
        ) from None


def run_event(by: Writer, type: str, run: str, body: dict[str, Any], occurred_at: Any) -> NewEvent:
    """An event of run ``run`` (``run:<uuid>`` or ``<uuid>``)."""
    return make_event(
        type,
        project=by.project,
        entity=run_node(run),
        actor=by.actor,
        body=body,
        occurred_at=occurred_at,
    )


def start_run(
    ledger: Ledger,
    by: Writer,
    body: dict[str, Any],
    *,
    run: str | None = None,
    inputs: Sequence[str] = (),
    occurred_at: Any = None,
) -> str:
    """Start a run (a new id unless ``run`` names one) with ``body`` as its
    ``run-started`` body (job, params, code, environment, parent_run, tags) and the
    inputs it reads; return its node id."""
    node = run_node(run, "run_id") if run is not None else run_id(uuid.uuid4())
    parent = body.get("parent_run")
    body = {**body, "parent_run": run_node(parent, "parent") if parent is not None else None}
    events = [run_event(by, "run-started", node, body, occurred_at)]
    if inputs:
        events.append(run_event(by, "run-inputs-used", node, {"inputs": inputs}, occurred_at))
    ledger.append(events)
    return node


def record_run(
    ledger: Ledger, by: Writer, type: str, run: str, body: dict[str, Any], occurred_at: Any
) -> int:
    """Append one event of a running run (inputs, params, metrics); return its position."""
    return ledger.append([run_event(by, type, run, body, occurred_at)])[0]


def end_run(
    ledger: Ledger,
    by: Writer,
    run: str,
    *,
    status: str,
    error_type: str | None = None,
    occurred_at: Any = None,
) -> tuple[str, str]:
    """End a running run, completed or failed (with the exception's class name);
    return its node id and job."""
    if status == "failed":
        if not error_type:
            raise InvalidInput(
                "a failed run needs error_type (the exception's class name)", field="error_type"
            )
        made = run_event(by, "run-failed", run, {"error_type": error_type}, occurred_at)
    else:
        made = run_event(by, "run-completed", run, {}, occurred_at)
    ledger.append([made])
    with ledger.store.read() as conn:
        job = Raw(conn).scalar("SELECT job FROM cat_runs WHERE id = ?", (made.entity,))
    return made.entity, str(job)


# --- models and deployments -------------------------------------------------------------------


def top_model_version(ledger: Ledger, project: str, name: str) -> int | None:
    """The highest all-digit version of model ``name``, or None."""
    with ledger.store.read() as conn:
        top = Raw(conn).scalar(
            "SELECT top_version FROM model_names WHERE project = ? AND name = ?",
            (project, name),
        )
    return None if top is None else int(top)


def next_model_version(ledger: Ledger, project: str, name: str) -> str:
    """One more than the highest all-digit version of model ``name``."""
    return str((top_model_version(ledger, project, name) or 0) + 1)


def model_event(
    by: Writer, body: Mapping[str, Any], occurred_at: Any = None
) -> tuple[NewEvent, ModelVersion]:
    """The registration of a model version; ``body`` is its event's body (name, version,
    run, artifact_uri, artifact_digest, framework, tags)."""
    name, version = body["name"], body["version"]
    node = model_id(by.project, name, version)
    made = event(by, "model-version-registered", node, body, occurred_at)
    return made, ModelVersion(node, name, version, body["artifact_digest"])


def register_model(
    ledger: Ledger, by: Writer, body: Mapping[str, Any], *, occurred_at: Any = None
) -> ModelVersion:
    """Register a model version, numbered automatically when the body has no version."""
    version = body.get("version") or next_model_version(ledger, by.project, body["name"])
    made, model = model_event(by, {**body, "version": version}, occurred_at)
    append_one(ledger, made)
    return model


def set_alias(
    ledger: Ledger, by: Writer, model: str, alias: str, *, occurred_at: Any = None
) -> int:
    """Point ``alias`` of a model at a version (``name@version``, ``name@alias`` or an
    id); ``by``'s actor is who moved it."""
    node = queries.resolve_model(ledger, model, by.project)
    return append_one(ledger, event(by, "model-alias-moved", node, {"alias": alias}, occurred_at))


def deployment_event(
    by: Writer,
    name: str,
    endpoint: str,
    split: Sequence[tuple[str, float]],
    occurred_at: Any = None,
) -> tuple[NewEvent, Deployment]:
    """A deployment's configuration: the model versions it serves now, with traffic."""
    node = deployment_id(by.project, name)
    body = {"endpoint": endpoint, "served": [{"model": m, "traffic": t} for m, t in split]}
    made = event(by, "deployment-configured", node, body, occurred_at)
    return made, Deployment(node, name, endpoint, tuple(split))


def deploy(
    ledger: Ledger,
    by: Writer,
    name: str,
    *,
    endpoint: str,
    served: Mapping[str, float],
    occurred_at: Any = None,
) -> Deployment:
    """Create or change a deployment; ``served`` maps model versions (``name@version``,
    ``name@alias`` or ids) to traffic percentages."""
    split = [(queries.resolve_model(ledger, m, by.project), float(t)) for m, t in served.items()]
    made, deployment = deployment_event(by, name, endpoint, split, occurred_at)
    append_one(ledger, made)
    return deployment


def retire(
    ledger: Ledger,
    by: Writer,
    deployment: str,
    *,
    reason: str | None = None,
    occurred_at: Any = None,
) -> int:
    """Stop a deployment."""
    node = queries.resolve(deployment, "deployment", by.project)
    return append_one(
        ledger, event(by, "deployment-retired", node, {"reason": reason}, occurred_at)
    )


# --- predictions and personal data ------------------------------------------------------------


def prediction_items(
    by: Writer,
    deployment: str,
    rows: Mapping[str, Sequence[Any]],
    traces: Sequence[str | None] | None,
    batch: uuid.UUID | None = None,
) -> list[Item]:
    """A batch of predictions of ``deployment``: ``rows`` holds the columns ``records``,
    ``outputs``, ``models`` and ``times`` (of equal length), logged in events of
    ``PREDICTION_CHUNK`` rows. With a ``batch`` id, chunk i's event id is
    ``uuid5(batch, str(i))``, so that sending the batch again is a retry."""
    items: list[Item] = []
    for index, start in enumerate(range(0, len(rows["records"]), PREDICTION_CHUNK)):
        part = slice(start, start + PREDICTION_CHUNK)
        chunk_models = rows["models"][part]
        distinct = list(dict.fromkeys(chunk_models))
        slot = {m: i for i, m in enumerate(distinct)}
        chunk_times = list(rows["times"][part])
        event_id = None if batch is None else uuid.uuid5(batch, str(index))
        same_time = chunk_times[0] == chunk_times[-1] and len(set(chunk_times)) == 1
        items.append(
            Predictions(
                **envelope(by, deployment, chunk_times[0], event_id),
                models=distinct,
                records=list(rows["records"][part]),
                outputs=list(rows["outputs"][part]),
                model_index=None if len(distinct) == 1 else [slot[m] for m in chunk_models],
                at=chunk_times[0] if same_time else chunk_times,
                trace_ids=None if traces is None else list(traces[part]),
            )
        )
    return items


def prediction_times(at: Any, n: int) -> list[str]:
    """One timestamp per row: ``at`` for all (default: now), or ``at[i]`` for row i."""
    if at is None or (not isinstance(at, list | tuple) and not hasattr(at, "tolist")):
        return [to_timestamp(at, "at")] * n
    times = timestamps(at, "at[{}]")
    if len(times) != n:
        raise InvalidInput(f"log_predictions: {n} records but {len(times)} times", field="at")
    return times


def _per_row(n: int, what: str, values: Sequence[Any], field: str) -> None:
    if len(values) != n:
        raise InvalidInput(f"log_predictions: {n} records but {len(values)} {what}", field=field)


def log_predictions(
    ledger: Ledger,
    by: Writer,
    deployment: str,
    *,
    records: Sequence[Any],
    outputs: Sequence[Any],
    model: str | None = None,
    models: Sequence[str] | None = None,
    at: Any = None,
    trace_ids: Sequence[str | None] | None = None,
) -> list[int]:
    """Log a batch of predictions of ``deployment`` (a name or an id): ``model`` for
    the whole batch or ``models`` row by row (``name@version``, ``name@alias`` or ids);
    ``at`` one time for all rows or one per row (default: now)."""
    resolved: dict[str, str] = {}
    for text in [*([] if model is None else [model]), *(models or [])]:
        if text not in resolved:
            resolved[text] = queries.resolve_model(ledger, text, by.project)
    n = len(records)
    if len(outputs) != n:
        raise InvalidInput(
            f"log_predictions: {n} records but {len(outputs)} outputs; "
            "expected one output per record",
            field="outputs",
        )
    if (model is None) == (models is None):
        raise InvalidInput(
            "log_predictions: give either model= (whole batch) or models= (per row)",
            field="model",
        )
    per_row = [resolved[model]] * n if model is not None else [resolved[m] for m in models or []]
    _per_row(n, "models", per_row, "models")
    times = prediction_times(at, n)
    traces = None if trace_ids is None else [None if t is None else str(t) for t in trace_ids]
    if traces is not None:
        _per_row(n, "trace ids", traces, "trace_ids")
    node = queries.resolve(deployment, "deployment", by.project)
    rows = {"records": records, "outputs": outputs, "models": per_row, "times": times}
    items = prediction_items(by, node, rows, traces)
    return append(ledger, items) if items else []


def subject_data_item(by: Writer, subject: str | int, attributes: Mapping[str, Any]) -> SubjectData:
    """Personal attributes of a data subject, for the encrypted vault."""
    if not attributes:
        raise FieldError(
            "attributes", "store_subject_data: attributes is empty; expected at least one"
        )
    # The entity (the subject's pseudonymous id) is set where the project's secret is.
    return SubjectData(
        **envelope(by, "subject:pending"), subject=subject, attributes=dict(attributes)
    )


def store_subject_data(
    ledger: Ledger, by: Writer, subject: str | int, attributes: Mapping[str, Any]
) -> str:
    """Put personal attributes of a data subject in the vault; return the entry id."""
    item = subject_data_item(by, subject, attributes)
    append(ledger, [item])
    return item.event_id
