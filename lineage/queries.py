"""The six lineage questions, answered from the projections.

Each function takes the ledger and returns a typed answer (``lineage.answers``).
Record keys and subject ids come in as the user knows them and are turned into
pseudonyms before any lookup; they never leave this module in an answer. Each
question runs in a span ``query.<name>`` whose attributes are node ids and
pseudonyms, never a record key or subject id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from sqlalchemy import Connection, func, select

from lineage import prediction_filters
from lineage.answers import (
    AliasesAnswer,
    AliasSpan,
    DatasetNode,
    DeploymentServing,
    DownstreamAnswer,
    ErasureNote,
    FootprintAnswer,
    HistoryAnswer,
    LineageAnswer,
    LineageEdge,
    LineageNode,
    ModelNode,
    PredictionCount,
    RunNode,
    ScoredAnswer,
    ScoredPrediction,
    ServedModel,
    ServiceSpan,
    ServingInterval,
    SubjectPrediction,
    SubjectRecord,
    TrainedOnAnswer,
    TrainingDataset,
)
from lineage.graph import MemoryReader, graph_of, reading
from lineage.neo4j import attached
from lineage.walks import (
    Direction,
    GraphReader,
    Node,
    descendants,
    edges_among,
    walk,
)
from lineage.walks import training_depths as _training_depths
from registry.errors import InvalidNodeId, NotFound
from registry.ids import NodeId, kind_of, label_of, record_id, subject_id
from registry.lazy import lazy_import
from registry.store.raw import Raw, placeholders
from registry.store.schema import T
from registry.timeutil import to_timestamp
from registry.tracing import annotate, traced

if TYPE_CHECKING:
    import networkx as nx

    from registry.ledger import Ledger
else:
    nx = lazy_import("networkx")  # loaded when first used: not for every command

CHUNK = 500
# The kinds of node the lineage graph holds.
GraphKind = Literal["dataset", "run", "model", "deployment"]
GRAPH_KINDS = ("dataset", "run", "model", "deployment")
# The lists of a footprint answer, empty once the subject is erased.
FOOTPRINT_LISTS = (
    "records",
    "datasets",
    "derived_datasets",
    "runs",
    "models",
    "deployments",
    "predictions",
)


def resolve(text: str, kind: str, project: str) -> str:
    """A node id from what a user typed: a full id, or ``name@version`` / ``name``."""
    if ":" in text:
        node = NodeId.parse(text)
        if node.kind != kind:
            raise InvalidNodeId(f"{text!r} is a {node.kind} id, expected a {kind} id")
        return str(node)
    if kind in ("dataset", "model"):
        if "@" not in text:
            raise InvalidNodeId(
                f"{text!r}: expected '<name>@<version>' or '{kind}:<project>/<name>@<version>'"
            )
        return str(NodeId.parse(f"{kind}:{project}/{text}"))
    if kind == "run":
        return str(NodeId.parse(f"run:{text}"))
    return str(NodeId.parse(f"{kind}:{project}/{text}"))


def resolve_model(ledger: Ledger, text: str, project: str) -> str:
    """Like ``resolve`` for models, also accepting ``name@alias`` (e.g. ``clf@production``)
    and ``name@latest``, the newest version (unless a version or alias has that name)."""
    node = resolve(text, "model", project)
    with ledger.store.read() as conn:
        if _exists(conn, "cat_models", node):
            return node
        parsed = NodeId.parse(node)
        hist = T["alias_history"]
        target = conn.execute(
            select(hist.c.model).where(
                hist.c.project == parsed.project,
                hist.c.name == parsed.name,
                hist.c.alias == parsed.version,
                hist.c.valid_to.is_(None),
            )
        ).scalar()
        # The newest version of the asking project's own model (another project's
        # stays unknown: its name is not resolved here).
        if target is None and parsed.version == "latest" and parsed.project == project:
            models = T["cat_models"]
            target = conn.execute(
                select(models.c.id)
                .where(models.c.project == parsed.project, models.c.name == parsed.name)
                .order_by(models.c.position.desc())
                .limit(1)
            ).scalar()
    if target is None:
        raise NotFound(f"no model version or alias {text!r} in project {project!r}")
    return str(target)


def _exists(conn: Connection, table: str, node: str) -> bool:
    t = T[table]
    return conn.execute(select(t.c.id).where(t.c.id == node)).first() is not None


def _require(conn: Connection, table: str, node: str, what: str) -> None:
    if not _exists(conn, table, node):
        raise NotFound(f"no {what} {node} in the ledger")


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


Visible = frozenset[str] | None


def _shown(node: Node, visible: Visible) -> bool:
    """Whether the asker may see ``node``: every node when ``visible`` is None, else the
    nodes of the projects in it (its own, and those that grant it access)."""
    return visible is None or node.project in visible


def _withheld(count: int) -> int | None:
    """An answer's ``withheld``: how many nodes of projects the asker cannot read were
    left out, None (unsaid) when none was."""
    return count or None


def _epochs(ledger: Ledger, conn: Connection, project: str, pseudonyms: list[str]) -> list[int]:
    """The partitions of the prediction index a lookup of ``pseudonyms`` must seek: those
    whose filter may hold one of them, and the newest (``lineage.prediction_filters``)."""
    return prediction_filters.cache_of(ledger.store).epochs(Raw(conn), project, pseudonyms)


def warm(ledger: Ledger) -> None:
    """Load what a process's first questions would otherwise load while their askers
    wait: the embedded lineage graph, which the questions walk unless a Neo4j graph
    is attached (erasure plans and model reports still load it when they first need
    it), and the prediction index's filters."""
    with ledger.store.read() as conn:
        if attached(ledger) is None:
            graph_of(ledger).current(conn)
        prediction_filters.cache_of(ledger.store).refresh(Raw(conn))


