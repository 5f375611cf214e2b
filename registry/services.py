"""The lineage questions as a project asks them: one function per question.

Each function takes the ledger and the asking project, turns what the asker typed
into node ids, refuses a node of a project the asker may not read (as not found:
a project learns nothing of others' nodes), and answers with the typed answer of
``lineage.queries``, showing only nodes of projects the asker may read (its own
and those that grant it access; the rest counted as ``withheld``). The HTTP API's
routes and ``registry.backend.LocalBackend`` (the SDK and CLI) call these, so a
question answers and fails alike in process and over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lineage import entities, jobqueries, overview, queries
from lineage.answers import (
    AliasesAnswer,
    DatasetVersionAnswer,
    DeploymentAnswer,
    DownstreamAnswer,
    EventFeed,
    FootprintAnswer,
    HistoryAnswer,
    JobAnswer,
    JobsAnswer,
    LineageAnswer,
    ModelVersionAnswer,
    ProjectCounts,
    RunAnswer,
    ScoredAnswer,
    SearchAnswer,
    Shape,
    TrainedOnAnswer,
)
from registry.errors import FieldError, InvalidNodeId, NotFound
from registry.grants import grants, readable_projects
from registry.ids import KINDS, NodeId, kind_of, openlineage_id
from registry.ledger import Ledger
from registry.store.raw import Raw


def project_grants(ledger: Ledger, project: str) -> list[dict[str, Any]]:
    """Grants made by ``project`` and to it, oldest first, revoked ones included."""
    with ledger.store.read() as conn:
        return grants(Raw(conn), project)


def readable(ledger: Ledger, project: str) -> frozenset[str]:
    """The projects whose nodes ``project`` may see: itself and those granting it access."""
    with ledger.store.read() as conn:
        return readable_projects(Raw(conn), project)


def own(ledger: Ledger, project: str, node: str) -> frozenset[str]:
    """The projects ``project`` may read, after refusing (NotFound) a full node id of a
    project outside them; a short form (``name@version``) is resolved inside the project."""
    with ledger.store.read() as conn:
        raw = Raw(conn)
        visible = readable_projects(raw, project)
        if ":" not in node:
            return visible
        parsed = NodeId.parse(node)
        owner = parsed.project
        if parsed.kind == "run":
            owner = raw.scalar("SELECT project FROM cat_runs WHERE id = ?", (node,))
    if owner is not None and owner not in visible:
        raise NotFound(f"no node {node} in project {project!r}")
    return visible


#: What a node of each kind is called in an error saying what was expected.
EXPECTED = {
    "dataset": "a dataset version (NAME@VERSION, NAME@latest, dataset:PROJECT/NAME@VERSION "
    "or dataset:NAMESPACE:NAME)",
    "model": "a model version (NAME@VERSION, NAME@ALIAS, NAME@latest, "
    "model:PROJECT/NAME@VERSION or dataset:NAMESPACE:model/NAME)",
    "run": "a run (run:UUID, UUID or job:NAMESPACE:NAME, its newest run)",
    "deployment": "a deployment (NAME, deployment:PROJECT/NAME or job:NAMESPACE:deployment/NAME)",
}
#: What a node of each kind is, in an error.
NAMES = {"dataset": "dataset version", "model": "model version"}
#: The kinds of our nodes each kind of OpenLineage node id may name.
_OPENLINEAGE_KINDS = {"dataset": ("dataset", "model"), "job": ("run", "deployment")}
#: What an OpenLineage node of each kind names, in an error.
_OPENLINEAGE_NAMES = {
    "dataset": "a dataset's newest version (or a model's, for model/NAME)",
    "job": "a job's newest run (or a deployment, for deployment/NAME)",
}


def _expected(kind: str) -> str:
    return EXPECTED.get(kind, f"a {kind}")


def named(ledger: Ledger, project: str, text: str, kind: str | None = None) -> str:
    """What an asker typed, with OpenLineage's node ids and ``@latest`` turned into ours.

    ``dataset:<namespace>:<name>`` names that dataset's newest version in the project
    (a model's, for ``model/<name>`` in the project's namespace); ``job:<namespace>:<name>``
    the job's newest run (a deployment, for ``deployment/<name>``), as Marquez names
    them (``GET /api/v1/lineage``). ``NAME@latest`` (a ``kind`` of dataset or model)
    or an id ending so names the newest version of that name, unless a version is
    called ``latest``. Anything else comes back as typed.

    With ``kind``, an OpenLineage id that cannot name a node of that kind (a ``job:``
    id where a model version is asked for) is refused (InvalidNodeId) before anything
    is looked up; one naming a node of another kind of the project is not found
    (NotFound, saying what it names and what was expected)."""
    if openlineage_id(text):
        node_kind, _, rest = text.partition(":")
        if kind is not None and kind not in _OPENLINEAGE_KINDS[node_kind]:
            raise InvalidNodeId(
                f"{text!r} is an OpenLineage {node_kind} id, naming "
                f"{_OPENLINEAGE_NAMES[node_kind]}: expected {_expected(kind)}"
            )
        # Loaded only here: the OpenLineage package (its schemas) costs every command
        # that does not need it start-up time.
        from lineage.openlineage import marquez

        world = marquez.project_graph(ledger, project)
        node = world.find("DATASET" if node_kind == "dataset" else "JOB", rest)
        if node is None:
            raise NotFound(f"no {kind or node_kind} {text!r} in project {project!r}")
        found = str(node.rows[-1]["id"])
        if kind is not None and kind_of(found) != kind:
            # A question about a model names no dataset, one about a deployment no run:
            # the node is the asking project's own, so saying which it is tells nothing
            # of another project.
            raise NotFound(
                f"no {NAMES.get(kind, kind)} {text!r} in project {project!r}: it names the "
                f"{NAMES.get(kind_of(found), kind_of(found))} {found}; expected "
                f"{_expected(kind)}"
            )
        return found
    if not text.endswith("@latest") or (":" not in text and kind is None):
        return text
    full = text if ":" in text else f"{kind}:{project}/{text}"
    parsed = NodeId.parse(full)
    tables = {"dataset": "cat_datasets", "model": "cat_models"}
    if parsed.kind not in tables:
        return text
    with ledger.store.read() as conn:
        raw = Raw(conn)
        table = tables[parsed.kind]
        if raw.one(f"SELECT 1 FROM {table} WHERE id = ?", (str(parsed),)) is not None:
            return str(parsed)  # a version called "latest"
        if parsed.kind == "model" and raw.one(
            "SELECT 1 FROM alias_history WHERE project = ? AND name = ? AND alias = ? "
            "AND valid_to IS NULL",
            (parsed.project, parsed.name, "latest"),
        ):
            return str(parsed)  # an alias called "latest": the model's resolution takes it
        newest = raw.scalar(
            f"SELECT id FROM {table} WHERE project = ? AND name = ? ORDER BY position DESC LIMIT 1",
            (parsed.project, parsed.name),
        )
    if newest is None:
        raise NotFound(f"no {parsed.kind} {parsed.name!r} in project {parsed.project!r}")
    return str(newest)


def _asked(
    ledger: Ledger, project: str, text: str, kind: str | None = None
) -> tuple[str, frozenset[str]]:
    """The node ``text`` names (``named``) and the projects ``project`` may read, a node
    of a project outside them refused first (NotFound): an OpenLineage id names a
    node of the project's own."""
    if openlineage_id(text):
        return named(ledger, project, text, kind), readable(ledger, project)
    visible = own(ledger, project, text)
    return named(ledger, project, text, kind), visible


