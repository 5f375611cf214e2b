"""The lineage graph in Neo4j: a projection of the log that many processes share.

``Neo4jGraph.sync`` copies the lineage projection (``lineage_nodes``,
``lineage_edges``: what the log's events made of the graph, up to a log position) into
Neo4j, a window of log positions at a time. Each window is one Neo4j transaction that
first locks the tracking node (``(:MlledgerTracking {name: 'lineage'})``) and reads the
position the graph has reached, writes the window's nodes (``UNWIND`` and ``MERGE``) and
the edges it opened (``CREATE``: written only by the transaction that moves the
position past them) and then moves the position, all committed together: a crash
leaves the graph at the end of a window, and two processes syncing at once take the
lock in turn, so each window is written once.

Neo4j holds only the graph: node ids, kinds, projects, labels, creation times, and
edges with their kind, validity and the log position that opened them; and the
tracking node. Records, subjects and predictions stay in the SQL
indexes; no pseudonym and no erasure reference reaches Neo4j, so an erasure has
nothing to purge there.

``Neo4jReader`` answers ``lineage.walks.GraphReader``: a walk's whole neighbourhood in
one Cypher query (``prefetch``), what else it asks one query a call.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, and_, or_, select

from lineage.walks import Edge, Node, Side, canonical_form
from registry.errors import ConfigError, GraphUnavailable
from registry.ids import kind_of
from registry.lazy import lazy_import
from registry.store.raw import Raw
from registry.store.schema import T

if TYPE_CHECKING:
    import neo4j

    from registry.ledger import Ledger
    from registry.settings import Settings
else:
    neo4j = lazy_import("neo4j")

_SCHEMES = ("bolt://", "neo4j://", "bolt+s://", "neo4j+s://", "bolt+ssc://", "neo4j+ssc://")
#: Log positions one sync transaction covers at most (``MLLEDGER_GRAPH_WINDOW``).
WINDOW = 5_000
TRACKING = "lineage"

_SCHEMA = (
    "CREATE CONSTRAINT mlledger_lineage_node IF NOT EXISTS "
    "FOR (n:LineageNode) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT mlledger_tracking IF NOT EXISTS "
    "FOR (t:MlledgerTracking) REQUIRE t.name IS UNIQUE",
)

_POSITION = (
    "OPTIONAL MATCH (t:MlledgerTracking {name: $name}) "
    "RETURN t.position AS position, t.dropping AS dropping"
)
#: Nodes one transaction of a drop deletes at most (a large graph in one transaction
#: would need a heap as large).
DROP_BATCH = 10_000

# Taken first in a sync's transaction: a write lock on the tracking node, held until
# the commit, so two processes syncing at once read the position one after the other
# (the second finds it moved, and writes nothing).
_LOCK = "MERGE (t:MlledgerTracking {name: $name}) SET t.locked = true REMOVE t.locked"

# A window's nodes, the ends its edges need that it does not make, and its new edges,
# in one statement. Nodes are rows [id, kind, project, label, created_at]; ends are
# ids, written as nodes of their id alone when missing (as in the embedded graph);
# edges are rows [src, dst, kind, opened, valid_from, valid_to] whose ends are places
# in the list of nodes then ends, so no edge looks its ends up by id. An edge opened
# in the window is new: the window is written once (see ``_write_window``).
_WRITE = """
UNWIND range(0, size($nodes) - 1) AS i
WITH i, $nodes[i] AS row
MERGE (n:LineageNode {id: row[0]})
SET n.kind = row[1], n.project = row[2], n.label = row[3], n.created_at = row[4]
WITH i, n ORDER BY i
WITH collect(n) AS made
CALL {
  UNWIND range(0, size($ends) - 1) AS j
  WITH j, $ends[j] AS id
  MERGE (m:LineageNode {id: id})
  WITH j, m ORDER BY j
  RETURN collect(m) AS more
}
WITH made + more AS placed
UNWIND $edges AS e
WITH placed[e[0]] AS s, placed[e[1]] AS d, e
CREATE (s)-[:LINEAGE {kind: e[2], opened: e[3], valid_from: e[4], valid_to: e[5]}]->(d)
"""

# An edge opened before the window and closed in it gets its end.
_CLOSE_EDGES = """
UNWIND $edges AS row
MATCH (s:LineageNode) USING INDEX s:LineageNode(id) WHERE s.id = row.src
MATCH (s)-[r:LINEAGE {kind: row.kind, opened: row.opened}]->(d:LineageNode {id: row.dst})
SET r.valid_to = row.valid_to
"""

_DROPPING = (
    "the lineage graph is being dropped for a rebuild (mlledger graph rebuild); "
    "expected it back once the rebuild has synced it: ask again shortly"
)

_MOVE = "MERGE (t:MlledgerTracking {name: $name}) SET t.position = $position"

# Each id is looked up through the uniqueness constraint's index (``USING INDEX``): on a
# small graph the planner would otherwise scan the whole index once per id.
_NODES = """
UNWIND $ids AS id
MATCH (n:LineageNode) USING INDEX n:LineageNode(id)
WHERE n.id = id
RETURN n.id AS id, n.kind AS kind, n.project AS project, n.label AS label,
       n.created_at AS created_at