def erased(conn: Connection, project: str, kind: str, reference: str) -> ErasureNote | None:
    """The latest erasure of a subject or record (by erasure reference), or None."""
    row = Raw(conn).one(
        "SELECT r.erasure, r.erased_pos, e.requested_pos, e.erased_at FROM erased_refs r "
        "JOIN erasures e ON e.erasure = r.erasure WHERE r.project = ? AND r.kind = ? AND "
        "r.reference = ? ORDER BY r.erased_pos DESC LIMIT 1",
        (project, kind, reference),
    )
    if row is None:
        return None
    return ErasureNote(
        erasure=row[0], position=int(row[1]), requested_position=int(row[2]), erased_at=row[3]
    )


# 1. scored ------------------------------------------------------------------------------


@traced("query.scored", "project")
def scored(ledger: Ledger, project: str, record_key: str | int) -> ScoredAnswer:
    """Every time record R was scored: model version, deployment, when, output."""
    pseudo = ledger.pseudonymizer(project)
    pseudonym = pseudo.record(record_key)
    annotate(**{"mlledger.record": record_id(project, pseudonym)})
    idx = T["prediction_index"]
    with ledger.store.read() as conn:
        gone = erased(conn, project, "record", pseudo.erased_record(pseudonym))
        rows = conn.execute(
            select(
                idx.c.deployment,
                idx.c.model,
                idx.c.at,
                idx.c.output,
                idx.c.trace_id,
                idx.c.position,
            )
            .where(
                idx.c.epoch.in_(_epochs(ledger, conn, project, [pseudonym])),
                idx.c.project == project,
                idx.c.record == pseudonym,
            )
            .order_by(idx.c.at, idx.c.position, idx.c.seq)
        ).all()
        if not rows and not _in_a_dataset(conn, project, pseudonym):
            if gone is not None:
                # Erased, and nothing about the record since: say so, never a stale answer.
                return ScoredAnswer.built(record=None, times_scored=0, predictions=[], erased=gone)
            raise NotFound(
                f"no record with that key in project {project!r}: it is in no "
                "dataset version and was never scored"
            )
    # ``gone`` here is an earlier erasure; what is shown came after it.
    predictions: list[ScoredPrediction] = [
        {
            "deployment": r.deployment,
            "model": r.model,
            "at": r.at,
            "output": json.loads(r.output),
            "trace_id": r.trace_id,
            "position": r.position,
        }
        for r in rows
    ]
    return ScoredAnswer.built(
        record=record_id(project, pseudonym),
        times_scored=len(rows),
        predictions=predictions,
        erased=gone,
    )


def _in_a_dataset(conn: Connection, project: str, pseudonym: str) -> bool:
    """Whether the record (by pseudonym) is in some dataset version of ``project``."""
    members = T["record_index"]
    return (
        conn.execute(
            select(members.c.dataset)
            .where(members.c.project == project, members.c.record == pseudonym)
            .limit(1)
        ).first()
        is not None
    )