def resolve_model(ledger: Ledger, project: str, model: str) -> str:
    """The model version id that ``name@version``, ``name@alias``, ``name@latest``, an
    id or ``dataset:<namespace>:model/<name>`` names now; a model version of a project
    ``project`` may not read is not found, however named."""
    model, _ = _asked(ledger, project, model, "model")
    return queries.resolve_model(ledger, model, project)


def resolve_run(ledger: Ledger, project: str, run: str) -> str:
    """The run id that ``run:<uuid>``, ``<uuid>`` or ``job:<namespace>:<name>`` (the
    job's newest run in the project) names; whether the run exists is the caller's to
    ask (a run of another project answers as one that does not)."""
    if openlineage_id(run):
        return named(ledger, project, run, "run")
    if kind_of(run) in KINDS and kind_of(run) != "run":
        raise InvalidNodeId(f"{run!r} is a {kind_of(run)} id: expected {_expected('run')}")
    try:
        return queries.resolve(run, "run", project)
    except InvalidNodeId:
        raise InvalidNodeId(f"run {run!r}: expected {_expected('run')}") from None


def retained(
    ledger: Ledger, project: str, rules: Sequence[Mapping[str, str]]
) -> list[dict[str, str]]:
    """An erasure's ``retain`` rules, each model named some other way than by its id
    (``name@version``, ``name@alias``, ``name@latest``, ``dataset:<namespace>:model/<name>``)
    turned into the id of the version it names now; ``*`` and ids as given (the erasure
    checks that each names a model version it affects)."""
    done = []
    resolved: dict[str, str] = {}  # each name resolved once, however often repeated
    for index, rule in enumerate(rules):
        model = rule.get("model") if isinstance(rule, Mapping) else None
        if not isinstance(model, str):
            raise FieldError(
                f"retain.{index}.model",
                f"retain rule #{index} names no model: expected 'model' to be '*', a "
                "model version id, name@version, name@alias, name@latest or "
                "dataset:<namespace>:model/<name>",
            )
        if model != "*" and (openlineage_id(model) or ":" not in model):
            if model not in resolved:
                resolved[model] = resolve_model(ledger, project, model)
            model = resolved[model]
        done.append({**rule, "model": model})
    return done


