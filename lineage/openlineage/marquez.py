"""Marquez's read API over one project: namespaces, jobs, runs and their facets,
datasets and their versions, search, and the feed of OpenLineage events received.

Each answer has the shape Marquez's published OpenAPI document (v1) gives it, built
from the read model of ``lineage.openlineage.readmodel``: the project's catalogue
grouped into Marquez's nodes (datasets and jobs, in their OpenLineage namespaces;
native dataset, model, run and deployment names in the project's namespace). What
Marquez does not have is kept out of its members or added beside them (``mlledger``).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from lineage.openlineage import naming
from lineage.openlineage.cache import FeedEntry, cache_of, head
from lineage.openlineage.facets import (
    RunFacets,
    fields_of,
    restored,
    tag_names,
    tags_of,
    with_facets,
)
from lineage.openlineage.readmodel import (
    GroupNode,
    NodeType,
    ProjectGraph,
    dataset_data,
    job_data,
    job_version,
    marquez_id,
    ref,
    run_data,
)
from registry.canonical import loads
from registry.errors import FieldError, InvalidNodeId, NotFound
from registry.ids import check_name
from registry.store.raw import Raw
from registry.timeutil import to_timestamp

if TYPE_CHECKING:
    from registry.ledger import Ledger

#: How many of a job's newest runs ``latestRuns`` lists (as Marquez does).
LATEST_RUNS = 10


def project_graph(ledger: Ledger, project: str) -> ProjectGraph:
    """The read model of ``project``: its catalogue grouped into Marquez's nodes, as of
    the log's head (kept while the head does not move: ``lineage.openlineage.cache``)."""
    return _Snapshot(ledger, project).world


class _Snapshot:
    """What one question reads: the project's read model as of the log's head when
    asked, and the dataset facets as of that head (or later)."""

    def __init__(self, ledger: Ledger, project: str):
        check_name(project, "project")
        self.ledger, self.project = ledger, project
        self.kept = cache_of(ledger, project)
        with ledger.store.read() as conn:
            self.head = head(conn)
            self.world = self.kept.graph(ledger, conn, self.head)

    def facets(self) -> Mapping[str, dict[str, Any]]:
        """Dataset version id -> the facets its events carried (``dataset_facets``)."""
        with self.ledger.store.read() as conn:
            return self.kept.dataset_facets(conn, self.head)


def _page(items: Sequence[Any], limit: int, offset: int) -> list[Any]:
    return list(items[offset : offset + limit])


def _by_namespace(world: ProjectGraph) -> dict[tuple[NodeType, str], list[GroupNode]]:
    found: dict[tuple[NodeType, str], list[GroupNode]] = {}
    for node in world.nodes.values():
        found.setdefault((node.type, node.key[0]), []).append(node)
    for nodes in found.values():
        nodes.sort(key=lambda n: n.key[1])
    return found


def _in_namespace(world: ProjectGraph, node_type: NodeType, namespace: str) -> list[GroupNode]:
    """The datasets or jobs of ``namespace``, by name."""
    return world.derived("by_namespace", _by_namespace).get((node_type, namespace), [])


# --- namespaces ---------------------------------------------------------------------------


def _namespace_rows(world: ProjectGraph) -> dict[str, list[GroupNode]]:
    found: dict[str, list[GroupNode]] = {}
    for node in world.nodes.values():
        found.setdefault(node.key[0], []).append(node)
    return found


def _namespace(name: str, nodes: list[GroupNode]) -> dict[str, Any]:
    created = [_created(node) for node in nodes]
    updated = [_updated(node) for node in nodes]
    return {
        "name": name,
        "createdAt": min(created),
        "updatedAt": max(updated),
        # Marquez's owner of a namespace made by events.
        "ownerName": "anonymous",
        "description": None,
        "isHidden": False,
    }


def _created(node: GroupNode) -> str:
    first = node.rows[0]
    return str(first.get("at") or first.get("started") or first.get("created"))


def _updated(node: GroupNode) -> str:
    times = [
        r.get("at") or r.get("ended") or r.get("started") or r.get("updated") for r in node.rows
    ]
    return str(max(t for t in times if t))


def _namespace_list(world: ProjectGraph) -> dict[str, dict[str, Any]]:
    found = _namespace_rows(world)
    return {name: _namespace(name, found[name]) for name in sorted(found)}


def namespaces(ledger: Ledger, project: str, *, limit: int, offset: int) -> dict[str, Any]:
    """Every namespace with a dataset or job of the project, by name."""
    world = project_graph(ledger, project)
    listed = list(world.derived("namespaces", _namespace_list).values())
    page = [dict(n) for n in _page(listed, limit, offset)]
    return {"namespaces": page, "totalCount": len(listed)}