# 2. trained-on ------------------------------------------------------------------------------


@traced("query.trained_on", "model")
def trained_on(ledger: Ledger, model: str, *, visible: Visible = None) -> TrainedOnAnswer:
    """Dataset versions that trained ``model``, transitively, with their depth and record
    counts; with ``visible``, only nodes of those projects (the rest counted as
    ``withheld``)."""
    with ledger.store.read() as conn, reading(ledger, conn) as reader:
        _require_node(reader, model, "model", visible, "model version")
        depths = training_depths(reader, model)
        upstream = sorted((d, n) for n, d in depths.items() if n != model)
        nodes = reader.nodes([n for _, n in upstream])
        hidden = {n for _, n in upstream if not _shown(nodes[n], visible)}
        found = [(d, n) for d, n in upstream if kind_of(n) == "dataset" and n not in hidden]
        runs = [n for _, n in upstream if kind_of(n) == "run" and n not in hidden]
        details = _dataset_details(conn, [n for _, n in found])
    datasets: list[TrainingDataset] = []
    for depth, node in found:
        digest, row_count, records = details.get(node, (None, None, 0))
        datasets.append(
            {
                "dataset": node,
                "label": nodes[node].label,
                "depth": depth,
                "relation": relation(depth),
                "records": records,
                "row_count": row_count,
                "digest": digest,
            }
        )
    run_nodes: list[RunNode] = [{"run": r, "job": nodes[r].label} for r in runs]
    return TrainedOnAnswer.built(
        model=model,
        runs=run_nodes,
        datasets=datasets,
        withheld=_withheld(len(hidden)),
    )


def _require_node(reader: GraphReader, node: str, kind: str, visible: Visible, what: str) -> Node:
    """The node ``node``; refuse (NotFound) one that is no ``kind`` node of the graph the
    asker may see."""
    found = reader.nodes([node]).get(node)
    if found is None or found.kind != kind or not _shown(found, visible):
        raise NotFound(f"no {what} {node} in the ledger")
    return found


def training_depths(graph: nx.MultiDiGraph | GraphReader, model: str) -> dict[str, int]:
    """Every node upstream of ``model`` over training edges, with its depth
    (``lineage.walks.training_depths``); ``graph`` a reader or the networkx graph."""
    reader = MemoryReader(graph) if isinstance(graph, nx.MultiDiGraph) else graph
    return _training_depths(reader, model)


def relation(depth: int) -> Literal["direct", "upstream"]:
    """``direct`` for training data at depth 1 (read by the model's own training run),
    ``upstream`` deeper."""
    return "direct" if depth == 1 else "upstream"


def _dataset_details(conn: Connection, datasets: list[str]) -> dict[str, tuple[Any, Any, int]]:
    """Digest, row count and distinct records of each dataset version."""
    raw = Raw(conn)
    out: dict[str, tuple[Any, Any, int]] = {}
    for chunk in _chunks(datasets):
        for node, digest, row_count, records in raw.all(
            "SELECT d.id, d.digest, d.row_count, c.records FROM cat_datasets d LEFT JOIN "
            "dataset_record_counts c ON c.dataset = d.id "
            f"WHERE d.id IN ({placeholders(len(chunk))})",
            chunk,
        ):
            out[node] = (digest, row_count, records or 0)
    return out


# 3. downstream ------------------------------------------------------------------------------


@traced("query.downstream", "dataset")
def downstream(ledger: Ledger, dataset: str, *, visible: Visible = None) -> DownstreamAnswer:
    """Everything downstream of a dataset version, with prediction counts; with
    ``visible``, only nodes of those projects (the rest counted as ``withheld``)."""
    with ledger.store.read() as conn, reading(ledger, conn) as reader:
        _require_node(reader, dataset, "dataset", visible, "dataset version")
        nodes = reader.nodes(sorted(descendants(reader, [dataset])))
        shown = {n: node for n, node in nodes.items() if _shown(node, visible)}
        summary = _summarise(conn, reader, shown)
    return DownstreamAnswer.built(
        dataset=dataset, **summary, withheld=_withheld(len(nodes) - len(shown))
    )


def _descendants(graph: nx.MultiDiGraph, roots: list[str]) -> set[str]:
    """Every node downstream of ``roots`` in the networkx graph (the roots left out)."""
    return descendants(MemoryReader(graph), roots)


