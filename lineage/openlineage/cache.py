"""What Marquez's read routes reuse between requests, per ledger object and project, in
this process: the project's read model (``ProjectGraph``), the dataset facets its
OpenLineage events carried, and the order of those events by ``eventTime``.

Each is valid for a position of the log. A request reads the log's head first (one
indexed ``MAX``): when the head has not moved since, what was kept is served; when
it has, the read model is loaded again (in the transaction the head was read in),
and the facets and the feed read only the events appended since (the log is
append-only; an erasure, which rewrites earlier events, records the position of
its own event in ``redactions``, and makes them read everything again). Several
worker processes each keep their own, each checked against the shared store's
head on every request. A projection rebuild (``Ledger.rebuilt``) drops them.

What is kept is never changed once handed out: an update makes new maps and lists,
so a request still reading the old ones sees them whole.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage.graph import reading
from lineage.openlineage.facets import RECEIVED_TYPES, merge_named, named_facets, restored
from lineage.openlineage.readmodel import ProjectGraph
from registry.canonical import loads
from registry.errors import FieldError
from registry.store.base import Store
from registry.store.raw import Raw
from registry.timeutil import to_timestamp

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from registry.ledger import Ledger

#: Projects kept per ledger object (the least recently asked about go first).
PROJECTS_KEPT = 4

#: One received event in the feed's order: (eventTime in canonical UTC, position).
FeedEntry = tuple[str, int]


def instant(text: str) -> str:
    """An event time in the canonical UTC form, which sorts as time does (as sent when
    it is outside the ledger's range of times: such an event sorts by its text)."""
    try:
        return to_timestamp(text, "eventTime")
    except FieldError:
        return text


@dataclass
class _Facets:
    """Dataset version id -> its merged facets, as of ``position``."""

    position: int = -1
    merged: Mapping[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Feed:
    """The project's received events by (eventTime, position), as of ``position``."""

    position: int = -1
    entries: list[FeedEntry] = field(default_factory=list)


@dataclass
class _Tags:
    """The tag names the project's received events named, as of ``position``."""

    position: int = -1
    names: frozenset[str] = frozenset()


#: Received events read at a time when looking for tags (memory stays bounded).
TAG_BATCH = 500


class ProjectCache:
    """What the Marquez routes reuse for one project of one ledger object."""

    def __init__(self, project: str):
        self.project = project
        self._lock = threading.Lock()
        self._graph: tuple[int, ProjectGraph] | None = None
        self._facets = _Facets()
        self._feed = _Feed()
        self._tags = _Tags()

    def graph(self, ledger: Ledger, conn: Connection, head: int) -> ProjectGraph:
        """The read model as of ``head`` (read on ``conn``) or later."""
        with self._lock:
            if self._graph is not None and self._graph[0] >= head:
                return self._graph[1]
            with reading(ledger, conn) as reader, _bulk():
                world = ProjectGraph.load(conn, self.project, reader)
            self._graph = (head, world)
            return world

    def _rewritten(self, raw: Raw, position: int) -> bool:
        """Whether an erasure rewrote events after ``position`` was read."""
        found = raw.scalar("SELECT 1 FROM redactions WHERE erased_pos > ? LIMIT 1", (position,))
        return found is not None

    def _received(self, raw: Raw, since: int, head: int, columns: str) -> list[Any]:
        return raw.all(
            f"SELECT {columns} FROM events WHERE project = ? "
            f"AND type {raw.among(RECEIVED_TYPES)} AND position > ? AND position <= ? "
            "ORDER BY position",
            (self.project, *raw.among_params(RECEIVED_TYPES), since, head),
        )

    def dataset_facets(self, conn: Connection, head: int) -> Mapping[str, dict[str, Any]]:
        """Every dataset version's facets (``facets.dataset_facets`` of the whole
        project, input and output facets included) as of ``head`` or later."""
        with self._lock:
            kept = self._facets
            if kept.position >= head:
                return kept.merged
            raw = Raw(conn)
            since = -1 if self._rewritten(raw, kept.position) else kept.position
            merged = dict(kept.merged) if since >= 0 else {}
            touched: set[str] = set()
            with _bulk():
                for type_, entity, body in self._received(raw, since, head, "type, entity, body"):
                    for version, facets in named_facets(type_, entity, restored(loads(body))):
                        if version not in touched:  # a copy: the one handed out stays whole
                            merged[version] = dict(merged.get(version, {}))
                            touched.add(version)
                        merge_named(merged[version], facets)
            self._facets = _Facets(head, merged)
            return merged

    def feed(self, conn: Connection, head: int) -> list[FeedEntry]:
        """The project's received events as (eventTime, position), sorted, as of
        ``head`` or later."""
        with self._lock:
            kept = self._feed
            if kept.position >= head:
                return kept.entries
            raw = Raw(conn)
            since = -1 if self._rewritten(raw, kept.position) else kept.position
            entries = list(kept.entries) if since >= 0 else []
            with _bulk():
                entries += [
                    (instant(loads(body)["event_time"]), int(position))
                    for position, body in self._received(raw, since, head, "position, body")
                ]
            entries.sort()  # the kept ones sorted already: a merge of the new ones
            self._feed = _Feed(head, entries)
            return entries

    def tags(
        self, conn: Connection, head: int, named: Callable[[str, dict[str, Any]], set[str]]
    ) -> frozenset[str]:
        """The tag names ``named(type, body)`` finds in the project's received events
        (those whose body mentions ``"tags"``), as of ``head`` or later; the events
        appended since the last answer are read, ``TAG_BATCH`` at a time."""
        with self._lock:
            kept = self._tags
            if kept.position >= head:
                return kept.names
            raw = Raw(conn)
            since = -1 if self._rewritten(raw, kept.position) else kept.position
            names = set(kept.names) if since >= 0 else set()
            while True:
                rows = raw.all(
                    f"SELECT position, type, body FROM events WHERE project = ? "
                    f"AND type {raw.among(RECEIVED_TYPES)} AND position > ? AND position <= ? "
                    f"AND body LIKE ? ORDER BY position LIMIT {TAG_BATCH}",
                    (self.project, *raw.among_params(RECEIVED_TYPES), since, head, '%"tags"%'),
                )
                for position, type_, body in rows:
                    names |= named(type_, restored(loads(body)))
                    since = int(position)
                if len(rows) < TAG_BATCH:
                    break
            self._tags = _Tags(head, frozenset(names))
            return self._tags.names


@contextmanager
def _bulk() -> Iterator[None]:
    """No cyclic garbage collection while a load builds its hundreds of thousands of
    objects, none of them garbage: each pass the allocations would set off walks every
    object the process holds (the models already kept included) and finds nothing,
    more than half the time of a load otherwise. Collection resumes after, unless it
    was off before."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


_CACHES: weakref.WeakKeyDictionary[Ledger, OrderedDict[str, ProjectCache]] = (
    weakref.WeakKeyDictionary()
)
_CACHES_LOCK = threading.Lock()


def cache_of(ledger: Ledger, project: str) -> ProjectCache:
    """The cache of ``project`` on ``ledger`` (made on first use; the ledger's rebuild
    drops every one of its projects')."""
    with _CACHES_LOCK:
        projects = _CACHES.get(ledger)
        if projects is None:
            projects = _CACHES[ledger] = OrderedDict()
            ledger.rebuilt.append(projects.clear)
        found = projects.get(project)
        if found is None:
            found = projects[project] = ProjectCache(project)
            while len(projects) > PROJECTS_KEPT:
                projects.popitem(last=False)
        projects.move_to_end(project)
        return found


def head(conn: Connection) -> int:
    """The log's head as ``conn`` sees it."""
    return Store.max_position(conn)