def namespace(ledger: Ledger, project: str, name: str) -> dict[str, Any]:
    world = project_graph(ledger, project)
    found = world.derived("namespaces", _namespace_list).get(name)
    if found is None:
        raise NotFound(f"no namespace {name!r} in project {project!r}")
    return dict(found)


# --- jobs and runs ------------------------------------------------------------------------


def _job_node(world: ProjectGraph, namespace: str, name: str) -> GroupNode:
    node = world.nodes.get(marquez_id("JOB", (namespace, name)))
    if node is None:
        raise NotFound(f"no job {name!r} in namespace {namespace!r}")
    return node


def _runs_newest_first(node: GroupNode) -> list[dict[str, Any]]:
    return list(reversed(node.rows))


def _run_facets(ledger: Ledger, project: str, runs: Sequence[str]) -> RunFacets:
    with ledger.store.read() as conn:
        return RunFacets.read(Raw(conn), project, runs)


def _fill(answer: dict[str, Any], facets: RunFacets, run: str) -> dict[str, Any]:
    """``answer``, the Marquez Run of ``run``, with the facets its events carried."""
    answer["facets"] = facets.run_facets(run)
    return answer


def _job(world: ProjectGraph, node: GroupNode, facets: RunFacets) -> dict[str, Any]:
    ins, outs = world.neighbours(node.id)
    data = job_data(world, node, ins, outs)
    newest = _runs_newest_first(node)[:LATEST_RUNS]
    data["latestRun"] = _fill(data["latestRun"], facets, node.rows[-1]["id"])
    data["latestRuns"] = [_fill(run_data(world, node, row), facets, row["id"]) for row in newest]
    data["facets"] = facets.job_facets(node.rows[-1]["id"]) if node.kind == "job" else {}
    data["tags"] = tags_of(data["facets"])
    data["currentVersion"] = job_version(world, node, node.rows[-1])
    return data


def jobs(
    ledger: Ledger, project: str, namespace: str, *, limit: int, offset: int
) -> dict[str, Any]:
    """The jobs of ``namespace``, by name."""
    world = project_graph(ledger, project)
    nodes = _in_namespace(world, "JOB", namespace)
    page = _page(nodes, limit, offset)
    facets = _run_facets(ledger, project, _latest_runs(page))
    return {"jobs": [_job(world, n, facets) for n in page], "totalCount": len(nodes)}


def _latest_runs(nodes: Iterable[GroupNode]) -> list[str]:
    return [
        row["id"]
        for node in nodes
        if node.kind == "job"
        for row in _runs_newest_first(node)[:LATEST_RUNS]
    ]


def job(ledger: Ledger, project: str, namespace: str, name: str) -> dict[str, Any]:
    world = project_graph(ledger, project)
    node = _job_node(world, namespace, name)
    return _job(world, node, _run_facets(ledger, project, _latest_runs([node])))


def job_runs(
    ledger: Ledger, project: str, namespace: str, name: str, *, limit: int, offset: int
) -> dict[str, Any]:
    """The runs of a job, newest first."""
    world = project_graph(ledger, project)
    node = _job_node(world, namespace, name)
    rows = _page(_runs_newest_first(node), limit, offset)
    facets = _run_facets(ledger, project, [r["id"] for r in rows if node.kind == "job"])
    return {
        "runs": [_fill(run_data(world, node, row), facets, row["id"]) for row in rows],
        "totalCount": len(node.rows),
    }


def _versions_of(world: ProjectGraph, node: GroupNode) -> dict[str, list[dict[str, Any]]]:
    """A job's versions (newest first, by their latest run) with their runs, oldest
    first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in node.rows:
        version = job_version(world, node, row)
        if version is not None:
            found.setdefault(version, []).append(row)
    order = {id(row): i for i, row in enumerate(node.rows)}
    return dict(sorted(found.items(), key=lambda kv: order[id(kv[1][-1])], reverse=True))


def _job_version(
    world: ProjectGraph,
    node: GroupNode,
    version: str,
    rows: list[dict[str, Any]],
    facets: RunFacets,
) -> dict[str, Any]:
    """Marquez's JobVersion: the datasets its runs read and wrote, its code's location,
    its latest run and the job facets that run's events carried."""
    latest = rows[-1]
    io = world.run_io.get(latest["id"], {})
    code = latest.get("code") or {}
    location = code.get("url") or code.get("repo_url")
    return {
        "id": {"namespace": node.key[0], "name": node.key[1], "version": version},
        "name": node.key[1],
        "version": version,
        "createdAt": rows[0]["started"],
        "updatedAt": latest["ended"] or latest["started"],
        "namespace": node.key[0],
        "type": "BATCH",
        "inputs": sorted(
            (ref(world.nodes[world.of[v]].key) for v in io.get("in", []) if v in world.of),
            key=lambda r: (r["namespace"], r["name"]),
        ),
        "outputs": sorted(
            (ref(world.nodes[world.of[v]].key) for v in io.get("out", []) if v in world.of),
            key=lambda r: (r["namespace"], r["name"]),
        ),
        "location": location if isinstance(location, str) else None,
        "description": None,
        "latestRun": _fill(run_data(world, node, latest), facets, latest["id"]),
        "facets": facets.job_facets(latest["id"]),
        "mlledger": {"runs": len(rows)},
    }


