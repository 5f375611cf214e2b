"""The Marquez-shaped lineage read model: a project's catalogue grouped into
Marquez's nodes (datasets and jobs) and the edges between them, and the answer
``marquez_graph`` gives in the shape of Marquez's ``GET /api/v1/lineage``."""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from lineage.graph import reading
from lineage.openlineage import naming
from lineage.openlineage.constants import ID_NAMESPACE
from lineage.openlineage.facets import dataset_facets, with_facets
from lineage.walks import GraphReader
from registry.errors import InvalidNodeId, NotFound
from registry.ids import check_name
from registry.store.raw import Raw
from registry.timeutil import FORMAT, stored_form, to_timestamp

if TYPE_CHECKING:
    from registry.ledger import Ledger

NodeType = Literal["DATASET", "JOB"]
T = TypeVar("T")
#: The longest job name a chain of parents makes (the run's own name past it).
JOB_NAME_MAX = 1024
_STATES = {"running": "RUNNING", "completed": "COMPLETED", "failed": "FAILED"}
# The lineage edges kinds that join Marquez nodes: dataset -> job (read, served), job ->
# dataset (written).
_EDGE_KINDS = ("input", "output", "serves")


def _by(column: str, when: str | None) -> str:
    """The condition keeping rows of ``column`` at or before ``when`` (none: all)."""
    return "" if when is None else f" AND {column} <= ?"


def _at(when: str | None) -> tuple[str, ...]:
    return () if when is None else (when,)


def _deployment_then(raw: Raw, deployment: str, when: str, created: str) -> dict[str, Any]:
    """A deployment as it stood at ``when``: the models it served then with their
    traffic, and its last change by then (its time and log position)."""
    served: list[dict[str, Any]] = []
    changes: list[tuple[int, str]] = []
    for model, traffic, start, end, opened, closed in raw.all(
        "SELECT model, traffic, valid_from, valid_to, opened_pos, closed_pos "
        "FROM deployment_history WHERE deployment = ? AND valid_from <= ? "
        "ORDER BY opened_pos, model",
        (deployment, when),
    ):
        changes.append((int(opened), start))
        if end is None or end > when:
            served.append({"model": model, "traffic": traffic})
        elif closed is not None:
            changes.append((int(closed), end))
    if not changes:
        return {"served": [], "updated": created}
    position, at = max(changes)
    return {"served": served, "updated": at, "position": position}


def marquez_id(node_type: NodeType, key: tuple[str, str]) -> str:
    return f"{'dataset' if node_type == 'DATASET' else 'job'}:{key[0]}:{key[1]}"


@dataclass
class GroupNode:
    type: NodeType
    key: tuple[str, str]
    kind: str  # dataset, model, job, deployment
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return marquez_id(self.type, self.key)