class Summary(TypedDict):
    """The members of ``lineage.answers.Downstream``, as ``_summarise`` builds them."""

    runs: list[RunNode]
    datasets: list[DatasetNode]
    models: list[ModelNode]
    deployments: list[DeploymentServing]
    predictions: list[PredictionCount]
    total_predictions: int


def _summarise(conn: Connection, reader: GraphReader, nodes: dict[str, Node]) -> Summary:
    """``nodes`` by kind, each with its label, and the predictions of their model versions:
    the members of ``Downstream``."""
    by_kind: dict[str, list[str]] = {"dataset": [], "run": [], "model": [], "deployment": []}
    for node in sorted(nodes):
        by_kind.setdefault(kind_of(node), []).append(node)
    models = set(by_kind["model"])
    raw = Raw(conn)
    predictions: list[PredictionCount] = sorted(
        (
            {"deployment": dep, "model": model, "count": n, "first_at": first, "last_at": last}
            for chunk in _chunks(sorted(models))
            for dep, model, n, first, last in raw.all(
                "SELECT deployment, model, n, first_at, last_at FROM prediction_counts "
                f"WHERE model IN ({placeholders(len(chunk))})",
                chunk,
            )
        ),
        key=lambda p: (p["deployment"], p["model"]),
    )
    serving: dict[str, set[str]] = {}
    for edge in reader.edges(by_kind["deployment"], "in") if by_kind["deployment"] else []:
        if edge.src in models:
            serving.setdefault(edge.dst, set()).add(edge.src)
    label = {n: node.label for n, node in nodes.items()}
    return {
        "runs": [{"run": r, "job": label[r]} for r in by_kind["run"]],
        "datasets": [{"dataset": d, "label": label[d]} for d in by_kind["dataset"]],
        "models": [{"model": m, "label": label[m]} for m in by_kind["model"]],
        "deployments": [
            {"deployment": dep, "serves_from_here": sorted(serving.get(dep, ()))}
            for dep in by_kind["deployment"]
        ],
        "predictions": predictions,
        "total_predictions": sum(p["count"] for p in predictions),
    }


# 4. lineage ---------------------------------------------------------------------------------