"""

_EDGES = {
    "in": """
UNWIND $ids AS id
MATCH (s:LineageNode)-[r:LINEAGE]->(d:LineageNode) USING INDEX d:LineageNode(id)
WHERE d.id = id
""",
    "out": """
UNWIND $ids AS id
MATCH (s:LineageNode)-[r:LINEAGE]->(d:LineageNode) USING INDEX s:LineageNode(id)
WHERE s.id = id
""",
}
_EDGES_WHERE = """
AND ($kinds IS NULL OR r.kind IN $kinds)
AND ($when IS NULL OR (
    r.valid_from <= $when AND (r.valid_to IS NULL OR $when < r.valid_to)
    AND coalesce(s.created_at, '') <= $when AND coalesce(d.created_at, '') <= $when))
RETURN s.id AS src, d.id AS dst, r.kind AS kind, r.opened AS opened,
       r.valid_from AS valid_from, r.valid_to AS valid_to
"""


_NO_BOUND = 2**31
_ARROWS = {("in",): ("<-", "-"), ("out",): ("-", "->"), ("in", "out"): ("-", "-")}


def _around_query(sides: tuple[Side, ...], hops: int | None, kinds: bool, when: bool) -> str:
    """The neighbourhood ``Neo4jReader.prefetch`` fetches, in one query: the nodes fewer
    than ``hops`` edges on ``sides`` away from the roots, each with its edges on
    ``sides`` and their other ends. The expansion is breadth-first and visits each node
    once: Neo4j plans it so only when the path's tests are plain (hence a text for each
    combination of ``kinds`` and ``when`` given, with no ``$when IS NULL OR``)."""
    left, right = _ARROWS[sides]
    # A number, never a caller's text; beyond any graph's size, no bound at all (Neo4j's
    # integers end at 2**63).
    reach = "" if hops is None or hops > _NO_BOUND else str(int(hops) - 1)
    # An edge valid at $when (of $kinds), and a node made by then.
    edge_ok = [*(["r.kind IN $kinds"] if kinds else [])]
    if when:
        edge_ok.append("r.valid_from <= $when AND (r.valid_to IS NULL OR $when < r.valid_to)")
    path_ok = [f"all(r IN relationships(p) WHERE {' AND '.join(edge_ok)})"] if edge_ok else []
    if when:
        path_ok.append("all(x IN nodes(p) WHERE coalesce(x.created_at, '') <= $when)")
        edge_ok.append("coalesce(o.created_at, '') <= $when")
    where = f"WHERE {' AND '.join(path_ok)}" if path_ok else ""
    test = f" WHERE {' AND '.join(edge_ok)}" if edge_ok else ""
    fields = "o.id, r.kind, r.opened, r.valid_from, r.valid_to"
    if hops is not None:
        # The other end of an edge may lie beyond the neighbourhood: its fields too.
        # (With no bound it is in the neighbourhood, a row of its own.)
        fields += ", o.kind, o.project, o.label, o.created_at"
    lists = {
        "in": f"[(o:LineageNode)-[r:LINEAGE]->(n){test} | [{fields}]] AS ins",
        "out": f"[(n)-[r:LINEAGE]->(o:LineageNode){test} | [{fields}]] AS outs",
    }
    return f"""