def scored(ledger: Ledger, project: str, *, record: str | int) -> ScoredAnswer:
    """Every time a record of the project was scored (its own rows only)."""
    return queries.scored(ledger, project, record)


def trained_on(ledger: Ledger, project: str, *, model: str) -> TrainedOnAnswer:
    """Dataset versions that trained a model version (``name@version``, ``name@alias`` or
    an id), transitively."""
    model, visible = _asked(ledger, project, model, "model")
    node = queries.resolve_model(ledger, model, project)
    return queries.trained_on(ledger, node, visible=visible)


def downstream(ledger: Ledger, project: str, *, dataset: str) -> DownstreamAnswer:
    """Everything downstream of a dataset version (``name@version`` or an id)."""
    dataset, visible = _asked(ledger, project, dataset, "dataset")
    node = queries.resolve(dataset, "dataset", project)
    return queries.downstream(ledger, node, visible=visible)


def lineage(
    ledger: Ledger,
    project: str,
    *,
    node: str,
    direction: queries.Direction = "both",
    depth: int = 3,
    as_of: Any = None,
) -> LineageAnswer:
    """The lineage subgraph around a node, optionally as it stood at ``as_of``."""
    node, visible = _asked(ledger, project, node)
    return queries.lineage(
        ledger, node, direction=direction, depth=depth, when=as_of, visible=visible
    )


def footprint(ledger: Ledger, project: str, *, subject: str | int) -> FootprintAnswer:
    """Everything linked to a data subject of the project."""
    return queries.footprint(ledger, project, subject, visible=readable(ledger, project))


def history(ledger: Ledger, project: str, *, deployment: str) -> HistoryAnswer:
    """Which model versions a deployment (its name or id) served, from when to when."""
    deployment, visible = _asked(ledger, project, deployment, "deployment")
    node = queries.resolve(deployment, "deployment", project)
    if NodeId.parse(node).project not in visible:
        raise NotFound(f"no deployment {node} in the ledger")
    return queries.history(ledger, node)


def aliases(ledger: Ledger, project: str, *, name: str) -> AliasesAnswer:
    """Where each alias of the project's model ``name`` pointed, and who moved it; the
    model may be named as OpenLineage names it, ``dataset:<namespace>:model/<name>``."""
    if openlineage_id(name) and kind_of(name) == "dataset":
        return queries.aliases(
            ledger, project, NodeId.parse(named(ledger, project, name, "model")).name
        )
    if ":" in name:
        # No model's name holds ':' (registry.ids): a node id of another kind, or a job's.
        raise NotFound(
            f"no model named {name!r} in project {project!r}: expected a model's name, "
            "or its OpenLineage id dataset:NAMESPACE:model/NAME"
        )
    return queries.aliases(ledger, project, name)