@traced("query.lineage", "node", "direction", "depth")
def lineage(
    ledger: Ledger,
    node: str,
    *,
    direction: Direction = "both",
    depth: int = 3,
    when: Any = None,
    visible: Visible = None,
) -> LineageAnswer:
    """The subgraph around ``node`` to ``depth`` hops, optionally as of a past time; with
    ``visible``, only nodes of those projects (the rest counted as ``withheld``; the
    walk does not go through them)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise InvalidNodeId(f"depth {depth!r} is not valid: expected a whole number, 0 or more")
    if direction not in ("upstream", "downstream", "both"):
        raise InvalidNodeId(f"direction {direction!r}: expected upstream, downstream or both")
    parsed = NodeId.parse(node)
    at = None if when is None else to_timestamp(when, "as-of time")
    if parsed.kind not in GRAPH_KINDS:
        gone = _erased_node(ledger, parsed) if parsed.kind in ("record", "subject") else None
        if gone is None:
            raise NotFound(_not_a_graph_node(parsed))
        return LineageAnswer.built(
            root=node, direction=direction, depth=depth, as_of=at, nodes=[], edges=[], erased=gone
        )
    with ledger.store.read() as conn, reading(ledger, conn) as reader:
        root = reader.nodes([node]).get(node)
        if root is None or not _shown(root, visible):
            raise NotFound(f"no node {node} in the lineage graph")
        if at is not None and not reader.nodes([node], at):
            raise NotFound(f"{node} did not exist yet at {at} (created {root.created_at})")
        found, seen, hidden = walk(reader, node, direction, depth, at, visible)
        among = edges_among(reader, list(seen), at)
    nodes: list[LineageNode] = [
        {
            "id": n,
            "kind": cast(GraphKind, found[n].kind),
            "label": found[n].label,
            "created_at": found[n].created_at,
            "distance": d,
        }
        for n, d in sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))
    ]
    # In a past view every edge shown was still open: what closed it came later.
    edges: list[LineageEdge] = [
        {
            "src": e.src,
            "dst": e.dst,
            "kind": e.kind,
            "valid_from": e.valid_from,
            "valid_to": None if at is not None else e.valid_to,
        }
        for e in among
    ]
    return LineageAnswer.built(
        root=node,
        direction=direction,
        depth=depth,
        as_of=at,
        nodes=nodes,
        edges=edges,
        withheld=_withheld(len(hidden)),
    )


def _not_a_graph_node(node: NodeId) -> str:
    """Why ``node`` (of a kind the lineage graph does not hold) has no lineage, and what
    to ask instead. A record or subject id is not echoed: it stands for a person."""
    shown = f"{node.kind}:{node.project}/…" if node.project else str(node)
    holds = "dataset versions, runs, model versions and deployments"
    if node.kind == "subject":
        return (
            f"{shown} is a data subject, not a node of the lineage graph ({holds}); ask for "
            "their footprint instead: `mlledger footprint SUBJECT_ID` (over HTTP, POST "
            f"/api/v1/projects/{node.project}/questions/footprint with a dpo key). A subject "
            "id here answers only once the subject is erased"
        )
    if node.kind == "record":
        return (
            f"{shown} is a record, not a node of the lineage graph ({holds}); ask which model "
            "versions scored it instead: `mlledger scored RECORD_KEY` (over HTTP, POST "
            f"/api/v1/projects/{node.project}/questions/scored). A record id here answers "
            "only once the record is erased"
        )
    return f"{shown} is a {node.kind}, not a node of the lineage graph: expected an id of {holds}"


def _erased_node(ledger: Ledger, node: NodeId) -> ErasureNote | None:
    """The erasure of a record or subject named by its pseudonym or its erasure reference."""
    if node.project is None:
        return None
    pseudo = ledger.pseudonymizer(node.project)
    derive = pseudo.erased_record if node.kind == "record" else pseudo.erasure_reference
    with ledger.store.read() as conn:
        for reference in (derive(node.name), node.name):
            gone = erased(conn, node.project, node.kind, reference)
            if gone is not None:
                return gone
    return None


# 5. subject footprint ------------------------------------------------------------------------


@traced("query.footprint", "project")
def footprint(
    ledger: Ledger, project: str, subject: str | int, *, visible: Visible = None
) -> FootprintAnswer:
    """Every record, dataset version, run, model version, deployment and prediction
    linked to data subject S; with ``visible``, derived nodes of other projects only
    when those projects are in it (the rest counted as ``withheld``).

    The subject is named by their erasure reference, ``subject:<project>/<reference>``,
    as erasure plans, outcomes and certificates name them: one id before and after an
    erasure (docs/concepts.md, "Data subject")."""
    pseudo = ledger.pseudonymizer(project)
    pseudonym = pseudo.subject(subject)
    reference = pseudo.erasure_reference(pseudonym)
    who = subject_id(project, reference)
    annotate(**{"mlledger.subject": who})
    with ledger.store.read() as conn:
        gone = erased(conn, project, "subject", reference)
        records = _subject_records(conn, project, pseudonym)
        vault_entries = _vault_entries(conn, project, pseudonym)
        if not records and not vault_entries:
            if gone is None:
                raise NotFound(f"no data subject with that id in project {project!r}")
            # Erased, and nothing of the subject since: say so, never a stale answer.
            empty: dict[str, list[Any]] = {part: [] for part in FOOTPRINT_LISTS}
            return FootprintAnswer.built(subject=who, **empty, vault_entries=0, erased=gone)
        predictions = _subject_predictions(ledger, conn, project, sorted(records))
        datasets = sorted({d for ds in records.values() for d in ds})
        with reading(ledger, conn) as reader:
            held_nodes = reader.nodes(datasets)
            derived = reader.nodes(sorted(descendants(reader, list(held_nodes))))
            shown = {n: node for n, node in derived.items() if _shown(node, visible)}
            summary = _summarise(conn, reader, shown)
    held: list[DatasetNode] = [
        {"dataset": d, "label": held_nodes[d].label if d in held_nodes else label_of(d)}
        for d in datasets
    ]
    held_records: list[SubjectRecord] = [
        {"record": record_id(project, r), "datasets": ds} for r, ds in sorted(records.items())
    ]
    return FootprintAnswer.built(
        subject=who,
        records=held_records,
        datasets=held,
        derived_datasets=summary["datasets"],
        runs=summary["runs"],
        models=summary["models"],
        deployments=summary["deployments"],
        predictions=predictions,
        vault_entries=vault_entries,
        erased=gone,
        withheld=_withheld(len(derived) - len(shown)),
    )


def _subject_records(conn: Connection, project: str, pseudonym: str) -> dict[str, list[str]]:
    """The subject's records (by pseudonym), each with the dataset versions holding it."""
    members = T["record_index"]
    records: dict[str, list[str]] = {}
    for record, dataset in conn.execute(
        select(members.c.record, members.c.dataset)
        .where(members.c.project == project, members.c.subject == pseudonym)
        .order_by(members.c.record, members.c.dataset)
    ):
        records.setdefault(record, []).append(dataset)
    return records


