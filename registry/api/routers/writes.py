"""Native writes: each route is the write of the same name in ``registry.writes`` (the
SDK call of that name), run on the server."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from registry import writes
from registry.api.deps import Asking, asking
from registry.api.problems import answering, responses
from registry.api.schemas import (
    AliasMove,
    DatasetCreate,
    DatasetPublic,
    DeploymentConfigure,
    DeploymentPublic,
    DeploymentRetire,
    Entry,
    ModelCreate,
    ModelPublic,
    NamePath,
    Position,
    Positions,
    PredictionsCreate,
    RunCreate,
    RunEnd,
    RunInputs,
    RunMetrics,
    RunParams,
    RunPath,
    RunPublic,
    SubjectDataCreate,
    TextPath,
)

router = APIRouter(prefix="/projects/{project}", tags=["writes"])


@router.post(
    "/datasets",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses("invalid-node-id", "conflict", "event-rejected"),
)
def register_dataset(
    data: DatasetCreate,
    ask: Annotated[Asking, asking("write", "datasets.register")],
) -> DatasetPublic:
    """Register a dataset version with its records (raw keys, pseudonymised here)."""
    made = writes.register_dataset(
        ask.ledger,
        ask.who,
        {
            "name": data.name,
            "version": data.version,
            "digest": data.digest,
            "uri": data.uri,
            "schema": dict(data.schema_) if data.schema_ is not None else None,
            "row_count": data.row_count,
            "derived_from": list(data.derived_from),
            "produced_by": data.produced_by,
            "tags": dict(data.tags or {}),
        },
        records=data.records,
        subjects=data.subjects,
        occurred_at=data.occurred_at,
    )
    return DatasetPublic(
        id=made.id, name=made.name, version=made.version, digest=made.digest, records=made.records
    )


@router.post(
    "/runs",
    response_model=RunPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses("event-rejected"),
)
def start_run(data: RunCreate, ask: Annotated[Asking, asking("write", "runs.start")]) -> RunPublic:
    """Start a run (with the code version and environment the client reports)."""
    body = {
        "job": data.job,
        "params": data.params,
        "code": data.code,
        "environment": data.environment,
        "parent_run": data.parent,
        "tags": data.tags,
    }
    node = writes.start_run(
        ask.ledger,
        ask.who,
        body,
        run=data.run_id,
        inputs=data.inputs or (),
        occurred_at=data.occurred_at,
    )
    return RunPublic(id=node, job=data.job, status="running")


#: Who may record what a running run does.
Recorder = Annotated[Asking, asking("write", "runs.record")]


def _on_run(what: str, answer: Any = Position) -> Any:
    """The route ``POST /runs/{run}/<what>``."""
    return router.post(
        f"/runs/{{run}}/{what}", response_model=answer, responses=responses("event-rejected")
    )


def _record(ask: Asking, run: str, type: str, body: dict[str, Any], at: Any) -> Position:
    return Position(position=writes.record_run(ask.ledger, ask.who, type, run, body, at))


@_on_run("inputs")
def run_inputs(run: RunPath, data: RunInputs, ask: Recorder) -> Position:
    """Declare dataset or model versions a running run reads."""
    return _record(ask, run, "run-inputs-used", {"inputs": data.inputs}, data.occurred_at)


@_on_run("params")
def run_params(run: RunPath, data: RunParams, ask: Recorder) -> Position:
    """Record parameters of a running run."""
    return _record(ask, run, "run-params-logged", {"params": data.params}, data.occurred_at)


@_on_run("metrics")
def run_metrics(run: RunPath, data: RunMetrics, ask: Recorder) -> Position:
    """Record metric values of a running run."""
    body = {"metrics": [{"key": k, "value": v, "step": data.step} for k, v in data.metrics.items()]}
    return _record(ask, run, "run-metrics-logged", body, data.occurred_at)


@_on_run("end", RunPublic)
def end_run(
    run: RunPath,
    data: RunEnd,
    ask: Annotated[Asking, asking("write", "runs.end")],
) -> RunPublic:
    """End a running run: completed, or failed with the exception's class name."""
    node, job = writes.end_run(
        ask.ledger,
        ask.who,
        run,
        status=data.status,
        error_type=data.error_type,
        occurred_at=data.occurred_at,
    )
    return RunPublic(id=node, job=job, status=data.status)


