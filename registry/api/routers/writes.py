"""Native writes: each route is the SDK call of the same name, run on the server."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from registry.api.deps import LedgerDep, Principal, allow
from registry.api.problems import responses
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
from registry.backend import LocalBackend
from registry.errors import LedgerError
from registry.events import NewEvent, make_event
from registry.ids import run_id
from registry.ledger import Ledger
from registry.sdk import NodeLike, Registry
from registry.store.raw import Raw

router = APIRouter(prefix="/projects/{project}", tags=["writes"])


def _registry(ledger: Ledger, who: Principal) -> Registry:
    return Registry(LocalBackend(ledger), who.project, who.actor)


def _run_node(run: str) -> str:
    try:
        return run_id(run.removeprefix("run:"))
    except ValueError:
        raise LedgerError(f"run {run!r}: expected a run id ('run:<uuid>' or '<uuid>')") from None


def _run_event(who: Principal, run: str, type: str, body: dict[str, Any], at: Any) -> NewEvent:
    return make_event(
        type,
        project=who.project,
        entity=_run_node(run),
        actor=who.actor,
        body=body,
        occurred_at=at,
    )


@router.post(
    "/datasets",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses("invalid-node-id", "conflict", "event-rejected"),
)
def register_dataset(
    data: DatasetCreate,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "datasets.register")],
) -> DatasetPublic:
    """Register a dataset version with its records (raw keys, pseudonymised here)."""
    made = _registry(ledger, who).register_dataset(
        data.name,
        data.version,
        uri=data.uri,
        digest=data.digest,
        schema=data.schema_,
        row_count=data.row_count,
        records=data.records,
        subjects=data.subjects,
        derived_from=data.derived_from,
        produced_by=data.produced_by,
        tags=data.tags,
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
def start_run(
    data: RunCreate, ledger: LedgerDep, who: Annotated[Principal, allow("write", "runs.start")]
) -> RunPublic:
    """Start a run (with the code version and environment the client reports)."""
    node = _run_node(data.run_id) if data.run_id is not None else run_id(uuid.uuid4())
    events = [
        _run_event(
            who,
            node,
            "run-started",
            {
                "job": data.job,
                "params": data.params,
                "code": data.code,
                "environment": data.environment,
                "parent_run": _run_node(data.parent) if data.parent is not None else None,
                "tags": data.tags,
            },
            data.occurred_at,
        )
    ]
    if data.inputs:
        events.append(
            _run_event(who, node, "run-inputs-used", {"inputs": data.inputs}, data.occurred_at)
        )
    ledger.append(events)
    return RunPublic(id=node, job=data.job, status="running")


@router.post("/runs/{run}/inputs", response_model=Position, responses=responses("event-rejected"))
def run_inputs(
    run: RunPath,
    data: RunInputs,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "runs.record")],
) -> Position:
    """Declare dataset or model versions a running run reads."""
    event = _run_event(who, run, "run-inputs-used", {"inputs": data.inputs}, data.occurred_at)
    return Position(position=ledger.append([event])[0])


@router.post("/runs/{run}/params", response_model=Position, responses=responses("event-rejected"))
def run_params(
    run: RunPath,
    data: RunParams,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "runs.record")],
) -> Position:
    """Record parameters of a running run."""
    event = _run_event(who, run, "run-params-logged", {"params": data.params}, data.occurred_at)
    return Position(position=ledger.append([event])[0])


@router.post("/runs/{run}/metrics", response_model=Position, responses=responses("event-rejected"))
def run_metrics(
    run: RunPath,
    data: RunMetrics,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "runs.record")],
) -> Position:
    """Record metric values of a running run."""
    body = {"metrics": [{"key": k, "value": v, "step": data.step} for k, v in data.metrics.items()]}
    event = _run_event(who, run, "run-metrics-logged", body, data.occurred_at)
    return Position(position=ledger.append([event])[0])


@router.post("/runs/{run}/end", response_model=RunPublic, responses=responses("event-rejected"))
def end_run(
    run: RunPath,
    data: RunEnd,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "runs.end")],
) -> RunPublic:
    """End a running run: completed, or failed with the exception's class name."""
    if data.status == "failed":
        if not data.error_type:
            raise LedgerError("a failed run needs error_type (the exception's class name)")
        event = _run_event(
            who, run, "run-failed", {"error_type": data.error_type}, data.occurred_at
        )
    else:
        event = _run_event(who, run, "run-completed", {}, data.occurred_at)
    ledger.append([event])
    with ledger.store.read() as conn:
        job = Raw(conn).scalar("SELECT job FROM cat_runs WHERE id = ?", (event.entity,))
    return RunPublic(id=event.entity, job=str(job), status=data.status)


