"""The lineage questions, and the lookups the SDK makes before it writes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from audit.reports.answers import VaultEntry
from lineage import answers
from registry import erasures, services, writes
from registry.api.answers import sent
from registry.api.deps import Asking, asking
from registry.api.problems import answering, responses
from registry.api.schemas import (
    DATASET_REF_PATTERN,
    DEPLOYMENT_REF_PATTERN,
    MODEL_REF_PATTERN,
    NODE_ID_PATTERN,
    URL_TEXT_PATTERN,
    DatasetPublic,
    NamePath,
    RecordQuery,
    RunPath,
    SubjectQuery,
    TextPath,
    Time,
)
from registry.errors import NotFound
from registry.ids import dataset_id, deployment_id, model_id

router = APIRouter(prefix="/projects/{project}", tags=["questions"])


def _node(pattern: str, description: str) -> Any:
    """A query parameter naming a node: ``pattern`` is the forms it takes (others: 400)."""
    return Query(
        min_length=1,
        max_length=600,
        description=description,
        json_schema_extra={"pattern": pattern},
    )


#: OpenLineage's node ids (``registry.services.named``): ``dataset:<namespace>:<name>``
#: and ``job:<namespace>:<name>``, the namespace itself perhaps holding ``:``.
_TEXT = URL_TEXT_PATTERN[1:-2]
_OPENLINEAGE = f"{_TEXT}*:{_TEXT}*"


def _or(pattern: str, *kinds: str) -> str:
    """``pattern`` (``^(...)$``) or an OpenLineage id of one of ``kinds``."""
    return f"^({pattern[1:-1]}|({'|'.join(kinds)}):{_OPENLINEAGE})$"


NodeParam = Annotated[
    str,
    _node(
        _or(NODE_ID_PATTERN, "dataset", "job"),
        "Typed node id, an id ending @latest, or an OpenLineage node id "
        "(dataset:<namespace>:<name>, job:<namespace>:<name>).",
    ),
]
ModelParam = Annotated[
    str,
    _node(
        _or(MODEL_REF_PATTERN, "dataset"),
        "Model version: name@version, name@alias, name@latest, its id, or "
        "dataset:<namespace>:model/<name>.",
    ),
]
DatasetParam = Annotated[
    str,
    _node(
        _or(DATASET_REF_PATTERN, "dataset"),
        "Dataset version: name@version, name@latest, its id, or dataset:<namespace>:<name>.",
    ),
]
DeploymentParam = Annotated[
    str,
    _node(
        _or(DEPLOYMENT_REF_PATTERN, "job"),
        "Deployment: its name, its id, or job:<namespace>:deployment/<name>.",
    ),
]
#: What a question about nodes can answer besides its result.
NODE_PROBLEMS = responses("invalid-node-id", "not-found")


@router.post("/questions/scored", **answering(answers.ScoredAnswer, "not-found"))
def scored(
    query: RecordQuery,
    ask: Annotated[Asking, asking("read", "questions.scored")],
) -> Response:
    """Which model version, in which deployment, scored this record, and when."""
    return sent(services.scored(ask.ledger, ask.who.project, record=query.record))


@router.get(
    "/questions/trained-on", response_model=answers.TrainedOnAnswer, responses=NODE_PROBLEMS
)
def trained_on(
    model: ModelParam,
    ask: Annotated[Asking, asking("read", "questions.trained_on")],
) -> Response:
    """Dataset versions that trained a model version (``name@version``, ``name@alias`` or
    a full id), transitively, with record counts."""
    return sent(services.trained_on(ask.ledger, ask.who.project, model=model))


@router.get(
    "/questions/downstream", response_model=answers.DownstreamAnswer, responses=NODE_PROBLEMS
)
def downstream(
    dataset: DatasetParam,
    ask: Annotated[Asking, asking("read", "questions.downstream")],
) -> Response:
    """Runs, datasets, model versions, deployments and predictions downstream of a dataset."""
    return sent(services.downstream(ask.ledger, ask.who.project, dataset=dataset))


@router.get("/questions/lineage", response_model=answers.LineageAnswer, responses=NODE_PROBLEMS)
def lineage(
    node: NodeParam,
    ask: Annotated[Asking, asking("read", "questions.lineage")],
    direction: Literal["upstream", "downstream", "both"] = "both",
    depth: Annotated[
        int,
        Query(description="Hops from the node (0 or more).", json_schema_extra={"minimum": 0}),
    ] = 3,
    as_of: Annotated[Time | None, Query(description="RFC 3339 time.")] = None,
) -> Response:
    """The lineage subgraph around a node, optionally as it stood at ``as_of``."""
    return sent(
        services.lineage(
            ask.ledger, ask.who.project, node=node, direction=direction, depth=depth, as_of=as_of
        )
    )


@router.get("/questions/history", response_model=answers.HistoryAnswer, responses=NODE_PROBLEMS)
def history(
    deployment: DeploymentParam,
    ask: Annotated[Asking, asking("read", "questions.history")],
) -> Response:
    """Which model versions a deployment served, from when to when."""
    return sent(services.history(ask.ledger, ask.who.project, deployment=deployment))


@router.get("/questions/aliases", **answering(answers.AliasesAnswer, "not-found"))
def aliases(
    name: Annotated[
        str,
        Query(
            min_length=1,
            max_length=600,
            description="Model name, or its OpenLineage id dataset:<namespace>:model/<name>.",
            json_schema_extra={"pattern": URL_TEXT_PATTERN},
        ),
    ],
    ask: Annotated[Asking, asking("read", "questions.aliases")],
) -> Response:
    """Where each alias (stage) of a model pointed over time, and who moved it."""
    return sent(services.aliases(ask.ledger, ask.who.project, name=name))


@router.post("/questions/footprint", **answering(answers.FootprintAnswer, "not-found"))
def footprint(
    query: SubjectQuery,
    ask: Annotated[Asking, asking("personal", "questions.footprint")],
) -> Response:
    """Everything linked to a data subject (data-protection officers)."""
    return sent(services.footprint(ask.ledger, ask.who.project, subject=query.subject))


@router.post(
    "/subjects/data/search", response_model=list[VaultEntry], responses=responses("not-found")
)
def subject_data(
    query: SubjectQuery,
    ask: Annotated[Asking, asking("personal", "subjects.read")],
) -> list[dict[str, Any]]:
    """Decrypt what the vault holds for a data subject (data-protection officers)."""
    return erasures.subject_data(ask.ledger, ask.who.project, query.subject)


# --- lookups -----------------------------------------------------------------------


@router.get(
    "/datasets/{name}/versions/{version}", response_model=DatasetPublic, responses=NODE_PROBLEMS
)
def dataset(
    name: NamePath,
    version: NamePath,
    ask: Annotated[Asking, asking("read", "datasets.read")],
) -> DatasetPublic:
    """A registered dataset version: digest and record count."""
    node = dataset_id(ask.who.project, name, version)
    found = writes.known_dataset(ask.ledger, node)
    if found is None:
        raise NotFound(f"no dataset version {node}")
    return DatasetPublic(id=node, name=name, version=version, **found)


@router.get("/models/{name}/top-version", response_model=dict[str, int | None])
def top_version(
    name: TextPath, ask: Annotated[Asking, asking("read", "models.read")]
) -> dict[str, int | None]:
    """The highest all-digit version of a model name (null when none)."""
    return {"top_version": writes.top_model_version(ask.ledger, ask.who.project, name)}


@router.get("/models/resolve", response_model=dict[str, str], responses=NODE_PROBLEMS)
def resolve_model(
    model: ModelParam, ask: Annotated[Asking, asking("read", "models.read")]
) -> dict[str, str]:
    """The model version id that ``name@version``, ``name@alias`` or an id names now."""
    return {"id": services.resolve_model(ask.ledger, ask.who.project, model)}


# --- one node each (the web interface's entity pages answer the same) -------------


@router.get("/runs/{run}", response_model=answers.RunAnswer, responses=NODE_PROBLEMS)
def run(run: RunPath, ask: Annotated[Asking, asking("read", "runs.read")]) -> Response:
    """A run: status, params, metrics and their series, inputs, outputs, code and
    environment (every list bounded, with its count)."""
    return sent(services.run_details(ask.ledger, ask.who.project, run=run))


@router.get(
    "/datasets/{name}/versions/{version}/details",
    response_model=answers.DatasetVersionAnswer,
    responses=NODE_PROBLEMS,
)
def dataset_details(
    name: NamePath,
    version: NamePath,
    ask: Annotated[Asking, asking("read", "datasets.read")],
) -> Response:
    """A dataset version: digest, location, schema, records, upstream and downstream."""
    node = dataset_id(ask.who.project, name, version)
    return sent(services.dataset_details(ask.ledger, ask.who.project, dataset=node))


@router.get(
    "/models/{name}/versions/{version}",
    response_model=answers.ModelVersionAnswer,
    responses=NODE_PROBLEMS,
)
def model_details(
    name: NamePath,
    version: NamePath,
    ask: Annotated[Asking, asking("read", "models.read")],
) -> Response:
    """A model version: training data, alias moves, deployments, predictions per day
    (the last 90 days) and the remediation flags erasures put on it."""
    node = model_id(ask.who.project, name, version)
    return sent(services.model_details(ask.ledger, ask.who.project, model=node))


@router.get("/deployments/{name}", response_model=answers.DeploymentAnswer, responses=NODE_PROBLEMS)
def deployment_details(
    name: NamePath, ask: Annotated[Asking, asking("read", "deployments.read")]
) -> Response:
    """A deployment: what it served when, with traffic splits, and its prediction volume
    per model version and per day (the last 90 days)."""
    node = deployment_id(ask.who.project, name)
    return sent(services.deployment_details(ask.ledger, ask.who.project, deployment=node))