@router.post(
    "/models",
    response_model=ModelPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses("invalid-node-id", "conflict", "event-rejected"),
)
def register_model(
    data: ModelCreate,
    ask: Annotated[Asking, asking("write", "models.register")],
) -> ModelPublic:
    """Register a model version (numbered automatically when ``version`` is absent)."""
    made = writes.register_model(
        ask.ledger,
        ask.who,
        {
            "name": data.name,
            "version": data.version,
            "run": writes.run_node(data.run) if data.run is not None else None,
            "artifact_uri": data.artifact_uri,
            "artifact_digest": data.artifact_digest,
            "framework": data.framework,
            "tags": dict(data.tags or {}),
        },
        occurred_at=data.occurred_at,
    )
    return ModelPublic(
        id=made.id, name=made.name, version=made.version, artifact_digest=made.artifact_digest
    )


@router.put(
    "/models/{name}/aliases/{alias}",
    **answering(Position, "invalid-node-id", "not-found", "event-rejected"),
)
def set_alias(
    name: NamePath,
    alias: Annotated[TextPath, Path(min_length=1, max_length=128)],
    data: AliasMove,
    ask: Annotated[Asking, asking("write", "models.alias")],
) -> Position:
    """Point an alias (stage) of a model at a version; ``moved_by`` names the approver."""
    mover = writes.Author(ask.who.project, ask.who.actor_for(data.moved_by) or ask.who.actor)
    position = writes.set_alias(
        ask.ledger, mover, f"{name}@{data.version}", alias, occurred_at=data.occurred_at
    )
    return Position(position=position)


@router.put(
    "/deployments/{name}",
    **answering(DeploymentPublic, "invalid-node-id", "not-found", "event-rejected"),
)
def deploy(
    name: NamePath,
    data: DeploymentConfigure,
    ask: Annotated[Asking, asking("write", "deployments.configure")],
) -> DeploymentPublic:
    """Create or change a deployment: every model version it serves now, with traffic."""
    made = writes.deploy(
        ask.ledger,
        ask.who,
        name,
        endpoint=data.endpoint,
        served=data.served,
        occurred_at=data.occurred_at,
    )
    return DeploymentPublic(
        id=made.id, name=made.name, endpoint=made.endpoint, served=dict(made.served)
    )


@router.post(
    "/deployments/{name}/retire", **answering(Position, "invalid-node-id", "event-rejected")
)
def retire(
    name: NamePath,
    data: DeploymentRetire,
    ask: Annotated[Asking, asking("write", "deployments.retire")],
) -> Position:
    """Stop a deployment."""
    position = writes.retire(
        ask.ledger, ask.who, name, reason=data.reason, occurred_at=data.occurred_at
    )
    return Position(position=position)


@router.post(
    "/deployments/{name}/predictions",
    **answering(Positions, "invalid-node-id", "not-found", "event-rejected"),
)
def log_predictions(
    name: NamePath,
    data: PredictionsCreate,
    ask: Annotated[Asking, asking("write", "predictions.log")],
) -> Positions:
    """Log a batch of predictions (raw record keys, pseudonymised here)."""
    positions = writes.log_predictions(
        ask.ledger,
        ask.who,
        name,
        records=data.records,
        outputs=data.outputs,
        model=data.model,
        models=data.models,
        at=data.at,
        trace_ids=data.trace_ids,
    )
    return Positions(positions=positions)


@router.post(
    "/subjects/data",
    response_model=Entry,
    status_code=status.HTTP_201_CREATED,
    responses=responses("event-rejected"),
)
def store_subject_data(
    data: SubjectDataCreate,
    ask: Annotated[Asking, asking("write", "subjects.store")],
) -> Entry:
    """Put personal attributes of a data subject in the encrypted vault."""
    entry = writes.store_subject_data(ask.ledger, ask.who, data.subject, data.attributes)
    return Entry(entry=entry)