UNWIND $roots AS root
MATCH (m:LineageNode) USING INDEX m:LineageNode(id) WHERE m.id = root
MATCH p = (m){left}[:LINEAGE*0..{reach}]{right}(n:LineageNode)
{where}
WITH DISTINCT n
RETURN n.id AS id, n.kind AS kind, n.project AS project, n.label AS label,
       n.created_at AS created_at, {", ".join(lists[side] for side in sides)}
"""


@dataclass(frozen=True)
class Status:
    """Where the Neo4j graph stands against the ledger."""

    position: int
    head: int
    nodes: int
    edges: int

    @property
    def lag(self) -> int:
        """Log positions of the lineage projection not yet in Neo4j."""
        return max(self.head - self.position, 0)


class Neo4jGraph:
    """The Neo4j graph at ``url`` (``bolt://`` or ``neo4j://``) with ``auth`` (user,
    password)."""

    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None,
        *,
        database: str | None = None,
        retry_seconds: float = 2.0,
        window: int = WINDOW,
    ):
        shown = url.split("@")[-1]
        if not url.startswith(_SCHEMES):
            raise ConfigError(
                f"graph URL {shown!r} is not a Neo4j URL: expected bolt://HOST:PORT or "
                "neo4j://HOST:PORT (or bolt+s, bolt+ssc, neo4j+s, neo4j+ssc for TLS)"
            )
        try:
            urlsplit(url).port  # noqa: B018 (read to check it: a port that is no number raises)
        except ValueError:
            raise ConfigError(
                f"graph URL {shown!r} has a port that is not a number: expected "
                "bolt://HOST:PORT with PORT from 1 to 65535"
            ) from None
        self.url = url
        self.database = database
        self.window = window
        # A server out of reach is said within seconds (503), not after the driver's
        # default 30 s of retries; notifications (a property not yet written, ...) are
        # the server's business, not the user's.
        self.driver = neo4j.GraphDatabase.driver(
            url,
            auth=auth,
            notifications_min_severity="OFF",
            max_transaction_retry_time=retry_seconds,
            connection_timeout=max(retry_seconds, 1.0),
        )
        self._schema_made = False

    def close(self) -> None:
        self.driver.close()

    def _session(self) -> Any:
        return self.driver.session(database=self.database)

    def _call(self, work: Any, *args: Any, write: bool = False) -> Any:
        """Run ``work(tx, *args)`` in a managed transaction (retried by the driver);
        Neo4j out of reach is ``GraphUnavailable``."""
        with self.reachable(), self._session() as session:
            run = session.execute_write if write else session.execute_read
            return run(work, *args)

    @contextmanager
    def reachable(self) -> Iterator[None]:
        """Turn the driver's and the server's errors (out of reach, credentials
        refused, a request refused) into ``GraphUnavailable``."""
        where = self.url.split("@")[-1]
        try:
            yield
        except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired) as exc:
            raise GraphUnavailable(
                f"the lineage graph at {where} cannot be reached ({exc}); "
                "expected a running Neo4j server"
            ) from None
        except neo4j.exceptions.AuthError:
            raise GraphUnavailable(
                f"the lineage graph at {where} refused the credentials; "
                "expected MLLEDGER_GRAPH_USER and MLLEDGER_GRAPH_PASSWORD of a Neo4j user"
            ) from None
        except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError) as exc:
            # Anything else the server or the driver refuses (a user without the right to
            # write, a transaction the server ended, ...): said, never a bare 500.
            raise GraphUnavailable(
                f"the lineage graph at {where} could not be used ({type(exc).__name__}: "
                f"{exc}); expected a Neo4j 5 server and a user that may read and write it"
            ) from None

    def ensure_schema(self) -> None:
        if self._schema_made:
            return
        for statement in _SCHEMA:
            self._call(lambda tx, s=statement: tx.run(s).consume(), write=True)
        self._schema_made = True

    def position(self) -> int:
        """The log position the graph has reached (-1: none)."""
        return int(self._call(lambda tx: _tracked(tx)[0]))

    def sync(self, ledger: Ledger, *, seconds: float | None = None) -> int:
        """Bring the graph up to the ledger's lineage projection; the position reached.
        With ``seconds``, stop after the window that passes that much time, and raise
        ``GraphUnavailable`` if the graph is still behind then (a question is not
        answered from a graph that lacks writes made before it)."""
        self.ensure_schema()
        began = time.monotonic()
        with ledger.store.read() as conn:
            head = lineage_head(conn)
        position = self.position()
        if position > head:  # read after the head: a fresh head tells the two cases apart
            with ledger.store.read() as conn:
                _not_ahead(position, lineage_head(conn), self.url)
        while position < head:
            if seconds is not None and time.monotonic() - began > seconds:
                raise GraphUnavailable(
                    f"the lineage graph is {head - position} log positions behind the "
                    f"ledger after {seconds:g} s of catching up; expected it within "
                    "MLLEDGER_GRAPH_WAIT seconds: ask again shortly, or see `mlledger "
                    "graph status`"
                )
            upto = min(head, position + self.window)
            # A read of its own for each window: no snapshot held for a long sync. Rows
            # at positions up to ``upto`` are the same in any later snapshot.
            with ledger.store.read() as conn:
                nodes, edges = _window(conn, position, upto)
            position = self._call(_write_window, position, upto, nodes, edges, write=True)
        return position

    def catch_up(self, ledger: Ledger, conn: Connection, reader: Neo4jReader) -> None:
        """Before a question read on ``conn`` is answered from ``reader``: sync the graph
        if it lacks a write ``conn`` sees (within ``MLLEDGER_GRAPH_WAIT`` seconds), and
        refuse (``GraphUnavailable``) while it is being dropped. Caught up, this costs
        one query, in the reader's own transaction."""
        position, dropping = reader.tracked()
        if dropping:
            raise GraphUnavailable(_DROPPING)
        head = lineage_head(conn)
        if position < head:
            self.sync(ledger, seconds=ledger.settings.graph_wait)
        elif position > head:
            # Ahead of the question's snapshot: written since by another process, or
            # the graph of another ledger. Only the latter outruns a fresh read.
            with ledger.store.read() as fresh:
                _not_ahead(position, lineage_head(fresh), self.url)
        reader.started_at = max(position, head)

    def confirm(self, reader: Neo4jReader) -> None:
        """After a question's reads: refuse its answer (``GraphUnavailable``) if a drop
        began meanwhile (its reads may have seen half a graph)."""
        position, dropping = reader.tracked()
        if dropping or position < reader.started_at:
            raise GraphUnavailable(_DROPPING)

    def status(self, ledger: Ledger) -> Status:
        with ledger.store.read() as conn:
            head = lineage_head(conn)

        def count(tx: Any) -> tuple[int, int]:
            nodes = tx.run("MATCH (n:LineageNode) RETURN count(n) AS n").single()["n"]
            edges = tx.run("MATCH ()-[r:LINEAGE]->() RETURN count(r) AS n").single()["n"]
            return int(nodes), int(edges)

        nodes, edges = self._call(count)
        return Status(self.position(), head, nodes, edges)

    def drop(self) -> None:
        """Remove the graph and its position (a rebuild syncs it again from the start).

        The position is set back and marked ``dropping`` first, in a transaction of its
        own: while nodes are deleted (``DROP_BATCH`` a transaction), a sync elsewhere
        writes nothing and a question is refused (``GraphUnavailable``), never answered
        from half a graph. The mark is removed once every node is gone, by the drop
        that made it: two drops at once leave the graph refused until the later one is
        done (the other raises ``GraphUnavailable``)."""

        token = str(uuid.uuid4())

        def mark(tx: Any) -> None:
            tx.run(
                "MERGE (t:MlledgerTracking {name: $name}) "
                "SET t.position = -1, t.dropping = true, t.dropper = $token",
                name=TRACKING,
                token=token,
            ).consume()

        def delete(tx: Any) -> int:
            record = tx.run(
                "MATCH (n:LineageNode) WITH n LIMIT $batch DETACH DELETE n RETURN count(*) AS n",
                batch=DROP_BATCH,
            ).single()
            return 0 if record is None else int(record["n"])

        def unmark(tx: Any) -> int:
            # Only this drop's mark: a drop begun meanwhile elsewhere keeps its own (and
            # the graph stays refused until that one is done too).
            record = tx.run(
                "MATCH (t:MlledgerTracking {name: $name}) WHERE t.dropper = $token "
                "DELETE t RETURN count(*) AS n",
                name=TRACKING,
                token=token,
            ).single()
            return 0 if record is None else int(record["n"])

        self.ensure_schema()
        self._call(mark, write=True)
        while self._call(delete, write=True):
            pass
        if not self._call(unmark, write=True):
            raise GraphUnavailable(
                "another process began dropping the lineage graph while this drop ran; "
                "expected one rebuild at a time: that one finishes it (see `mlledger "
                "graph status`)"
            )

    def reader(self) -> Neo4jReader:
        return Neo4jReader(self)

    def canonical(self) -> dict[str, Any]:
        """The whole graph in ``lineage.graph.canonical``'s form."""

        def read(tx: Any) -> tuple[list[Any], list[Any]]:
            nodes = list(
                tx.run(
                    "MATCH (n:LineageNode) RETURN n.id AS id, n.kind AS kind, "
                    "n.project AS project, n.label AS label, n.created_at AS created_at"
                )
            )
            edges = list(
                tx.run(
                    "MATCH (s:LineageNode)-[r:LINEAGE]->(d:LineageNode) RETURN s.id AS src, "
                    "d.id AS dst, r.kind AS kind, r.opened AS opened, "
                    "r.valid_from AS valid_from, r.valid_to AS valid_to"
                )
            )
            return nodes, edges

        nodes, edges = self._call(read)
        return canonical_form(map(_node, nodes), map(_edge, edges))