@router.post(
    "/models",
    response_model=ModelPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses("invalid-node-id", "conflict", "event-rejected"),
)
def register_model(
    data: ModelCreate,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "models.register")],
) -> ModelPublic:
    """Register a model version (numbered automatically when ``version`` is absent)."""
    made = _registry(ledger, who).register_model(
        data.name,
        data.version,
        run=_run_node(data.run) if data.run is not None else None,
        artifact_uri=data.artifact_uri,
        artifact_digest=data.artifact_digest,
        framework=data.framework,
        tags=data.tags,
        occurred_at=data.occurred_at,
    )
    return ModelPublic(
        id=made.id, name=made.name, version=made.version, artifact_digest=made.artifact_digest
    )


@router.put(
    "/models/{name}/aliases/{alias}",
    response_model=Position,
    responses=responses("invalid-node-id", "not-found", "event-rejected"),
)
def set_alias(
    name: NamePath,
    alias: Annotated[TextPath, Path(min_length=1, max_length=128)],
    data: AliasMove,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "models.alias")],
) -> Position:
    """Point an alias (stage) of a model at a version; ``moved_by`` names the approver."""
    position = _registry(ledger, who).set_alias(
        f"{name}@{data.version}",
        alias,
        moved_by=who.actor_for(data.moved_by),
        occurred_at=data.occurred_at,
    )
    return Position(position=position)


@router.put(
    "/deployments/{name}",
    response_model=DeploymentPublic,
    responses=responses("invalid-node-id", "not-found", "event-rejected"),
)
def deploy(
    name: NamePath,
    data: DeploymentConfigure,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "deployments.configure")],
) -> DeploymentPublic:
    """Create or change a deployment: every model version it serves now, with traffic."""
    reg = _registry(ledger, who)
    served: dict[NodeLike, float] = {
        reg.backend.resolve_model(who.project, m): t for m, t in data.served.items()
    }
    made = reg.deploy(name, endpoint=data.endpoint, served=served, occurred_at=data.occurred_at)
    return DeploymentPublic(
        id=made.id, name=made.name, endpoint=made.endpoint, served=dict(made.served)
    )


@router.post(
    "/deployments/{name}/retire",
    response_model=Position,
    responses=responses("invalid-node-id", "event-rejected"),
)
def retire(
    name: NamePath,
    data: DeploymentRetire,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "deployments.retire")],
) -> Position:
    """Stop a deployment."""
    position = _registry(ledger, who).retire(name, reason=data.reason, occurred_at=data.occurred_at)
    return Position(position=position)


@router.post(
    "/deployments/{name}/predictions",
    response_model=Positions,
    responses=responses("invalid-node-id", "not-found", "event-rejected"),
)
def log_predictions(
    name: NamePath,
    data: PredictionsCreate,
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "predictions.log")],
) -> Positions:
    """Log a batch of predictions (raw record keys, pseudonymised here)."""
    reg = _registry(ledger, who)
    resolved: dict[str, str] = {}

    def model_id(text: str) -> str:
        # name@version and name@alias work here as they do for deployments.
        if text not in resolved:
            resolved[text] = reg.backend.resolve_model(who.project, text)
        return resolved[text]

    positions = reg.log_predictions(
        name,
        records=data.records,
        outputs=data.outputs,
        model=None if data.model is None else model_id(data.model),
        models=None if data.models is None else [model_id(m) for m in data.models],
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
    ledger: LedgerDep,
    who: Annotated[Principal, allow("write", "subjects.store")],
) -> Entry:
    """Put personal attributes of a data subject in the encrypted vault."""
    entry = _registry(ledger, who).store_subject_data(data.subject, data.attributes)
    return Entry(entry=entry)
