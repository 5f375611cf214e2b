"""The lineage graph in memory (networkx), loaded from the persisted projection.

A ``MultiDiGraph`` whose edges point downstream and carry ``kind``,
``valid_from`` and ``valid_to`` (None: still valid). The first query loads the
``lineage_*`` tables; later queries load only what changed since the tracked
position, so a long-lived process stays current at little cost. ``MemoryReader``
is the questions' view of it (``lineage.walks.GraphReader``), as it stands or as it
stood at a time T: nodes created by then, edges valid then.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, select

from lineage.walks import Edge, GraphReader, Node, Side, canonical_form
from registry.ids import kind_of
from registry.lazy import lazy_import
from registry.store.raw import Raw
from registry.store.schema import T

if TYPE_CHECKING:
    import networkx as nx

    from registry.ledger import Ledger
    from registry.store.base import Store
else:
    nx = lazy_import("networkx")  # loaded when first used: not for every command


_GRAPHS: weakref.WeakKeyDictionary[Ledger, LineageGraph] = weakref.WeakKeyDictionary()
_GRAPHS_LOCK = threading.Lock()


def graph_of(ledger: Ledger) -> LineageGraph:
    """The lineage graph cache of ``ledger`` (one per ledger, made on first use and
    dropped by the ledger's rebuild)."""
    graph = _GRAPHS.get(ledger)
    if graph is None:
        with _GRAPHS_LOCK:
            graph = _GRAPHS.get(ledger)
            if graph is None:
                graph = _GRAPHS[ledger] = LineageGraph(ledger.store)
                ledger.rebuilt.append(graph.invalidate)
    return graph


class LineageGraph:
    """A per-process cache of the lineage projection as a networkx graph."""

    def __init__(self, store: Store):
        self.store = store
        self._graph: nx.MultiDiGraph = nx.MultiDiGraph()
        self._position = -1
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget everything; the next ``current()`` reloads from the tables."""
        with self._lock:
            self._graph = nx.MultiDiGraph()
            self._position = -1

    def current(self, conn: Connection | None = None) -> nx.MultiDiGraph:
        """The graph, brought up to the lineage projection's tracking position (read on
        ``conn`` when given, so a question reads one snapshot)."""
        if conn is None:
            with self.store.read() as own:
                return self.current(own)
        with self._lock:
            head = Raw(conn).scalar(
                "SELECT position FROM projection_tracking WHERE name = 'lineage'"
            )
            head = -1 if head is None else int(head)
            if head < self._position:  # projections were rebuilt under us
                self._graph, self._position = nx.MultiDiGraph(), -1
            if head == self._position:
                return self._graph
            since = self._position
            nodes, edges = T["lineage_nodes"], T["lineage_edges"]
            for row in conn.execute(
                select(nodes).where(nodes.c.position > since, nodes.c.position <= head)
            ):
                self._graph.add_node(
                    row.id,
                    kind=row.kind,
                    project=row.project,
                    label=row.label,
                    created_at=row.created_at,
                )
            changed = conn.execute(
                select(edges).where(or_(edges.c.opened_pos > since, edges.c.closed_pos > since))
            )
            for row in changed:
                if row.opened_pos > head:
                    continue
                closed = row.closed_pos is not None and row.closed_pos <= head
                self._graph.add_edge(
                    row.src,
                    row.dst,
                    key=(row.kind, row.opened_pos),
                    kind=row.kind,
                    valid_from=row.valid_from,
                    valid_to=row.valid_to if closed else None,
                )
            self._position = head
            return self._graph


@contextmanager
def reading(ledger: Ledger, conn: Connection) -> Iterator[GraphReader]:
    """The lineage graph the questions walk: the Neo4j graph when the ledger has one
    (brought up to the lineage projection first, so a question sees every write made
    before it; its reads in one transaction, ended on leaving), else the embedded one,
    read on ``conn``."""
    from lineage.neo4j import attached

    graph = attached(ledger)
    if graph is None:
        yield MemoryReader(graph_of(ledger).current(conn))
        return
    reader = graph.reader()
    try:
        graph.catch_up(ledger, conn, reader)
        try:
            yield reader
        except Exception:
            # A drop begun meanwhile can make a walk miss what it was told of: said
            # as the graph being dropped, not as whatever the walk tripped on.
            graph.confirm(reader)
            raise
        graph.confirm(reader)
    finally:
        reader.close()


class MemoryReader:
    """``lineage.walks.GraphReader`` over the networkx graph (``LineageGraph.current``)."""

    def __init__(self, graph: nx.MultiDiGraph):
        self.graph = graph

    def _node_ok(self, node: str, when: str | None) -> bool:
        return when is None or bool(self.graph.nodes[node].get("created_at", "") <= when)

    def nodes(self, ids: Collection[str], when: str | None = None) -> dict[str, Node]:
        found: dict[str, Node] = {}
        # The node table itself, not the node view (the view's lookups cost more than the
        # walk); a node's kind worked out from its id only when the table lacks it.
        table = self.graph._node
        for node in ids:
            data = table.get(node)
            if data is None or (when is not None and not data.get("created_at", "") <= when):
                continue
            found[node] = Node(
                node,
                data["kind"] if "kind" in data else kind_of(node),
                data.get("project", ""),
                data.get("label"),
                data.get("created_at", ""),
            )
        return found

    def edges(
        self,
        ids: Collection[str],
        side: Side,
        when: str | None = None,
        kinds: frozenset[str] | None = None,
    ) -> list[Edge]:
        # Each node once, in the order asked; its edges straight from the adjacency, in
        # the order networkx's edge views give them (``in_edges``, ``out_edges``): the
        # views cost as much as the rest of a large walk.
        present = dict.fromkeys(n for n in ids if n in self.graph and self._node_ok(n, when))
        adjacency = self.graph._pred if side == "in" else self.graph._succ
        edges: list[Edge] = []
        for node in present:
            for other, keyed in adjacency[node].items():
                src, dst = (other, node) if side == "in" else (node, other)
                for key, data in keyed.items():
                    end = data["valid_to"]
                    if kinds is not None and data["kind"] not in kinds:
                        continue
                    if when is not None and not (
                        data["valid_from"] <= when
                        and (end is None or when < end)
                        and self._node_ok(other, when)
                    ):
                        continue
                    edges.append(Edge(src, dst, data["kind"], key[1], data["valid_from"], end))
        return edges

    def prefetch(
        self,
        roots: Collection[str],
        sides: tuple[Side, ...],
        hops: int | None,
        when: str | None = None,
        kinds: frozenset[str] | None = None,
    ) -> None:
        """Nothing to fetch: the whole graph is in memory."""


def canonical(graph: nx.MultiDiGraph) -> dict[str, Any]:
    """The whole networkx graph in ``lineage.walks.canonical_form``."""
    reader = MemoryReader(graph)
    nodes = reader.nodes(list(graph.nodes)).values()
    return canonical_form(nodes, reader.edges(list(graph.nodes), "out"))