def job_versions(
    ledger: Ledger, project: str, namespace: str, name: str, *, limit: int, offset: int
) -> dict[str, Any]:
    """The versions of a job, newest first (by their latest run)."""
    world = project_graph(ledger, project)
    node = _job_node(world, namespace, name)
    versions = list(_versions_of(world, node).items())
    page = _page(versions, limit, offset)
    facets = _run_facets(ledger, project, [rows[-1]["id"] for _, rows in page])
    return {
        "versions": [_job_version(world, node, v, rows, facets) for v, rows in page],
        "totalCount": len(versions),
    }


def job_version_of(
    ledger: Ledger, project: str, namespace: str, name: str, version: str
) -> dict[str, Any]:
    world = project_graph(ledger, project)
    node = _job_node(world, namespace, name)
    rows = _versions_of(world, node).get(version.lower())
    if rows is None:
        raise NotFound(f"no version {version!r} of job {name!r} in namespace {namespace!r}")
    facets = _run_facets(ledger, project, [rows[-1]["id"]])
    return _job_version(world, node, version.lower(), rows, facets)


def _run_uuids(world: ProjectGraph) -> dict[str, tuple[GroupNode, dict[str, Any]]]:
    """Each run's Marquez id -> its job and row (the first, where two share one)."""
    found: dict[str, tuple[GroupNode, dict[str, Any]]] = {}
    for node in world.nodes.values():
        if node.type != "JOB":
            continue
        for row in node.rows:
            if node.kind == "deployment":
                found.setdefault(naming.deployment_run(row["id"], row["position"]), (node, row))
            else:
                found.setdefault(naming.uuid_of(row["id"]), (node, row))
    return found


def _find_run(world: ProjectGraph, run_uuid: str) -> tuple[GroupNode, dict[str, Any]]:
    found = world.derived("run_uuids", _run_uuids).get(run_uuid.lower())
    if found is None:
        raise NotFound(f"no run {run_uuid!r} in this project")
    return found


def _job_rows(world: ProjectGraph) -> dict[str, tuple[GroupNode, dict[str, Any]]]:
    """Each run of a job (not a deployment's change) -> its job and row."""
    return {r["id"]: (n, r) for n in world.nodes.values() if n.kind == "job" for r in n.rows}


def _producers(world: ProjectGraph) -> dict[str, Any]:
    """Each dataset version -> the run that wrote it (None: none known)."""
    return {
        r["id"]: r.get("produced_by")
        for n in world.nodes.values()
        if n.type == "DATASET"
        for r in n.rows
    }


def run_upstream(ledger: Ledger, project: str, run_uuid: str, depth: int = 20) -> dict[str, Any]:
    """Marquez's UpstreamRunLineage: the run, then the runs that wrote what it read,
    then theirs, up to ``depth`` levels, each once, nearest first; each with its job
    (and version), its times and state, and the dataset versions it read."""
    world = project_graph(ledger, project)
    _, found = _find_run(world, run_uuid)
    rows = world.derived("job_rows", _job_rows)
    produced = world.derived("producers", _producers)
    runs: list[dict[str, Any]] = []
    seen: set[str] = set()
    level = [found["id"]]  # a deployment's change has no upstream runs: none listed
    for _ in range(depth + 1):
        following: list[str] = []
        for run_id in level:
            if run_id in seen or run_id not in rows:
                continue
            seen.add(run_id)
            node, row = rows[run_id]
            inputs = []
            for version in sorted(world.run_io.get(run_id, {}).get("in", [])):
                if version not in world.versions:
                    continue
                namespace, name, label = world.versions[version]
                producer = produced.get(version)
                known = producer if producer in rows else None
                inputs.append(
                    {
                        "namespace": namespace,
                        "name": name,
                        "version": label,
                        "producedByRunId": None if known is None else naming.uuid_of(known),
                    }
                )
                if known is not None:
                    following.append(known)
            data = run_data(world, node, row)
            runs.append(
                {
                    "job": data["jobVersion"],
                    "run": {
                        "id": data["id"],
                        "start": data["startedAt"],
                        "end": data["endedAt"],
                        "status": data["state"],
                    },
                    "inputs": inputs,
                }
            )
        level = following
    return {"runs": runs}