def _write_window(
    tx: Any, since: int, upto: int, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]
) -> int:
    """One window, written only if the graph is still where it was read (else another
    process wrote it: nothing is written twice); the position reached."""
    tx.run(_LOCK, name=TRACKING).consume()
    current, dropping = _tracked(tx)
    if dropping:
        raise GraphUnavailable(_DROPPING)
    if current != since:  # another process moved it (ahead, or back by a drop)
        return current
    opened = [e for e in edges if e["opened"] > since]
    closed = [e for e in edges if e["opened"] <= since]
    rows = [[n["id"], n["kind"], n["project"], n["label"], n["created_at"]] for n in nodes]
    place = {row[0]: i for i, row in enumerate(rows)}
    ends: list[str] = []
    for edge in opened:
        for end in (edge["src"], edge["dst"]):
            if end not in place:
                place[end] = len(rows) + len(ends)
                ends.append(end)
    if opened or rows:
        links = [
            [
                place[e["src"]],
                place[e["dst"]],
                e["kind"],
                e["opened"],
                e["valid_from"],
                e["valid_to"],
            ]
            for e in opened
        ]
        tx.run(_WRITE, nodes=rows, ends=ends, edges=links).consume()
    if closed:
        tx.run(_CLOSE_EDGES, edges=closed).consume()
    tx.run(_MOVE, name=TRACKING, position=upto).consume()
    return upto