@dataclass
class ProjectGraph:
    """A project's catalogue grouped into Marquez's nodes, and the edges between them."""

    project: str
    nodes: dict[str, GroupNode] = field(default_factory=dict)
    of: dict[str, str] = field(default_factory=dict)  # mlledger node id -> Marquez node id
    edges: set[tuple[str, str]] = field(default_factory=set)
    versions: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> ns,name,v
    run_io: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # run -> in/out
    # A child job's Marquez id by its own name (None when two children share it).
    aliases: dict[str, str | None] = field(default_factory=dict)
    # What the questions work out from the nodes and edges once (``derived``).
    _derived: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def derived(self, name: str, make: Callable[[ProjectGraph], T]) -> T:
        """``make(self)``, worked out on the first call by ``name`` and kept: the model
        does not change once loaded (two threads asking at once may both work it out;
        they get equal answers)."""
        if name not in self._derived:
            self._derived[name] = make(self)
        return cast(T, self._derived[name])

    def _add(
        self, node_type: NodeType, key: tuple[str, str], kind: str, row: dict[str, Any], member: str
    ) -> None:
        node_id = marquez_id(node_type, key)
        node = self.nodes.get(node_id)
        if node is None:
            node = self.nodes[node_id] = GroupNode(node_type, key, kind)
        node.rows.append(row)
        self.of[member] = node_id

    def _version(self, kind: str, key: tuple[str, str], row: dict[str, Any]) -> None:
        """Add a dataset or model version (``row["id"]``) to its DATASET node."""
        self._add("DATASET", key, kind, row, row["id"])
        self.versions[row["id"]] = (*key, row["version"])

    @classmethod
    def load(
        cls, conn: Any, project: str, graph: GraphReader, when: str | None = None
    ) -> ProjectGraph:
        """The project's catalogue, read through ``conn``, with the edges of ``graph``;
        with ``when`` (a stored timestamp), as it stood then: the versions registered,
        the runs started and the deployments made by then, each run's state and each
        deployment's models as they were, and the edges valid then."""
        raw = Raw(conn)
        world = cls(project)
        world._load_datasets(raw, when)
        world._load_models(raw, when)
        world._load_runs(raw, when)
        world._load_deployments(raw, when)
        world._link(graph, when)
        return world

    def _load_datasets(self, raw: Raw, when: str | None) -> None:
        project = self.project
        for node, name, version, schema, tags, at, produced_by in raw.all(
            "SELECT id, name, version, schema, tags, registered_at, produced_by "
            f"FROM cat_datasets WHERE project = ?{_by('registered_at', when)} ORDER BY position",
            (project, *_at(when)),
        ):
            row = {
                "id": node,
                "version": version,
                "at": at,
                "produced_by": produced_by,
                "schema": None if schema is None else naming.parsed(schema),
            }
            self._version("dataset", naming.dataset_key(project, name, naming.tags_of(tags)), row)

    def _load_models(self, raw: Raw, when: str | None) -> None:
        for node, name, version, at, run in raw.all(
            "SELECT id, name, version, registered_at, run FROM cat_models "
            f"WHERE project = ?{_by('registered_at', when)} ORDER BY position",
            (self.project, *_at(when)),
        ):
            row = {"id": node, "version": version, "at": at, "produced_by": run, "schema": None}
            self._version("model", naming.model_key(self.project, name), row)

    def _load_runs(self, raw: Raw, when: str | None) -> None:
        """Runs grouped by job. As in Marquez, a run with a parent run belongs to the job
        ``<parent's job>.<its job>`` (the parent's job named the same way, so a chain
        of parents makes a dotted path), its own job name being the ``simpleName``."""
        full: dict[str, str] = {}  # run -> the Marquez name of its job
        for node, job, tags, status, params, parent, started, ended, error, code in raw.all(
            "SELECT id, job, tags, status, params, parent_run, started_at, ended_at, error_type, "
            "code FROM cat_runs WHERE project = ?"
            f"{_by('COALESCE(started_at, ended_at)', when)} ORDER BY position",
            (self.project, *_at(when)),
        ):
            if when is not None and ended is not None and ended > when:
                status, ended, error = "running", None, None  # it had not ended yet
            row = {
                "id": node,
                "status": status,
                "params": naming.parsed(params),
                "parent": parent,
                "started": started,
                "ended": ended,
                "error": error,
                "code": naming.parsed(code) if code else {},
            }
            namespace, simple = naming.run_key(self.project, job, naming.tags_of(tags))
            prefixed = simple if parent not in full else f"{full[parent]}.{simple}"
            # A chain of parents deep enough to make a name past JOB_NAME_MAX stops there.
            name = prefixed if len(prefixed) <= JOB_NAME_MAX else simple
            full[node] = name
            row["simple"] = simple
            self._add("JOB", (namespace, name), "job", row, node)
            if name != simple:
                alias, target = (
                    marquez_id("JOB", (namespace, simple)),
                    marquez_id("JOB", (namespace, name)),
                )
                self.aliases[alias] = target if self.aliases.get(alias, target) == target else None

    def _load_deployments(self, raw: Raw, when: str | None) -> None:
        for node, name, served, created, updated, position in raw.all(
            "SELECT id, name, served, created_at, updated_at, position FROM cat_deployments "
            f"WHERE project = ?{_by('created_at', when)} ORDER BY created_at, id",
            (self.project, *_at(when)),
        ):
            row = {
                "id": node,
                "served": naming.parsed(served),
                "created": created,
                "updated": updated,
                "position": position,
            }
            if when is not None:
                row.update(_deployment_then(raw, node, when, created))
            self._add("JOB", naming.deployment_key(self.project, name), "deployment", row, node)

    def _link(self, reader: GraphReader, when: str | None = None) -> None:
        """The edges between the nodes (valid at ``when``), and each run's inputs and
        outputs."""
        for edge in reader.edges(list(self.of), "out", when):
            member, dst = edge.src, edge.dst
            if edge.kind not in _EDGE_KINDS or dst not in self.of:
                continue
            self.edges.add((self.of[member], self.of[dst]))
            if edge.kind == "input":
                self.run_io.setdefault(dst, {}).setdefault("in", []).append(member)
            elif edge.kind == "output":
                self.run_io.setdefault(member, {}).setdefault("out", []).append(dst)

    @cached_property
    def _adjacent(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        incoming: dict[str, list[str]] = {}
        outgoing: dict[str, list[str]] = {}
        for origin, destination in sorted(self.edges):
            incoming.setdefault(destination, []).append(origin)
            outgoing.setdefault(origin, []).append(destination)
        return incoming, outgoing

    def neighbours(self, node_id: str) -> tuple[list[str], list[str]]:
        """The nodes with an edge into ``node_id`` and those it has an edge to, each
        sorted (the edges indexed once, when first asked, after ``load``)."""
        incoming, outgoing = self._adjacent
        return incoming.get(node_id, []), outgoing.get(node_id, [])

    def find(self, node_type: NodeType, rest: str) -> GroupNode | None:
        """The node ``<namespace>:<name>`` names, trying each ':' as the separator; a
        child job by its own name too, when no other child shares it."""
        ids = [
            marquez_id(node_type, (rest[:i], rest[i + 1 :]))
            for i, char in enumerate(rest)
            if char == ":"
        ]
        for node_id in [*ids, *(self.aliases.get(i) for i in ids)]:
            node = self.nodes.get(node_id) if node_id is not None else None
            if node is not None:
                return node
        return None


def parse_marquez(node_id: str) -> tuple[NodeType, str]:
    expected = (
        "expected 'dataset:<namespace>:<name>' or 'job:<namespace>:<name>' "
        "(the namespace may itself contain ':')"
    )
    if not isinstance(node_id, str) or ":" not in node_id:
        raise InvalidNodeId(f"node id {node_id!r} is not a Marquez node id: {expected}")
    prefix, rest = node_id.split(":", 1)
    if prefix not in ("dataset", "job") or ":" not in rest:
        raise InvalidNodeId(f"node id {node_id!r} is not a Marquez node id: {expected}")
    return ("DATASET" if prefix == "dataset" else "JOB"), rest


def marquez_graph(
    ledger: Ledger, project: str, node_id: str, depth: int = 20, as_of: str | None = None
) -> dict[str, Any]:
    """The lineage around a dataset or job of ``project``, shaped as Marquez's
    ``GET /api/v1/lineage?nodeId=...&depth=...`` answers it.

    Nodes are datasets (dataset versions grouped by OpenLineage namespace and
    name; native ones in the project's namespace; model versions as
    ``model/<name>``) and jobs (runs grouped by job; deployments as
    ``deployment/<name>``). Edges go dataset -> job (read, or served) and job ->
    dataset (written). The walk follows edges both ways up to ``depth`` hops; a
    job found brings all its datasets. Nodes are sorted by id, edges by origin
    then destination. With ``as_of`` (a time), the graph as it stood then
    (``ProjectGraph.load``), facets as the events by then gave them.
    """
    # The cache reads this module: imported when first asked.
    from lineage.openlineage.cache import cache_of, head

    check_name(project, "project")
    if not isinstance(depth, int) or depth < 0:
        raise InvalidNodeId(f"depth {depth!r} is not valid: expected 0 or more")
    node_type, rest = parse_marquez(node_id)
    if as_of is not None:
        return _graph_then(ledger, project, node_type, rest, node_id, depth, as_of)
    kept = cache_of(ledger, project)
    with ledger.store.read() as conn:
        position = head(conn)
        world = kept.graph(ledger, conn, position)
        start = world.find(node_type, rest)
        if start is None:
            raise NotFound(f"no {node_type.lower()} {node_id!r} in project {project!r}")
        included = _around(world, start.id, depth)
        facets = kept.dataset_facets(conn, position)
    return {"graph": _graph(world, included, facets)}


def _graph_then(
    ledger: Ledger,
    project: str,
    node_type: NodeType,
    rest: str,
    node_id: str,
    depth: int,
    as_of: str,
) -> dict[str, Any]:
    """``marquez_graph`` as of a past time: read afresh (what the routes keep is the
    graph as of the log's head)."""
    when = to_timestamp(as_of, "asOf")
    with ledger.store.read() as conn, reading(ledger, conn) as reader:
        world = ProjectGraph.load(conn, project, reader, when)
        start = world.find(node_type, rest)
        if start is None:
            raise NotFound(f"no {node_type.lower()} {node_id!r} in project {project!r} at {when}")
        included = _around(world, start.id, depth)
        latest = [
            world.nodes[n].rows[-1]["id"] for n in included if world.nodes[n].type == "DATASET"
        ]
        facets = dataset_facets(Raw(conn), project, latest, until=when)
    return {"graph": _graph(world, included, facets)}


def _undirected(world: ProjectGraph) -> dict[str, set[str]]:
    """Each node's neighbours, whichever way their edges go."""
    neighbours: dict[str, set[str]] = {}
    for origin, destination in world.edges:
        neighbours.setdefault(origin, set()).add(destination)
        neighbours.setdefault(destination, set()).add(origin)
    return neighbours


def _around(world: ProjectGraph, start: str, depth: int) -> set[str]:
    """The nodes within ``depth`` hops of ``start`` (either way), plus every dataset
    of a job among them."""
    neighbours = world.derived("undirected", _undirected)
    seen = {start: 0}
    queue: deque[str] = deque([start])
    while queue:
        current = queue.popleft()
        if seen[current] >= depth:
            continue
        for nxt in sorted(neighbours.get(current, ())):
            if nxt not in seen:
                seen[nxt] = seen[current] + 1
                queue.append(nxt)
    included = set(seen)
    for node in list(seen):
        if world.nodes[node].type == "JOB":
            included |= neighbours.get(node, set())
    return included


def _graph(
    world: ProjectGraph, included: set[str], facets: Mapping[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Marquez's ``graph``: the ``included`` nodes sorted by id, with their edges."""
    graph = []
    for node in sorted(included):
        item = world.nodes[node]
        ins, outs = world.neighbours(node)
        graph.append(
            {
                "id": node,
                "type": item.type,
                "data": (
                    with_facets(dataset_data(item), facets.get(item.rows[-1]["id"], {}))
                    if item.type == "DATASET"
                    else job_data(world, item, ins, outs)
                ),
                "inEdges": [{"origin": o, "destination": node} for o in ins if o in included],
                "outEdges": [{"origin": node, "destination": d} for d in outs if d in included],
            }
        )
    return graph


def ref(key: tuple[str, str]) -> dict[str, str]:
    return {"namespace": key[0], "name": key[1]}


def dataset_data(node: GroupNode) -> dict[str, Any]:
    """A node's data shaped as Marquez's DatasetData (plus currentVersion and mlledger)."""
    first, latest = node.rows[0], node.rows[-1]
    written = [r["at"] for r in node.rows if r["produced_by"]]
    return {
        "id": ref(node.key),
        "type": "DB_TABLE",
        "name": node.key[1],
        "physicalName": node.key[1],
        "createdAt": first["at"],
        "updatedAt": latest["at"],
        "namespace": node.key[0],
        "sourceName": node.key[0],
        "fields": [
            {"name": name, "type": kind, "tags": [], "description": None}
            for name, kind in (latest["schema"] or {}).items()
        ],
        "tags": [],
        "lastModifiedAt": max(written) if written else None,
        "description": None,
        "lastLifecycleState": None,
        "currentVersion": latest["id"],
        "mlledger": {"kind": node.kind, "versions": len(node.rows)},
    }


def _duration_ms(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    # Earlier versions wrote years below 1000 without zero padding.
    finish = datetime.strptime(stored_form(end) or end, FORMAT)
    delta = finish - datetime.strptime(stored_form(start) or start, FORMAT)
    return int(delta.total_seconds() * 1000)


def version_refs(world: ProjectGraph, nodes: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for node in sorted(set(nodes)):
        if node in world.versions:
            namespace, name, version = world.versions[node]
            out.append(
                {
                    "datasetVersionId": {"namespace": namespace, "name": name, "version": version},
                    "facets": {},
                }
            )
    return out


def marquez_run(
    run_uuid: str,
    started: str,
    ended: str | None,
    state: str,
    job: dict[str, Any],
    *,
    duration: int | None,
    args: dict[str, str],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """A Marquez Run of job version ``job``, read ``inputs`` and wrote ``outputs``."""
    return {
        "id": run_uuid,
        "createdAt": started,
        "updatedAt": ended or started,
        "nominalStartTime": None,
        "nominalEndTime": None,
        "state": state,
        "startedAt": started,
        "endedAt": ended,
        "durationMs": duration,
        "args": args,
        "jobVersion": job,
        "inputDatasetVersions": inputs,
        "outputDatasetVersions": outputs,
        "facets": {},
    }


def latest_run(world: ProjectGraph, node: GroupNode) -> dict[str, Any]:
    """The latest run of a job node, shaped as Marquez's Run."""
    return run_data(world, node, node.rows[-1])


def job_version(world: ProjectGraph, node: GroupNode, row: dict[str, Any]) -> str | None:
    """The version of a job that a run (``row``) ran, as Marquez versions jobs: the
    same for every run of the job reading and writing the same datasets from the same
    code (its source location), a UUID 5 of them; None for a deployment."""
    if node.kind != "job":
        return None
    io = world.run_io.get(row["id"], {})
    sides = [
        sorted({world.nodes[world.of[v]].key for v in io.get(side, []) if v in world.of})
        for side in ("in", "out")
    ]
    made_of = json.dumps([list(node.key), sides, row.get("code") or {}], sort_keys=True)
    return str(uuid.uuid5(ID_NAMESPACE, f"job-version\0{made_of}"))


def run_data(world: ProjectGraph, node: GroupNode, row: dict[str, Any]) -> dict[str, Any]:
    """One run of a job node (``row``, one of its rows), shaped as Marquez's Run."""
    job = {
        "namespace": node.key[0],
        "name": node.key[1],
        "version": job_version(world, node, row),
    }
    if node.kind == "deployment":
        at = row["updated"]
        return marquez_run(
            naming.deployment_run(row["id"], row["position"]),
            at,
            at,
            "COMPLETED",
            job,
            duration=0,
            args={},
            inputs=version_refs(world, [s["model"] for s in row["served"]]),
            outputs=[],
        )
    state = _STATES.get(row["status"], "OTHER")
    if state == "FAILED" and (row["error"] or "").startswith("openlineage.ABORT"):
        state = "ABORTED"
    io = world.run_io.get(row["id"], {})
    return marquez_run(
        naming.uuid_of(row["id"]),
        row["started"],
        row["ended"],
        state,
        job,
        duration=_duration_ms(row["started"], row["ended"]),
        args={
            k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in row["params"].items()
        },
        inputs=version_refs(world, io.get("in", [])),
        outputs=version_refs(world, io.get("out", [])),
    )


def job_data(
    world: ProjectGraph, node: GroupNode, ins: list[str], outs: list[str]
) -> dict[str, Any]:
    """A node's data shaped as Marquez's JobData (plus mlledger): ``ins`` and ``outs``
    are every dataset it ever read (or served) and wrote."""
    row = node.rows[-1]
    parent_name = None
    if node.kind == "deployment":
        created, updated = node.rows[0]["created"], row["updated"]
        current = naming.deployment_run(row["id"], row["position"])
    else:
        created = node.rows[0]["started"]
        updated = max(r["ended"] or r["started"] for r in node.rows)
        current = naming.uuid_of(row["id"])
        if row["parent"] and row["parent"] in world.of:
            parent_name = world.nodes[world.of[row["parent"]]].key[1]
    return {
        "id": ref(node.key),
        "type": "SERVICE" if node.kind == "deployment" else "BATCH",
        "name": node.key[1],
        "simpleName": row.get("simple", node.key[1]),
        "parentJobName": parent_name,
        "parentJobUuid": None,
        "currentRunUuid": current,
        "createdAt": created,
        "updatedAt": updated,
        "namespace": node.key[0],
        "inputs": [ref(world.nodes[n].key) for n in ins],
        "outputs": [ref(world.nodes[n].key) for n in outs],
        "location": None,
        "description": None,
        "latestRun": latest_run(world, node),
        "mlledger": {"kind": node.kind, "runs": len(node.rows)},
    }