def run(ledger: Ledger, project: str, run_uuid: str) -> dict[str, Any]:
    world = project_graph(ledger, project)
    node, row = _find_run(world, run_uuid)
    facets = _run_facets(ledger, project, [row["id"]] if node.kind == "job" else [])
    return _fill(run_data(world, node, row), facets, row["id"])


def run_facets(
    ledger: Ledger, project: str, run_uuid: str, kind: Literal["run", "job"]
) -> dict[str, Any]:
    """The run's (or its job's) facets, merged over the OpenLineage events of the run
    in the order received (a later event's facet of the same name wins)."""
    world = project_graph(ledger, project)
    node, row = _find_run(world, run_uuid)
    facets = _run_facets(ledger, project, [row["id"]] if node.kind == "job" else [])
    merged = facets.run_facets(row["id"]) if kind == "run" else facets.job_facets(row["id"])
    return {"runId": run_uuid.lower(), "facets": merged}


# --- datasets and their versions ---------------------------------------------------------


def _dataset_node(world: ProjectGraph, namespace: str, name: str) -> GroupNode:
    node = world.nodes.get(marquez_id("DATASET", (namespace, name)))
    if node is None:
        raise NotFound(f"no dataset {name!r} in namespace {namespace!r}")
    return node


def _dataset(node: GroupNode, facets: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Marquez's Dataset: the facets, fields and description of its latest version."""
    data = with_facets(dataset_data(node), facets.get(node.rows[-1]["id"], {}))
    data["deleted"] = False
    return data


def datasets(
    ledger: Ledger, project: str, namespace: str, *, limit: int, offset: int
) -> dict[str, Any]:
    """The datasets of ``namespace``, by name (model versions as ``model/<name>``)."""
    read = _Snapshot(ledger, project)
    nodes = _in_namespace(read.world, "DATASET", namespace)
    page = _page(nodes, limit, offset)
    facets = read.facets()
    return {"datasets": [_dataset(n, facets) for n in page], "totalCount": len(nodes)}


def dataset(ledger: Ledger, project: str, namespace: str, name: str) -> dict[str, Any]:
    read = _Snapshot(ledger, project)
    node = _dataset_node(read.world, namespace, name)
    return _dataset(node, read.facets())


def _dataset_version(
    world: ProjectGraph,
    node: GroupNode,
    row: dict[str, Any],
    facets: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """Marquez's DatasetVersion: the version's own facets, fields and description; as in
    Marquez, the tags of the dataset (its latest version's), its fields' of its own."""
    namespace, name = node.key
    created_by = None
    producer = row.get("produced_by")
    if producer and producer in world.of:
        job_node = world.nodes[world.of[producer]]
        runs = [r for r in job_node.rows if r["id"] == producer]
        if runs and job_node.kind == "job":
            created_by = run_data(world, job_node, runs[0])
    answer = {
        "id": {"namespace": namespace, "name": name, "version": row["version"]},
        "type": "DB_TABLE",
        "name": name,
        "physicalName": name,
        "createdAt": row["at"],
        "version": row["version"],
        "namespace": namespace,
        "sourceName": namespace,
        "fields": [
            {"name": field, "type": kind, "tags": [], "description": None}
            for field, kind in (row["schema"] or {}).items()
        ],
        "tags": [],
        "lifecycleState": None,
        "description": None,
        "createdByRunUuid": None if created_by is None else created_by["id"],
        "createdByRun": created_by,
        "facets": {},
        "mlledger": {"id": row["id"], "kind": node.kind},
    }
    answer = with_facets(answer, facets.get(row["id"], {}))
    answer["tags"] = tags_of(facets.get(node.rows[-1]["id"], {}))
    return answer


def dataset_versions(
    ledger: Ledger, project: str, namespace: str, name: str, *, limit: int, offset: int
) -> dict[str, Any]:
    """The versions of a dataset, newest first."""
    read = _Snapshot(ledger, project)
    world = read.world
    node = _dataset_node(world, namespace, name)
    rows = _page(list(reversed(node.rows)), limit, offset)
    facets = read.facets()
    return {
        "versions": [_dataset_version(world, node, row, facets) for row in rows],
        "totalCount": len(node.rows),
    }


def dataset_version(
    ledger: Ledger, project: str, namespace: str, name: str, version: str
) -> dict[str, Any]:
    read = _Snapshot(ledger, project)
    node = _dataset_node(read.world, namespace, name)
    for row in node.rows:
        if row["version"] == version:
            return _dataset_version(read.world, node, row, read.facets())
    raise NotFound(f"no version {version!r} of dataset {name!r} in namespace {namespace!r}")


# --- sources ---------------------------------------------------------------------------------


def _sources(ledger: Ledger, project: str) -> dict[str, dict[str, Any]]:
    """Marquez's Sources: each ``dataSource`` facet a dataset of the project came with,
    by name (the latest ``uri`` sent for it), with the first and latest times of the
    versions that named it."""
    read = _Snapshot(ledger, project)
    world, facets = read.world, read.facets()
    found: dict[str, dict[str, Any]] = {}
    for node in world.nodes.values():
        for row in node.rows:
            source = facets.get(row["id"], {}).get("dataSource")
            if not isinstance(source, dict):
                continue
            name, uri = source.get("name"), source.get("uri")
            if not isinstance(name, str) or not name:
                continue
            uri = uri if isinstance(uri, str) else None
            at = str(row.get("at") or "")
            entry = found.setdefault(
                name,
                {
                    "type": None,
                    "name": name,
                    "createdAt": at,
                    "updatedAt": at,
                    "connectionUrl": uri,
                    "description": None,
                },
            )
            entry["createdAt"], entry["updatedAt"] = (
                min(entry["createdAt"], at),
                max(entry["updatedAt"], at),
            )
            if uri:
                entry["connectionUrl"] = uri
                scheme = uri.split(":", 1)[0] if ":" in uri else ""
                entry["type"] = scheme.upper() or None
    return dict(sorted(found.items()))


def sources(ledger: Ledger, project: str, *, limit: int, offset: int) -> dict[str, Any]:
    """Every data source the project's datasets named, by name."""
    listed = list(_sources(ledger, project).values())
    return {"sources": _page(listed, limit, offset), "totalCount": len(listed)}


def source(ledger: Ledger, project: str, name: str) -> dict[str, Any]:
    found = _sources(ledger, project).get(name)
    if found is None:
        raise NotFound(f"no source {name!r} in project {project!r}")
    return found


# --- tags ------------------------------------------------------------------------------------


def _tag_facets(type_: str, event: dict[str, Any]) -> list[Any]:
    """The ``tags`` facets a stored ``openlineage-*-event`` body carries: its run's, its
    job's, its dataset's, and those of each dataset it read or wrote (their input and
    output facets too, which a dataset's facets show)."""
    job = event.get("job")
    found: list[Any] = [
        event.get("run_facets"),
        job.get("facets") if isinstance(job, dict) else None,
    ]
    if type_ == "openlineage-dataset-event":
        found.append(event.get("facets"))
    for side, extra in (("inputs", "input_facets"), ("outputs", "output_facets")):
        for dataset in event.get(side) or []:
            if isinstance(dataset, dict):
                found += [dataset.get("facets"), dataset.get(extra)]
    return [f.get("tags") for f in found if isinstance(f, dict)]


def _tag_names(type_: str, event: dict[str, Any]) -> set[str]:
    """Every tag name a stored ``openlineage-*-event`` body's ``tags`` facets name."""
    names: set[str] = set()
    for facet in _tag_facets(type_, event):
        names |= tag_names(facet)
    return names


def tags(ledger: Ledger, project: str, *, limit: int, offset: int) -> dict[str, Any]:
    """Marquez's TagList: every tag the project's OpenLineage events named (its ``tags``
    run, job and dataset facets, a field's tags included), by name, with
    ``totalCount``."""
    check_name(project, "project")
    kept = cache_of(ledger, project)
    with ledger.store.read() as conn:
        names = kept.tags(conn, head(conn), _tag_names)
    listed = [{"name": name, "description": None} for name in sorted(names)]
    return {"tags": _page(listed, limit, offset), "totalCount": len(listed)}


# --- search --------------------------------------------------------------------------------


class _Like:
    """Marquez's search pattern: anywhere in the name, case-insensitive, ``%`` any run
    of characters, ``_`` any one character. Matched in linear passes: the pieces
    between ``%`` found one after another, each at its first place (no pattern of
    ``%`` can make it backtrack)."""

    def __init__(self, q: str) -> None:
        self.pieces = [
            re.compile("".join("." if c == "_" else re.escape(c) for c in piece), re.I | re.S)
            for piece in q.split("%")
            if piece
        ]

    def search(self, name: str) -> bool:
        at = 0
        for piece in self.pieces:
            found = piece.search(name, at)
            if found is None:
                return False
            at = found.end()
        return True


def _day(text: str | None, field: str) -> str | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise FieldError(field, f"{text!r} is not a date: expected YYYY-MM-DD") from None


def search(
    ledger: Ledger,
    project: str,
    q: str,
    *,
    filter: str | None = None,
    sort: str = "name",
    limit: int = 10,
    namespace: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """Datasets and jobs whose name matches ``q``, as Marquez's ``/search`` answers."""
    kinds = {"dataset": ("DATASET",), "job": ("JOB",), None: ("DATASET", "JOB")}
    wanted = kinds.get(filter.lower() if filter else None)
    if wanted is None:
        raise FieldError("filter", f"filter {filter!r} is not one of: dataset, job")
    if sort.lower() not in ("name", "updated_at", "update_at"):
        raise FieldError("sort", f"sort {sort!r} is not one of: name, updated_at")
    until, since = _day(before, "before"), _day(after, "after")
    pattern = _Like(q)
    world = project_graph(ledger, project)
    results = []
    for node in world.nodes.values():
        if node.type not in wanted or not pattern.search(node.key[1]):
            continue
        if namespace is not None and node.key[0] != namespace:
            continue
        updated = _updated(node)
        if (until and updated[:10] >= until) or (since and updated[:10] <= since):
            continue
        results.append(
            {
                "type": node.type,
                "name": node.key[1],
                "updatedAt": updated,
                "namespace": node.key[0],
                "nodeId": node.id,
            }
        )
    if sort.lower() == "name":
        results.sort(key=lambda r: (r["name"], r["namespace"], r["type"]))
    else:
        results.sort(key=lambda r: (r["updatedAt"], r["nodeId"]), reverse=True)
    results = results[:limit]
    return {"totalCount": len(results), "results": results}


# --- the feed of events received -----------------------------------------------------------


def _as_received(type_: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    """The OpenLineage event a stored ``openlineage-*-event`` keeps, as received
    (less what was redacted; numbers stringified stay strings)."""

    def datasets(side: str, theirs: str, ours: str) -> list[dict[str, Any]]:
        # Input and output facets are kept as an object, empty when none came: an
        # empty one is left out, as most producers send it.
        return [
            {
                "namespace": d["namespace"],
                "name": d["name"],
                "facets": d["facets"],
                **({theirs: d[ours]} if d[ours] else {}),
            }
            for d in body.get(side, [])
        ]

    common = {"eventTime": body["event_time"], "producer": body["producer"]}
    if type_ == "openlineage-dataset-event":
        return {
            **common,
            "schemaURL": body["schema_url"],
            "dataset": {
                "namespace": body["namespace"],
                "name": body["name"],
                "facets": body["facets"],
            },
        }
    document = {
        **common,
        "schemaURL": body["schema_url"],
        "job": body["job"],
        "inputs": datasets("inputs", "inputFacets", "input_facets"),
        "outputs": datasets("outputs", "outputFacets", "output_facets"),
    }
    if type_ == "openlineage-run-event":
        document = {
            "eventType": body.get("event_type"),
            **document,
            "run": {"runId": naming.uuid_of(entity), "facets": body["run_facets"]},
        }
    return document


def lineage_events(
    ledger: Ledger,
    project: str,
    *,
    before: str | None = None,
    after: str | None = None,
    sort_direction: str = "desc",
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """The OpenLineage events the project received, by ``eventTime`` (newest first
    unless ``sort_direction`` is ``asc``), within ``after`` and ``before``."""
    if sort_direction.lower() not in ("asc", "desc"):
        raise FieldError("sortDirection", f"{sort_direction!r} is not one of: asc, desc")
    until = to_timestamp(before, "before") if before else None
    since = to_timestamp(after, "after") if after else None
    check_name(project, "project")
    kept = cache_of(ledger, project)
    with ledger.store.read() as conn:
        entries = kept.feed(conn, head(conn))
        # The feed is sorted by (eventTime, position): the window by bisection.
        low = bisect.bisect_left(entries, since, key=_moment) if since else 0
        high = bisect.bisect_right(entries, until, key=_moment) if until else len(entries)
        if sort_direction.lower() == "desc":
            chosen = entries[max(low, high - offset - limit) : max(low, high - offset)][::-1]
        else:
            chosen = entries[min(high, low + offset) : min(high, low + offset + limit)]
        documents = _received(Raw(conn), [position for _, position in chosen])
    return {
        "events": [documents[position] for _, position in chosen],
        "totalCount": max(0, high - low),
    }


def _moment(entry: FeedEntry) -> str:
    return entry[0]


def _received(raw: Raw, positions: list[int]) -> dict[int, dict[str, Any]]:
    """The events at ``positions`` (received ones), as received."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(positions), 500):
        chunk = positions[start : start + 500]
        for position, type_, entity, body in raw.all(
            f"SELECT position, type, entity, body FROM events WHERE position {raw.among(chunk)}",
            raw.among_params(chunk),
        ):
            found[int(position)] = _as_received(type_, entity, restored(loads(body)))
    return found


# --- column lineage -------------------------------------------------------------------------

Field = tuple[str, str, str]  # namespace, dataset name, field name


def _field_id(field: Field) -> str:
    return f"datasetField:{field[0]}:{field[1]}:{field[2]}"


@dataclass
class _ColumnEdge:
    """An output field made from an input field, as the latest event said."""

    output: Field
    input: Field
    description: str | None
    type: str | None


def _transformation(
    column: dict[str, Any], source: dict[str, Any]
) -> tuple[str | None, str | None]:
    """The (description, type) of how an output column was made: the column's own
    (``transformationDescription``/``Type``), else the input field's first
    ``transformations`` entry."""
    description, kind = column.get("transformationDescription"), column.get("transformationType")
    steps = source.get("transformations")
    if description is None and kind is None and isinstance(steps, list) and steps:
        first = steps[0] if isinstance(steps[0], dict) else {}
        description, kind = first.get("description"), first.get("type")
    return (
        description if isinstance(description, str) else None,
        kind if isinstance(kind, str) else None,
    )


def _column_edges(
    world: ProjectGraph, facets: Mapping[str, dict[str, Any]]
) -> tuple[dict[tuple[Field, Field], _ColumnEdge], dict[Field, str | None]]:
    """Every column edge the project's events declared (the latest declaration of each
    pair wins), and the type of each field the schema facets name."""
    edges: dict[tuple[Field, Field], _ColumnEdge] = {}
    types: dict[Field, str | None] = {}
    for node in world.nodes.values():
        if node.type != "DATASET":
            continue
        for row in node.rows:  # versions in log order: a later one's declaration wins
            found = facets.get(row["id"], {})
            for described in fields_of(found) or []:
                types[(*node.key, described["name"])] = described["type"]
            lineage = found.get("columnLineage")
            columns = lineage.get("fields") if isinstance(lineage, dict) else None
            if not isinstance(columns, dict):
                continue
            for name, column in columns.items():
                sources = column.get("inputFields") if isinstance(column, dict) else None
                for source in sources if isinstance(sources, list) else []:
                    if not isinstance(source, dict):
                        continue
                    namespace, dataset, field = (
                        source.get("namespace"),
                        source.get("name"),
                        source.get("field"),
                    )
                    if not (
                        isinstance(namespace, str)
                        and isinstance(dataset, str)
                        and isinstance(field, str)
                    ):
                        continue
                    output: Field = (node.key[0], node.key[1], name)
                    used: Field = (namespace, dataset, field)
                    edges[(output, used)] = _ColumnEdge(
                        output, used, *_transformation(column, source)
                    )
    return edges, types


@dataclass
class _Columns:
    """The project's column edges, indexed, for the facets they were read from."""

    facets: Mapping[str, dict[str, Any]]
    edges: dict[tuple[Field, Field], _ColumnEdge]
    types: dict[Field, str | None]
    known: set[Field]
    by_dataset: dict[tuple[str, str], set[Field]]
    by_output: dict[Field, list[_ColumnEdge]]
    by_input: dict[Field, list[_ColumnEdge]]


def _columns(world: ProjectGraph, facets: Mapping[str, dict[str, Any]]) -> _Columns:
    """The column edges of ``world`` with ``facets``, worked out once for each facets
    map the cache hands out."""
    kept: list[_Columns | None] = world.derived("columns", lambda _: [None])
    if kept[0] is not None and kept[0].facets is facets:
        return kept[0]
    edges, types = _column_edges(world, facets)
    known = set(types) | {f for pair in edges for f in pair}
    by_dataset: dict[tuple[str, str], set[Field]] = {}
    for known_field in known:
        by_dataset.setdefault((known_field[0], known_field[1]), set()).add(known_field)
    by_output: dict[Field, list[_ColumnEdge]] = {}
    by_input: dict[Field, list[_ColumnEdge]] = {}
    for edge in edges.values():
        by_output.setdefault(edge.output, []).append(edge)
        by_input.setdefault(edge.input, []).append(edge)
    columns = _Columns(facets, edges, types, known, by_dataset, by_output, by_input)
    kept[0] = columns
    return columns


def _start_fields(world: ProjectGraph, node_id: str, columns: _Columns) -> set[Field]:
    """The fields ``node_id`` names: a dataset's, one field, or those of the datasets a
    job wrote."""
    prefix, _, rest = node_id.partition(":")
    known = columns.known
    if prefix == "datasetField":
        return {
            (rest[:i], name, field)
            for i, char in enumerate(rest)
            if char == ":"
            for name, _, field in [rest[i + 1 :].rpartition(":")]
            if name and (rest[:i], name, field) in known
        }
    if prefix not in ("dataset", "job"):
        raise InvalidNodeId(
            f"node id {node_id!r} is not a Marquez node id: expected "
            "'dataset:<namespace>:<name>', 'datasetField:<namespace>:<name>:<field>' or "
            "'job:<namespace>:<name>'"
        )
    node = world.find("DATASET" if prefix == "dataset" else "JOB", rest)
    if node is None:
        return set()
    if node.type == "DATASET":
        datasets = {node.key}
    else:
        datasets = {world.nodes[d].key for d in world.neighbours(node.id)[1]}
    return {field for key in datasets for field in columns.by_dataset.get(key, ())}


def column_lineage(
    ledger: Ledger, project: str, node_id: str, depth: int = 20, with_downstream: bool = False
) -> dict[str, Any]:
    """The column lineage around a dataset, a dataset field or a job, as Marquez's
    ``GET /api/v1/column-lineage`` answers it: the fields the start's fields were made
    from, up to ``depth`` edges upstream (and downstream, ``with_downstream``)."""
    read = _Snapshot(ledger, project)
    world = read.world
    columns = _columns(world, read.facets())
    edges, types, by_output, by_input = (
        columns.edges,
        columns.types,
        columns.by_output,
        columns.by_input,
    )
    start = _start_fields(world, node_id, columns)
    if not start:
        raise NotFound(f"no dataset, field or job {node_id!r} with column lineage in this project")
    # Edges one hop at a time: upstream from what each edge was made of, downstream
    # (when asked) to what each output went into.
    taken: set[tuple[Field, Field]] = set()
    frontier = [e for f in sorted(start) for e in by_output.get(f, [])]
    for _ in range(depth):
        fresh = [e for e in frontier if (e.output, e.input) not in taken]
        if not fresh:
            break
        taken.update((e.output, e.input) for e in fresh)
        frontier = [n for e in fresh for n in by_output.get(e.input, [])]
        if with_downstream:
            frontier += [n for e in fresh for n in by_input.get(e.output, [])]
    return {"graph": _column_graph([edges[pair] for pair in sorted(taken)], types)}


def _column_graph(
    chosen: list[_ColumnEdge], types: dict[Field, str | None]
) -> list[dict[str, Any]]:
    """Marquez's graph of DATASET_FIELD nodes: an output field lists its input fields;
    as Marquez answers, a node's ``inEdges`` go from it to its inputs and its
    ``outEdges`` from it to what it went into."""
    inputs: dict[Field, list[_ColumnEdge]] = {}
    outputs: dict[Field, list[_ColumnEdge]] = {}
    for edge in chosen:
        inputs.setdefault(edge.output, []).append(edge)
        outputs.setdefault(edge.input, []).append(edge)
    graph = []
    for field in sorted(set(inputs) | set(outputs)):
        made_of = inputs.get(field, [])
        data = {
            "namespace": field[0],
            "dataset": field[1],
            "datasetVersion": None,
            "field": field[2],
            "fieldType": types.get(field),
            "transformationDescription": made_of[0].description if made_of else None,
            "transformationType": made_of[0].type if made_of else None,
            "inputFields": [
                {
                    "namespace": e.input[0],
                    "dataset": e.input[1],
                    "datasetVersion": None,
                    "field": e.input[2],
                    "transformationDescription": e.description,
                    "transformationType": e.type,
                }
                for e in made_of
            ],
        }
        node = _field_id(field)
        graph.append(
            {
                "id": node,
                "type": "DATASET_FIELD",
                "data": data,
                "inEdges": [{"origin": node, "destination": _field_id(e.input)} for e in made_of],
                "outEdges": [
                    {"origin": node, "destination": _field_id(e.output)}
                    for e in outputs.get(field, [])
                ],
            }
        )
    return graph