def jobs(
    ledger: Ledger, project: str, *, status: str | None = None, limit: int = 100
) -> JobsAnswer:
    """The jobs executing the project's runs, newest submission first."""
    return jobqueries.jobs(ledger, project, status=status, limit=limit)


def job(ledger: Ledger, project: str, *, run: str) -> JobAnswer:
    """The job executing run ``run`` (``run:<uuid>``, ``<uuid>`` or an OpenLineage
    ``job:<namespace>:<name>``), with its events;
    a run of another project is not found, as one with no job. ``job:<namespace>:<name>``
    names the job's newest run in the project."""
    return jobqueries.job(ledger, project, resolve_run(ledger, project, run))


def counts(ledger: Ledger, project: str) -> ProjectCounts:
    """How many dataset versions, runs, model versions, deployments and events the
    project holds."""
    return overview.counts(ledger, project)


def feed(ledger: Ledger, project: str, *, after: int = -1, limit: int = 20) -> EventFeed:
    """The project's newest events after position ``after``, newest first (no bodies)."""
    return overview.feed(ledger, project, after=after, limit=limit)


def search(
    ledger: Ledger,
    project: str,
    text: str,
    *,
    kinds: tuple[str, ...] = overview.KINDS,
    offset: int = 0,
    limit: int = 25,
) -> SearchAnswer:
    """The project's datasets, models, runs, deployments and OpenLineage jobs whose name
    holds ``text``, one page of names."""
    return overview.search(ledger, project, text, kinds=kinds, offset=offset, limit=limit)


def run_details(ledger: Ledger, project: str, *, run: str) -> RunAnswer:
    """A run (``run:<uuid>`` or ``<uuid>``) of the project: params, metrics and their
    series, inputs, outputs, code, environment and status."""
    node = resolve_run(ledger, project, run)
    return entities.run(ledger, project, node, readable(ledger, project))


def dataset_details(ledger: Ledger, project: str, *, dataset: str) -> DatasetVersionAnswer:
    """A dataset version (``name@version``, ``name@latest`` or its id): digest, location,
    schema, records, and what is upstream and downstream of it."""
    dataset, visible = _asked(ledger, project, dataset, "dataset")
    node = queries.resolve(dataset, "dataset", project)
    return entities.dataset(ledger, project, node, visible)


def model_details(ledger: Ledger, project: str, *, model: str) -> ModelVersionAnswer:
    """A model version (``name@version``, ``name@alias``, ``name@latest`` or its id):
    training data, alias moves, deployments, predictions per day and remediation flags."""
    model, visible = _asked(ledger, project, model, "model")
    node = queries.resolve_model(ledger, model, project)
    trained = queries.trained_on(ledger, node, visible=visible)
    training = (list(trained.datasets), trained.withheld or 0)
    return entities.model(ledger, project, node, visible, training)


def deployment_details(ledger: Ledger, project: str, *, deployment: str) -> DeploymentAnswer:
    """A deployment (its name or id): its serving intervals with traffic splits, and its
    prediction volume per model version and per day."""
    deployment, visible = _asked(ledger, project, deployment, "deployment")
    node = queries.resolve(deployment, "deployment", project)
    return entities.deployment(ledger, project, node, visible)


#: Each question by the name the SDK and ``LocalBackend.ask`` give it.
QUESTIONS: dict[str, Callable[..., Shape]] = {
    "scored": scored,
    "trained_on": trained_on,
    "downstream": downstream,
    "lineage": lineage,
    "footprint": footprint,
    "history": history,
    "aliases": aliases,
}


def ask(ledger: Ledger, project: str, question: str, **params: Any) -> Shape:
    """Answer the question named ``question`` (one of ``QUESTIONS``) with ``params``."""
    answer = QUESTIONS.get(question)
    if answer is None:
        raise NotFound(f"unknown question {question!r}; expected one of {', '.join(QUESTIONS)}")
    return answer(ledger, project, **params)
