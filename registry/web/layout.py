"""Positions of a lineage answer's nodes for the explorer: layered, deterministic.

A node's column is its signed distance from the focus node: upstream to the left
(negative), downstream to the right, found by a breadth-first walk from the focus
that steps one column right along an edge (``src`` → ``dst``) and one left against
it. Within a column, nodes go by kind, then by the barycentre of their neighbours in
the column nearer the focus (fewer crossings), then by id. A column holding more
than ``GROUP_OVER`` nodes shows each of its kinds as one group node, to be opened.

Pure functions over plain values: the explorer's pages and tests share them.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: Pixels between columns and between the nodes of a column.
COLUMN_GAP = 240
ROW_GAP = 56
#: A column of more nodes than this is drawn as groups, one per kind.
GROUP_OVER = 40
#: The order of kinds within a column (the graph's own order: data, runs, models...).
KIND_ORDER = {"dataset": 0, "run": 1, "model": 2, "deployment": 3}
#: What a group of each kind is called on the page.
KIND_PLURAL = {
    "dataset": "dataset versions",
    "run": "runs",
    "model": "model versions",
    "deployment": "deployments",
}


@dataclass(frozen=True)
class Group:
    """The nodes of one kind in one column, drawn as one node until opened."""

    id: str
    column: int
    kind: str
    members: tuple[str, ...]
    x: float
    y: float

    @property
    def label(self) -> str:
        """What the group node says: ``312 dataset versions``."""
        return f"{len(self.members)} {KIND_PLURAL.get(self.kind, self.kind)}"


@dataclass
class Layout:
    """Where each node goes, its column, and the groups of the crowded columns."""

    positions: dict[str, tuple[float, float]] = field(default_factory=dict)
    columns: dict[str, int] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)


def columns_of(root: str, nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """The signed column of each node reachable from ``root`` over ``edges`` (one
    breadth-first walk: ``+1`` along an edge, ``-1`` against it; the first way found
    wins, neighbours taken in id order). Nodes not reached go one column past the
    farthest, on the side of the root's kind (never for a lineage answer: it is
    connected)."""
    known = set(nodes)
    out: dict[str, list[str]] = defaultdict(list)
    into: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        if src in known and dst in known:
            out[src].append(dst)
            into[dst].append(src)
    column = {root: 0} if root in known else {}
    queue = deque(column)
    while queue:
        at = queue.popleft()
        here = column[at]
        for step, neighbours in ((1, out[at]), (-1, into[at])):
            for other in sorted(neighbours):
                if other not in column:
                    column[other] = here + step
                    queue.append(other)
    far = max((abs(c) for c in column.values()), default=0) + 1
    for node in sorted(known - set(column)):
        column[node] = far
    return column


def layout(
    root: str,
    kinds: Mapping[str, str],
    edges: Sequence[tuple[str, str]],
    *,
    group_over: int = GROUP_OVER,
) -> Layout:
    """Positions of the nodes ``kinds`` (node id → kind) around ``root``: columns by
    signed distance, rows by kind then barycentre; groups for the columns of more
    than ``group_over`` nodes (each kind there with more than one node)."""
    column = columns_of(root, kinds, edges)
    by_column: dict[int, list[str]] = defaultdict(list)
    for node, c in column.items():
        by_column[c].append(node)
    neighbours: dict[str, list[str]] = defaultdict(list)
    for src, dst in edges:
        if src in column and dst in column:
            neighbours[src].append(dst)
            neighbours[dst].append(src)
    row: dict[str, float] = {}
    # Outward from the focus: each column ordered by its neighbours nearer the focus.
    order = sorted(by_column, key=lambda c: (abs(c), c))
    for c in order:
        inner = c - 1 if c > 0 else c + 1

        def barycentre(node: str, inner: int = inner) -> float:
            placed = [row[n] for n in neighbours[node] if column[n] == inner and n in row]
            return sum(placed) / len(placed) if placed else float("inf")

        members = sorted(
            by_column[c], key=lambda n: (KIND_ORDER.get(kinds[n], 9), barycentre(n), n)
        )
        for index, node in enumerate(members):
            row[node] = index
        by_column[c] = members
    result = Layout(columns=column)
    for c, members in by_column.items():
        middle = (len(members) - 1) / 2
        for index, node in enumerate(members):
            result.positions[node] = (c * COLUMN_GAP, (index - middle) * ROW_GAP)
        if len(members) > group_over:
            result.groups.extend(_groups(c, members, kinds, result.positions))
    return result


def _groups(
    c: int,
    members: list[str],
    kinds: Mapping[str, str],
    positions: Mapping[str, tuple[float, float]],
) -> list[Group]:
    """One group per kind of a crowded column (kinds of one node stay single), placed
    at the middle of its members."""
    of_kind: dict[str, list[str]] = defaultdict(list)
    for node in members:
        of_kind[kinds[node]].append(node)
    found = []
    for kind, nodes in of_kind.items():
        if len(nodes) < 2:
            continue
        ys = [positions[n][1] for n in nodes]
        found.append(
            Group(
                id=f"group:{c}:{kind}",
                column=c,
                kind=kind,
                members=tuple(nodes),
                x=c * COLUMN_GAP,
                y=(min(ys) + max(ys)) / 2,
            )
        )
    return found
