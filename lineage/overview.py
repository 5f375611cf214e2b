"""The overview of a project: its counts, its newest events, and its nodes by name.

What the web interface's home and search pages show, answered from the catalogue
projections and the log (``lineage.answers``: ``ProjectCounts``, ``EventFeed``,
``SearchAnswer``); OpenLineage's jobs are found in Marquez's read model of the
project (``lineage.openlineage.marquez``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from lineage.answers import EventFeed, FeedEvent, ProjectCounts, SearchAnswer, SearchHit, SearchKind
from registry.errors import FieldError
from registry.ids import check_name
from registry.store.raw import Raw

if TYPE_CHECKING:
    from registry.ledger import Ledger

#: Every kind a search may look for, in the order results of one name are listed.
KINDS: tuple[SearchKind, ...] = get_args(SearchKind)
#: The most events a feed lists, and the most names a page of search results.
FEED_MAX = 200
#: A feed reads the log back from its head this many positions at a time, and at most
#: ``FEED_LOOKBACK`` positions in all: its cost does not grow with the log.
FEED_WINDOW = 2_000
FEED_LOOKBACK = 10_000
PAGE_MAX = 100
#: A search skips at most this many names: deeper pages are refused, not scanned.
OFFSET_MAX = 10_000
TEXT_MAX = 128
#: The largest position a feed is asked after (as the API's routes bound theirs).
POSITION_MAX = 2**62

# Each catalogue kind: its table, the column holding the name, the node id column and
# the column of its time. Fixed text: nothing here comes from a request.
_TABLES: dict[str, tuple[str, str, str]] = {
    "dataset": ("cat_datasets", "name", "registered_at"),
    "model": ("cat_models", "name", "registered_at"),
    "run": ("cat_runs", "job", "started_at"),
    "deployment": ("cat_deployments", "name", "updated_at"),
}


def counts(ledger: Ledger, project: str) -> ProjectCounts:
    """How many dataset versions, runs, model versions, deployments and events
    ``project`` holds."""
    check_name(project, "project")
    with ledger.store.snapshot() as conn:
        raw = Raw(conn)
        found = {
            kind: int(raw.scalar(f"SELECT COUNT(*) FROM {table} WHERE project = ?", [project]))
            for kind, (table, _, _) in _TABLES.items()
        }
        events = int(raw.scalar("SELECT COUNT(*) FROM events WHERE project = ?", [project]))
        head = raw.scalar("SELECT MAX(position) FROM events")
    return ProjectCounts.built(
        project=project,
        datasets=found["dataset"],
        runs=found["run"],
        models=found["model"],
        deployments=found["deployment"],
        events=events,
        head=-1 if head is None else int(head),
    )


def feed(ledger: Ledger, project: str, *, after: int = -1, limit: int = 20) -> EventFeed:
    """``project``'s newest events (at most ``limit``, 1 to ``FEED_MAX``) at positions
    after ``after``, newest first, among the log's newest ``FEED_LOOKBACK`` positions
    (a project quiet for longer shows none)."""
    check_name(project, "project")
    if not 1 <= limit <= FEED_MAX:
        raise FieldError("limit", f"limit {limit} is out of range: expected 1 to {FEED_MAX}")
    if not -1 <= after <= POSITION_MAX:
        raise FieldError(
            "after", f"after {after} is out of range: expected a position (at most 2**62), or -1"
        )
    events: list[FeedEvent] = []
    with ledger.store.snapshot() as conn:
        raw = Raw(conn)
        found = raw.scalar("SELECT MAX(position) FROM events")
        head = -1 if found is None else int(found)
        # Back from the head by ranges of positions (the primary key): the project's
        # own index would have every event of the project sorted to find the newest.
        top = head
        floor = max(after, head - FEED_LOOKBACK)
        while top > floor and len(events) < limit:
            low = max(floor, top - FEED_WINDOW)
            rows = raw.all(
                "SELECT position, project, type, entity, actor, recorded_at FROM events "
                "WHERE position > ? AND position <= ? ORDER BY position DESC",
                [low, top],
            )
            for position, owner, kind, entity, actor, recorded in rows:
                if owner == project and len(events) < limit:
                    events.append(
                        FeedEvent(
                            position=int(position),
                            type=kind,
                            entity=entity,
                            actor=actor,
                            recorded_at=recorded,
                        )
                    )
            top = low
    return EventFeed.built(project=project, events=events, head=head)


def search(
    ledger: Ledger,
    project: str,
    text: str,
    *,
    kinds: tuple[str, ...] = KINDS,
    offset: int = 0,
    limit: int = 25,
) -> SearchAnswer:
    """The names of ``project``'s datasets, models, runs (their job's name),
    deployments and OpenLineage jobs holding ``text`` (case-insensitive, as typed:
    no wildcards), one page: by name, then kind."""
    check_name(project, "project")
    text = _text(text)
    wanted = _kinds(kinds)
    if not 1 <= limit <= PAGE_MAX:
        raise FieldError("limit", f"limit {limit} is out of range: expected 1 to {PAGE_MAX}")
    if not 0 <= offset <= OFFSET_MAX:
        raise FieldError("offset", f"offset {offset} is out of range: expected 0 to {OFFSET_MAX}")
    needle = text.casefold()
    hits: list[SearchHit] = []
    with ledger.store.snapshot() as conn:
        raw = Raw(conn)
        for kind in wanted:
            if kind in _TABLES:
                hits.extend(_catalogue_hits(raw, kind, project, needle))
    if "job" in wanted:
        hits.extend(_job_hits(ledger, project, text, needle))
    order = {kind: i for i, kind in enumerate(KINDS)}
    hits.sort(key=lambda h: (h["name"].casefold(), h["name"], order[h["kind"]]))
    return SearchAnswer.built(
        project=project,
        text=text,
        kinds=list(wanted),
        total=len(hits),
        offset=offset,
        limit=limit,
        hits=hits[offset : offset + limit],
    )


def _text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise FieldError("q", "the search text is empty: expected part of a name")
    text = text.strip()
    if len(text) > TEXT_MAX:
        raise FieldError(
            "q", f"the search text is {len(text)} characters long: expected at most {TEXT_MAX}"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise FieldError("q", "the search text holds a control character: expected plain text")
    return text


def _kinds(kinds: tuple[str, ...]) -> tuple[SearchKind, ...]:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise FieldError(
            "type", f"type {unknown[0]!r} is not searched: expected any of {', '.join(KINDS)}"
        )
    chosen = tuple(k for k in KINDS if k in kinds)
    return chosen or KINDS


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _catalogue_hits(raw: Raw, kind: str, project: str, needle: str) -> list[SearchHit]:
    """One hit per name of ``kind`` holding ``needle``: how many nodes bear it, and the
    newest (by log position). Bounded: at most ``OFFSET_MAX + PAGE_MAX`` names."""
    table, column, when = _TABLES[kind]
    rows = raw.all(
        f"SELECT t.{column}, n.count, t.id, t.{when} FROM {table} t JOIN ("
        f"SELECT {column} AS name, COUNT(*) AS count, MAX(position) AS newest FROM {table} "
        f"WHERE project = ? AND LOWER({column}) LIKE ? ESCAPE '\\' GROUP BY {column} "
        f"ORDER BY {column} LIMIT ?) n ON t.{column} = n.name AND t.position = n.newest "
        "WHERE t.project = ?",
        [project, _like(needle), OFFSET_MAX + PAGE_MAX, project],
    )
    hits: dict[str, SearchHit] = {}
    for name, count, node, at in rows:
        # Two nodes of one name may share the newest position (an event naming both):
        # one hit per name whatever the join finds.
        if needle in name.casefold() and name not in hits:
            hits[name] = SearchHit(
                kind=kind,  # type: ignore[typeddict-item]
                name=name,
                count=int(count),
                newest=node,
                updated_at=at,
            )
    return list(hits.values())


def _job_hits(ledger: Ledger, project: str, text: str, needle: str) -> list[SearchHit]:
    """OpenLineage's jobs (Marquez's read model) whose name holds ``needle``."""
    # Loaded here only: the OpenLineage package costs start-up time elsewhere.
    from lineage.openlineage import marquez

    # Marquez's pattern takes '%' and '_' as wildcards: what it finds holds at least
    # the text typed, and the check below keeps only names holding it as typed.
    found = marquez.search(ledger, project, text, filter="job", limit=OFFSET_MAX + PAGE_MAX)[
        "results"
    ]
    return [
        SearchHit(
            kind="job",
            name=f"{r['namespace']}/{r['name']}",
            count=1,
            newest=str(r["nodeId"]),
            updated_at=str(r["updatedAt"]),
        )
        for r in found
        if needle in str(r["name"]).casefold()
    ]