def _vault_entries(conn: Connection, project: str, pseudonym: str) -> int:
    vault = T["vault_entries"]
    return int(
        conn.execute(
            select(func.count())
            .select_from(vault)
            .where(vault.c.project == project, vault.c.subject == pseudonym)
        ).scalar_one()
    )


def _subject_predictions(
    ledger: Ledger, conn: Connection, project: str, pseudonyms: list[str]
) -> list[SubjectPrediction]:
    """Every prediction about the records ``pseudonyms``, by time, record and position."""
    idx = T["prediction_index"]
    found: list[SubjectPrediction] = [
        {
            "record": record_id(project, r.record),
            "deployment": r.deployment,
            "model": r.model,
            "at": r.at,
            "position": r.position,
        }
        for chunk in _chunks(pseudonyms)
        for r in conn.execute(
            select(idx.c.record, idx.c.deployment, idx.c.model, idx.c.at, idx.c.position).where(
                idx.c.epoch.in_(_epochs(ledger, conn, project, chunk)),
                idx.c.project == project,
                idx.c.record.in_(chunk),
            )
        )
    ]
    return sorted(found, key=lambda p: (p["at"], p["record"], p["position"]))


# 6. deployment history --------------------------------------------------------------------------


@traced("query.history", "deployment")
def history(ledger: Ledger, deployment: str) -> HistoryAnswer:
    """Which model versions a deployment served, with traffic, from when to when."""
    deps, hist = T["cat_deployments"], T["deployment_history"]
    with ledger.store.read() as conn:
        current = conn.execute(select(deps).where(deps.c.id == deployment)).first()
        if current is None:
            raise NotFound(f"no deployment {deployment} in the ledger")
        rows = conn.execute(
            select(hist)
            .where(hist.c.deployment == deployment)
            .order_by(hist.c.opened_pos, hist.c.model)
        ).all()
    intervals = [
        ServingInterval(
            model=r.model,
            traffic=r.traffic,
            endpoint=r.endpoint,
            start=r.valid_from,
            end=r.valid_to,
        )
        for r in rows
    ]
    # Per model: merge back-to-back intervals (a traffic change is no gap in service).
    spans: dict[str, list[ServiceSpan]] = {}
    for item in sorted(intervals, key=lambda i: (i.model, i.start)):
        mine = spans.setdefault(item.model, [])
        if mine and mine[-1].end == item.start:
            mine[-1].end = item.end
        else:
            mine.append(ServiceSpan(start=item.start, end=item.end))
    models = [
        ServedModel(model=m, spans=s)
        for m, s in sorted(spans.items(), key=lambda kv: kv[1][0].start)
    ]
    return HistoryAnswer(
        deployment=deployment,
        status=current.status,
        endpoint=current.endpoint,
        intervals=intervals,
        models=models,
    )


# Alias history ---------------------------------------------------------------------------------


@traced("query.aliases", "project", "name")
def aliases(ledger: Ledger, project: str, name: str) -> AliasesAnswer:
    """Where each alias (stage) of model ``name`` pointed, from when to when, and who moved it."""
    with ledger.store.read() as conn:
        rows = Raw(conn).all(
            "SELECT alias, model, moved_by, valid_from, valid_to FROM alias_history "
            "WHERE project = ? AND name = ? ORDER BY alias, opened_pos",
            (project, name),
        )
        if (
            not rows
            and Raw(conn).one(
                "SELECT 1 FROM cat_models WHERE project = ? AND name = ?", (project, name)
            )
            is None
        ):
            raise NotFound(f"no model named {name!r} in project {project!r}")
    history: dict[str, list[AliasSpan]] = {}
    for alias, model, moved_by, start, end in rows:
        history.setdefault(alias, []).append(
            AliasSpan(model=model, moved_by=moved_by, start=start, end=end)
        )
    current = {alias: spans[-1].model for alias, spans in history.items() if spans[-1].end is None}
    return AliasesAnswer(model=name, current=current, history=history)