def _tracked(tx: Any) -> tuple[int, bool]:
    """The position the graph has reached (-1: none) and whether it is being dropped."""
    record = tx.run(_POSITION, name=TRACKING).single()
    if record is None or record["position"] is None:
        return -1, False
    return int(record["position"]), bool(record["dropping"])


def _not_ahead(position: int, head: int, url: str) -> None:
    """Refuse a graph that holds log positions the ledger does not have."""
    if position > head:
        raise GraphUnavailable(
            f"the lineage graph at {url.split('@')[-1]} is at log position {position}, "
            f"ahead of this ledger's lineage projection ({head}): it holds another "
            "ledger's graph, or this ledger was restored from an older copy; expected "
            "`mlledger graph rebuild` (or a graph of this ledger's own)"
        )


def lineage_head(conn: Connection) -> int:
    """The log position the SQL lineage projection has reached (-1: none)."""
    head = Raw(conn).scalar("SELECT position FROM projection_tracking WHERE name = 'lineage'")
    return -1 if head is None else int(head)


def _window(
    conn: Connection, since: int, upto: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The nodes made and the edges opened or closed at log positions in (since, upto]."""
    nodes_t, edges_t = T["lineage_nodes"], T["lineage_edges"]
    nodes = [
        {
            "id": row.id,
            "kind": row.kind,
            "project": row.project,
            "label": row.label,
            "created_at": row.created_at,
        }
        for row in conn.execute(
            select(nodes_t).where(nodes_t.c.position > since, nodes_t.c.position <= upto)
        )
    ]
    changed = conn.execute(
        select(edges_t).where(
            or_(
                and_(edges_t.c.opened_pos > since, edges_t.c.opened_pos <= upto),
                and_(edges_t.c.closed_pos > since, edges_t.c.closed_pos <= upto),
            )
        )
    )
    edges = []
    for row in changed:
        if row.opened_pos > upto:
            continue
        closed = row.closed_pos is not None and row.closed_pos <= upto
        edges.append(
            {
                "src": row.src,
                "dst": row.dst,
                "kind": row.kind,
                "opened": int(row.opened_pos),
                "valid_from": row.valid_from,
                "valid_to": row.valid_to if closed else None,
            }
        )
    return nodes, edges


def _node(row: Any) -> Node:
    """A node from a row of id, kind, project, label and created_at (a node made only as
    an edge's end has none but its id, as in the embedded graph)."""
    node_id = row["id"]
    return Node(
        node_id, row["kind"] or kind_of(node_id), row["project"] or "", row["label"],
        row["created_at"] or "",
    )  # fmt: skip


def _edge(row: Any) -> Edge:
    return Edge(
        row["src"], row["dst"], row["kind"], int(row["opened"]), row["valid_from"],
        row["valid_to"],
    )  # fmt: skip


class Neo4jReader:
    """``lineage.walks.GraphReader`` over the Neo4j graph, all of a question's queries in
    one read transaction (opened on first use, closed by ``close``). What it has
    fetched (nodes; the edges of a node on a side, at a time, of some kinds) it keeps
    for the question and does not ask again; ``prefetch`` fetches a walk's whole
    neighbourhood in one query. Neo4j reads committed data statement by statement: a
    window a sync commits meanwhile may show in the question's later queries, never
    half of one."""

    def __init__(self, graph: Neo4jGraph):
        self.graph = graph
        self._session: Any = None
        self._tx: Any = None
        #: The position the question's graph stood at (``Neo4jGraph.catch_up``).
        self.started_at = -1
        self._known: dict[str, Node] = {}
        # (side, when, kinds) -> node -> every edge of the node on that side (at when,
        # of those kinds; None: any kind).
        self._complete: dict[_EdgeKey, dict[str, list[Edge]]] = {}

    def _rows(self, query: str, **params: Any) -> list[Any]:
        with self.graph.reachable():
            if self._tx is None:
                self._session = self.graph.driver.session(
                    database=self.graph.database, default_access_mode=neo4j.READ_ACCESS
                )
                self._tx = self._session.begin_transaction()
            return list(self._tx.run(query, **params))

    def close(self) -> None:
        """End the read transaction and its session (nothing to commit)."""
        tx, session, self._tx, self._session = self._tx, self._session, None, None
        with self.graph.reachable():
            if tx is not None:
                tx.close()
            if session is not None:
                session.close()

    def tracked(self) -> tuple[int, bool]:
        """The position the graph has reached and whether it is being dropped, read in
        this reader's transaction."""
        rows = self._rows(_POSITION, name=TRACKING)
        if not rows or rows[0]["position"] is None:
            return -1, False
        return int(rows[0]["position"]), bool(rows[0]["dropping"])

    def nodes(self, ids: Collection[str], when: str | None = None) -> dict[str, Node]:
        wanted = list(dict.fromkeys(ids))
        missing = [n for n in wanted if n not in self._known]
        if missing:
            # Fetched whatever ``when``, kept, and judged by creation time here.
            for row in self._rows(_NODES, ids=missing):
                node = _node(row)
                self._known[node.id] = node
        return {
            n: self._known[n]
            for n in wanted
            if n in self._known and (when is None or self._known[n].created_at <= when)
        }

    def _kept(
        self, node: str, side: Side, when: str | None, kinds: frozenset[str] | None
    ) -> list[Edge] | None:
        exact = self._complete.get((side, when, kinds), {}).get(node)
        if exact is not None or kinds is None:
            return exact
        wider = self._complete.get((side, when, None), {}).get(node)
        return None if wider is None else [e for e in wider if e.kind in kinds]

    def edges(
        self,
        ids: Collection[str],
        side: Side,
        when: str | None = None,
        kinds: frozenset[str] | None = None,
    ) -> list[Edge]:
        found: list[Edge] = []
        missing: list[str] = []
        for node in dict.fromkeys(ids):
            kept = self._kept(node, side, when, kinds)
            if kept is None:
                missing.append(node)
            else:
                found.extend(kept)
        if missing:
            fetched: dict[str, list[Edge]] = {n: [] for n in missing}
            rows = self._rows(
                _EDGES[side] + _EDGES_WHERE,
                ids=missing,
                when=when,
                kinds=None if kinds is None else sorted(kinds),
            )
            for row in rows:
                edge = _edge(row)
                fetched[edge.dst if side == "in" else edge.src].append(edge)
                found.append(edge)
            self._complete.setdefault((side, when, kinds), {}).update(fetched)
        return found

    def prefetch(
        self,
        roots: Collection[str],
        sides: tuple[Side, ...],
        hops: int | None,
        when: str | None = None,
        kinds: frozenset[str] | None = None,
    ) -> None:
        if not roots or hops == 0:
            return
        rows = self._rows(
            _around_query(sides, hops, kinds is not None, when is not None),
            roots=sorted(roots),
            when=when,
            kinds=None if kinds is None else sorted(kinds),
        )
        kept = {side: self._complete.setdefault((side, when, kinds), {}) for side in sides}
        for row in rows:
            node = _node(row)
            self._known[node.id] = node
            for side in sides:
                edges: list[Edge] = []
                for other, kind, opened, since, until, *data in row[f"{side}s"]:
                    src, dst = (other, node.id) if side == "in" else (node.id, other)
                    edges.append(Edge(src, dst, kind, int(opened), since, until))
                    if data and other not in self._known:
                        fields = zip(_NODE_FIELDS, (other, *data), strict=True)
                        self._known[other] = _node(dict(fields))
                kept[side][node.id] = edges


_EdgeKey = tuple[Side, str | None, frozenset[str] | None]
_NODE_FIELDS = ("id", "kind", "project", "label", "created_at")


def follow(
    ledger: Ledger,
    graph: Neo4jGraph,
    stop: threading.Event,
    interval: float,
    say: Callable[[str], None],
) -> None:
    """Sync ``graph`` every ``interval`` seconds until ``stop`` is set. An unreachable
    graph is reported through ``say`` once an outage (and its end once), and retried:
    appends never wait for it."""
    down = False
    while not stop.is_set():
        try:
            graph.sync(ledger)
        except Exception as exc:  # said once an outage, and retried: the thread goes on
            if not down:
                reason = str(exc) if isinstance(exc, GraphUnavailable) else repr(exc)
                say(f"mlledger graph: {reason}; trying again every {interval:g} s")
            down = True
        else:
            if down:
                say("mlledger graph: the graph is reachable again and caught up")
            down = False
        stop.wait(interval)


class Follower:
    """``follow`` in a daemon thread (what ``mlledger serve`` runs beside the API)."""

    def __init__(self, ledger: Ledger, graph: Neo4jGraph, interval: float = 1.0):
        self.stop_event = threading.Event()
        log = logging.getLogger("mlledger.graph")
        self.thread = threading.Thread(
            target=follow,
            args=(ledger, graph, self.stop_event, interval, log.warning),
            name="mlledger-graph-follower",
            daemon=True,
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)


_ATTACHED: weakref.WeakKeyDictionary[Ledger, Neo4jGraph | None] = weakref.WeakKeyDictionary()
_ATTACHED_LOCK = threading.Lock()


def attach(ledger: Ledger, graph: Neo4jGraph | None) -> None:
    """Answer ``ledger``'s lineage questions from ``graph`` (None: the embedded graph)."""
    with _ATTACHED_LOCK:
        _ATTACHED[ledger] = graph


def attached(ledger: Ledger) -> Neo4jGraph | None:
    """The Neo4j graph of ``ledger``: the one attached, else the one its settings' graph
    (``MLLEDGER_GRAPH``) names, opened on first use, else None."""
    if ledger in _ATTACHED:
        return _ATTACHED[ledger]
    graph = from_settings(ledger.settings)
    with _ATTACHED_LOCK:
        return _ATTACHED.setdefault(ledger, graph)


def from_settings(settings: Settings, url: str | None = None) -> Neo4jGraph | None:
    """The graph ``url`` (default: ``MLLEDGER_GRAPH``) names, with the settings'
    credentials (``MLLEDGER_GRAPH_USER``, ``MLLEDGER_GRAPH_PASSWORD``); None when
    neither names one."""
    url = url or settings.graph
    if not url:
        return None
    password = settings.graph_password
    auth = None if password is None else (settings.graph_user, password)
    return Neo4jGraph(url, auth, window=settings.graph_window)
