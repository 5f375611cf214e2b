"""The walks of the lineage questions, written once over a ``GraphReader``.

A reader answers two things about a lineage graph: the nodes of given ids, and the
edges into or out of given nodes (optionally as the graph stood at a past time). The
embedded graph (``lineage.graph.MemoryReader``, networkx) and the Neo4j projection
(``lineage.neo4j.Neo4jReader``, Cypher) both implement it; every walk below asks a
reader one frontier at a time, so the two give the same answers by construction.

Before it walks, a walk tells the reader what it will ask (``prefetch``: the nodes
within so many hops of its roots, one way or both, and their edges). The embedded
graph has nothing to do; the Neo4j reader fetches that neighbourhood in one query
(a breadth-first expansion inside the server) and answers the walk's questions from
it, so a question costs a few round trips to Neo4j whatever its depth.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Literal, NamedTuple, Protocol

Direction = Literal["upstream", "downstream", "both"]
Side = Literal["in", "out"]

# Edges a training-data question follows upstream: data flowing into a model.
TRAINING_EDGES = frozenset({"input", "output", "derived"})
# Of those, the edges that are a step of data flow, counted by a depth (docs/concepts.md,
# "Depth"): a run reading data or a model, and a derivation. A run's output is none.
STEP_EDGES = frozenset({"input", "derived"})
# The sides of a node's edges a walk in a direction follows.
_SIDES: dict[Direction, tuple[Side, ...]] = {
    "upstream": ("in",),
    "downstream": ("out",),
    "both": ("in", "out"),
}


class Node(NamedTuple):
    """A node of the lineage graph."""

    id: str
    kind: str
    project: str
    label: str | None
    created_at: str


class Edge(NamedTuple):
    """An edge of the lineage graph, pointing downstream; ``opened`` is the log position
    that opened it (with ``kind``, what tells two edges between the same nodes apart)."""

    src: str
    dst: str
    kind: str
    opened: int
    valid_from: str
    valid_to: str | None


class GraphReader(Protocol):
    """What the walks ask of a lineage graph. ``when`` (a stored timestamp, or None for
    the whole graph) views the graph as it stood then: nodes created by then, edges
    valid then, and an edge only between two such nodes."""

    def nodes(self, ids: Collection[str], when: str | None = None) -> dict[str, Node]:
        """The nodes among ``ids`` that the graph holds (at ``when``)."""
        ...

    def edges(
        self,
        ids: Collection[str],
        side: Side,
        when: str | None = None,
        kinds: frozenset[str] | None = None,
    ) -> list[Edge]:
        """The edges into (``in``) or out of (``out``) the nodes ``ids`` (at ``when``);
        with ``kinds``, only edges of those kinds."""
        ...

    def prefetch(
        self,
        roots: Collection[str],
        sides: tuple[Side, ...],
        hops: int | None,
        when: str | None = None,
        kinds: frozenset[str] | None = None,
    ) -> None:
        """Say what a walk from ``roots`` is about to ask: the edges on ``sides`` (``in``
        walks upstream, ``out`` downstream, both either way at each hop) of kind in
        ``kinds`` (None: any) valid at ``when``, of every node fewer than ``hops`` such
        edges away (None: any number), and the nodes at their ends. Changes no answer;
        a reader may fetch them at once to answer the walk without more round trips."""
        ...


def training_depths(reader: GraphReader, model: str) -> dict[str, int]:
    """Every node upstream of ``model`` over training edges (the runs, the dataset and
    model versions they read, what those were derived from or produced by), with its
    depth: the fewest steps of data flow between it and the model, a step being a run
    that read data (an ``input`` edge) or a derivation (``derived``). The model is at
    depth 0, the versions its training run read at 1 (``direct``), what those came
    from at 2, and so on; docs/concepts.md defines it ("Depth")."""
    reader.prefetch([model], ("in",), None, kinds=TRAINING_EDGES)
    depth = {model: 0}
    level, frontier = 0, {model}
    while frontier:
        # Within a level, steps of 0 (a run's output) are followed until none is new;
        # steps of 1 make the next level.
        following: set[str] = set()
        current = set(frontier)
        while current:
            reached: set[str] = set()
            for edge in reader.edges(current, "in", kinds=TRAINING_EDGES):
                if edge.src in depth:
                    continue
                if edge.kind in STEP_EDGES:
                    following.add(edge.src)
                else:
                    depth[edge.src] = level
                    reached.add(edge.src)
            current = reached
        following -= depth.keys()
        level += 1
        for node in following:
            depth[node] = level
        frontier = following
    return depth


def descendants(reader: GraphReader, roots: Iterable[str]) -> set[str]:
    """Every node reachable downstream of ``roots`` over any edge, ever valid or not;
    the roots themselves left out (a parent run is no consequence of its child's data)."""
    starts = set(roots)
    reader.prefetch(starts, ("out",), None)
    found: set[str] = set()
    frontier = set(starts)
    while frontier:
        frontier = {e.dst for e in reader.edges(frontier, "out")} - found
        found |= frontier
    return found - starts


def walk(
    reader: GraphReader,
    root: str,
    direction: Direction,
    depth: int,
    when: str | None,
    projects: frozenset[str] | None = None,
) -> tuple[dict[str, Node], dict[str, int], set[str]]:
    """Breadth-first from ``root`` to ``depth`` hops in ``direction`` at ``when``: the
    nodes reached with their distance, and the nodes of projects outside ``projects``
    (None: every project), which the walk does not go through."""
    sides = _SIDES[direction]
    if depth > 0:
        reader.prefetch([root], sides, depth, when)
    found = reader.nodes([root], when)
    seen = {root: 0}
    hidden: set[str] = set()
    frontier = [root] if root in found else []
    hop = 0
    while frontier and hop < depth:
        hop += 1
        neighbours: set[str] = set()
        if direction in ("upstream", "both"):
            neighbours |= {e.src for e in reader.edges(frontier, "in", when)}
        if direction in ("downstream", "both"):
            neighbours |= {e.dst for e in reader.edges(frontier, "out", when)}
        fresh = sorted(neighbours - seen.keys() - hidden)
        found.update(reader.nodes(fresh, when))
        frontier = []
        for node in fresh:
            if projects is not None and found[node].project not in projects:
                hidden.add(node)
                continue
            seen[node] = hop
            frontier.append(node)
    return {n: found[n] for n in seen}, seen, hidden


def edges_among(reader: GraphReader, nodes: Collection[str], when: str | None) -> list[Edge]:
    """The edges between ``nodes`` (at ``when``), in a stable order."""
    inside = set(nodes)
    edges = [e for e in reader.edges(inside, "out", when) if e.dst in inside]
    return sorted(edges, key=lambda e: (e.src, e.dst, e.kind, e.valid_from, e.opened))


def canonical_form(nodes: Iterable[Node], edges: Iterable[Edge]) -> dict[str, Any]:
    """A graph as canonical JSON values: nodes and edges as lists, sorted; the same
    for the same graph on either backend (``canonical_json`` of it is its digest)."""
    return {
        "nodes": sorted([list(n) for n in nodes]),
        "edges": sorted(([list(e) for e in edges]), key=lambda e: (e[0], e[1], e[2], e[3])),
    }
