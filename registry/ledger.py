"""The ledger: the one write path (``Ledger.append``) and reads of the log.

An append is one transaction holding the append lock (appends of one process that
arrive meanwhile share it, each in a savepoint: ``registry.groupcommit``): it skips
events whose ``event_id`` is already in the log (idempotency), checks every new
event against the projections and the events before it in the batch, assigns
gap-free positions, stores each event (stamped with the caller's trace id) with
its RFC 6962 leaf hash, brings every projection up to date and records their
tracking positions, then commits. Any failure rolls the whole batch back:
nothing is half-written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import Span
from sqlalchemy import Connection

from registry.canonical import canonical_text, leaf_hash, loads
from registry.errors import Conflict, EventRejected, LedgerError
from registry.events import NewEvent, StoredEvent, canonical_event, normalised, validate_new
from registry.groupcommit import GroupCommit
from registry.ids import NodeId, dataset_id, kind_of, model_id
from registry.projection import Projection, ProjectionRunner, projection_digest
from registry.settings import Settings, given
from registry.store import Store
from registry.store.base import ENVELOPE_COLUMNS
from registry.store.raw import Raw
from registry.timeutil import now
from registry.tracing import current_trace_id, span
from registry.vault import KeyRing, Pseudonymizer, Vault

CHUNK = 500


#: A rule checked after a batch is in the projections, inside the append transaction:
#: ``rule(ledger, conn, index, event)`` raises EventRejected to undo the whole batch.
Rule = Callable[["Ledger", Connection, int, NewEvent], None]


class Ledger:
    """The log, its projections and the vault, over one store.

    The ledger knows projections and rules only by their interfaces: the layers that
    own them hand them in (``registry.assembly`` builds the ledger every command
    uses). ``rules`` maps an event type to the rules its events must pass once the
    batch is projected."""

    def __init__(
        self,
        store: Store,
        keyring: KeyRing | None = None,
        *,
        projections: Sequence[Projection] = (),
        rules: Mapping[str, Sequence[Rule]] | None = None,
        settings: Settings | None = None,
    ):
        self.store = store
        #: The settings this ledger was opened with (key files, checkpoint signing).
        self.settings = given(settings)
        self.vault = Vault(keyring or KeyRing.load(store.url, self.settings))
        self.runner = ProjectionRunner(projections)
        self.rules: dict[str, tuple[Rule, ...]] = {k: tuple(v) for k, v in (rules or {}).items()}
        #: Called after a rebuild: caches of the projections (the lineage graph) drop.
        self.rebuilt: list[Callable[[], None]] = []
        self._pseudonymizers: dict[str, Pseudonymizer] = {}
        self._group = GroupCommit(
            store, lambda conn, p: self._locked(conn, p.events, p.context, p.first_wins)
        )

    def close(self) -> None:
        self.store.dispose()

    # --- write --------------------------------------------------------------------------

    def append(
        self,
        events: Sequence[NewEvent],
        before_commit: Callable[[Connection], None] | None = None,
        *,
        first_wins: bool = False,
    ) -> list[int]:
        """Append a batch atomically; return each event's position.

        An event whose ``event_id`` is already in its project's log is not written
        again: its original position is returned when its content is the same (a
        retry), and Conflict is raised when it differs, unless ``first_wins`` (ids
        derived from what they claim, such as an OpenLineage run's start: the first
        event to claim it stands, later ones are skipped). ``before_commit`` runs inside the
        transaction, for writes that must stand or fall with the events (vault).
        An event without a ``trace_id`` gets the trace id of the caller's current
        span, if any (``registry.tracing``), before it is hashed.
        """
        # The trace of the caller (a request, a job's span), taken before our own span.
        trace_id = current_trace_id()
        with span("ledger.append", **{"mlledger.events": len(events)}) as current:
            return self._append(events, trace_id, before_commit, current, first_wins)

    def _append(
        self,
        events: Sequence[NewEvent],
        trace_id: str | None,
        before_commit: Callable[[Connection], None] | None,
        current: Span,
        first_wins: bool,
    ) -> list[int]:
        events = _prepared(events, trace_id)
        if not events:
            return []
        if current.is_recording():
            current.set_attribute("mlledger.projects", sorted({e.project for e in events}))
        if before_commit is None:
            # Appends arriving meanwhile share the transaction and its commit.
            return self._group.submit(events, first_wins, current)
        with self.store.append_transaction() as conn:
            positions = self._locked(conn, events, current, first_wins)
            if before_commit is not None:
                before_commit(conn)
        if positions:
            self.store.grown(max(positions) + 1)
        return positions

    def append_locked(self, conn: Connection, events: Sequence[NewEvent]) -> list[int]:
        """Append a batch inside a transaction the caller opened with
        ``store.append_transaction()`` (an erasure: its deletions and its event commit
        together); same checks and idempotency as ``append``."""
        trace_id = current_trace_id()
        with span("ledger.append", **{"mlledger.events": len(events)}) as current:
            prepared = _prepared(events, trace_id)
            return self._locked(conn, prepared, current) if prepared else []

    def _locked(
        self, conn: Connection, events: list[NewEvent], current: Span, first_wins: bool = False
    ) -> list[int]:
        """The part of an append that runs under the append lock."""
        raw = Raw(conn)
        head = raw.scalar("SELECT MAX(position) FROM events")
        head = -1 if head is None else int(head)
        tracked = self.runner.positions(conn)
        if min(tracked.values(), default=head) < head:  # a projection lags: catch up
            self.runner.catch_up(conn, head, tracked)
            tracked = self.runner.positions(conn)
        known: dict[tuple[str, str], tuple[int, tuple[object, ...] | NewEvent]] = dict(
            _stored_by_id(raw, events)
        )
        positions: list[int] = []
        fresh: list[tuple[int, NewEvent]] = []
        next_position = head + 1
        for index, event in enumerate(events):
            key = (event.project, event.event_id)
            if key in known:
                position, seen = known[key]
                # Contents are compared only when an id repeats (a retry, or a clash).
                content = _content(seen) if isinstance(seen, NewEvent) else seen
                if content != _content(event) and not first_wins:
                    raise Conflict(
                        f"event #{index} ({event.type}): event id {event.event_id} is already "
                        f"in the log of project {event.project!r} (position {position}) with "
                        "other content; expected the same content (a retry) or a new event id. "
                        "Nothing in the batch was written"
                    )
                positions.append(position)
                continue
            known[key] = (next_position, event)
            positions.append(next_position)
            fresh.append((index, event))
            next_position += 1
        if current.is_recording():
            current.set_attribute("mlledger.first_position", head + 1)
            current.set_attribute("mlledger.appended", len(fresh))
        checker = Checker(raw)
        checker.prefetch([event for _, event in fresh])
        for index, event in fresh:
            checker.check(index, event)
        stored = _store(raw, head + 1, fresh)
        self.runner.apply(conn, stored, tracked)
        # Rules that need the whole batch in the projections (a rollback undoes it all).
        for index, event in fresh:
            for rule in self.rules.get(event.type, ()):
                rule(self, conn, index, event)
        return positions

    # --- read ---------------------------------------------------------------------------

    def read(self, start: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events from ``start`` on, in position order."""
        with self.store.read() as conn:
            return Store.select_events(conn, start, limit)

    def tail(self, start: int = 0, batch: int = 1000) -> Iterator[StoredEvent]:
        """Every event from ``start`` to the current head, fetched in batches."""
        while True:
            events = self.read(start, batch)
            if not events:
                return
            yield from events
            start = events[-1].position + 1

    def head(self) -> int:
        """Position of the newest event (-1 when empty)."""
        with self.store.read() as conn:
            return Store.max_position(conn)

    def last_event(self) -> StoredEvent | None:
        """The newest event, or None."""
        head = self.head()
        return None if head < 0 else self.read(head, 1)[0]

    def pseudonymizer(self, project: str) -> Pseudonymizer:
        """The keyed pseudonym function of ``project`` (its secret created on first use)."""
        pseudonymizer = self._pseudonymizers.get(project)
        if pseudonymizer is None:
            with self.store.read() as conn:
                secret = self.vault.stored_secret(conn, project)
            if secret is None:
                # Under the append lock: two processes creating it at once agree on one.
                with self.store.append_transaction() as conn:
                    secret = self.vault.project_secret(conn, project)
            pseudonymizer = self._pseudonymizers[project] = Pseudonymizer(secret)
        return pseudonymizer

    # --- projections ---------------------------------------------------------------------

    def rebuild(self, *, digest: bool = True) -> dict[str, object]:
        """Drop every projection and replay the whole log; return the count of events
        replayed and (unless ``digest=False``) the digest of the rebuilt projections."""
        with self.store.append_transaction() as conn:
            replayed = self.runner.rebuild(conn, Store.max_position(conn))
            result: dict[str, object] = {"events": replayed}
            if digest:
                result["digest"] = projection_digest(conn)
        for listener in self.rebuilt:
            listener()
        return result

    def projection_digest(self) -> str:
        """Digest of every projection table (equal digests, equal state)."""
        with self.store.read() as conn:
            return projection_digest(conn)


def _prepared(events: Sequence[NewEvent], trace_id: str | None) -> list[NewEvent]:
    """Each event validated (EventRejected for the first bad one), normalised and
    stamped with ``trace_id`` when it has none (before hashing: the leaf covers it)."""
    checked = []
    for index, event in enumerate(events):
        problem = validate_new(event)
        if problem is not None:
            raise EventRejected(index, event.event_id, event.type, *problem)
        event = normalised(event)
        if trace_id is not None and event.trace_id is None:
            event = event.model_copy(update={"trace_id": trace_id})
        checked.append(event)
    return checked


def _content(event: NewEvent) -> tuple[object, ...]:
    """What an event says, for the idempotency check: everything hashed but its position,
    its times and its trace id. A retry comes in another request, with another trace,
    and a writer that leaves ``occurred_at`` out gets the time of each request."""
    try:
        body, _ = canonical_text(event.body)
    except (ValueError, TypeError):
        body = repr(event.body)  # refused later with the field named; never equal
    return (
        event.type,
        event.schema_version,
        event.entity,
        event.actor,
        body,
        json.dumps(list(event.personal_refs)),
    )


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def _stored_by_id(
    raw: Raw, events: Sequence[NewEvent]
) -> dict[tuple[str, str], tuple[int, tuple[object, ...]]]:
    """Position and content of the events already in the log under the batch's
    (project, event id) pairs: event ids are scoped by project."""
    found: dict[tuple[str, str], tuple[int, tuple[object, ...]]] = {}
    by_project: dict[str, list[str]] = {}
    for event in events:
        by_project.setdefault(event.project, []).append(event.event_id)
    for project, ids in by_project.items():
        for chunk in _chunks(list(dict.fromkeys(ids))):
            for row in raw.all(
                "SELECT event_id, position, type, schema_version, entity, actor, body, "
                f"personal_refs FROM events WHERE project = ? AND event_id {raw.among(chunk)}",
                [project, *raw.among_params(chunk)],
            ):
                event_id, position, *content = row
                found[(project, event_id)] = (int(position), tuple(content))
    return found


EVENT_COLUMNS = (*ENVELOPE_COLUMNS, "body", "personal_refs", "trace_id", "leaf_hash")


def _store(raw: Raw, first: int, events: list[tuple[int, NewEvent]]) -> list[StoredEvent]:
    """Insert events (with their batch index) at positions ``first``, ``first+1``, ...
    with their leaf hashes."""
    if not events:
        return []
    recorded = now()
    rows, stored = [], []
    for offset, (index, e) in enumerate(events):
        position = first + offset
        try:
            body_json, as_is = canonical_text(e.body)
        except (ValueError, TypeError) as exc:
            raise EventRejected(
                index,
                e.event_id,
                e.type,
                "body",
                f"not representable as canonical JSON ({exc}); expected finite "
                "numbers, strings, booleans, null, lists and objects",
            ) from None
        envelope = (
            position,
            e.event_id,
            e.type,
            e.schema_version,
            e.project,
            e.entity,
            e.actor,
            e.occurred_at,
            recorded,
        )
        leaf = leaf_hash(canonical_event(*envelope, body_json, e.personal_refs, e.trace_id))
        refs = json.dumps(list(e.personal_refs))
        rows.append((*envelope, body_json, refs, e.trace_id, leaf))
        # Projections see the body exactly as a replay will read it back.
        body = e.body if as_is else loads(body_json)
        stored.append(
            StoredEvent(*envelope, body, tuple(e.personal_refs), e.trace_id, leaf, e.payload)
        )
    raw.insert("events", EVENT_COLUMNS, rows)
    raw.insert(
        "event_payloads",
        ("position", "payload"),
        [(s.position, s.payload) for s in stored if s.payload is not None],
    )
    return stored


def _node_or_none(make: Callable[[str, str, str], str], *parts: str) -> str | None:
    try:
        return make(*parts)
    except LedgerError:
        return None


@dataclass
class Checker:
    """Checks events against what the ledger (and the batch so far) already holds.

    Every reference an event makes is checked against the event's project: a run is
    known only to the project that started it (a run of another project is "unknown",
    so a writer learns nothing of it), and a dataset or model version of another
    project may be read (a run input, a derivation) only where that project granted
    access to the writing one (``project-access-granted``).
    """

    raw: Raw
    datasets: set[str] = field(default_factory=set)
    runs: dict[str, tuple[str, str]] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    deployments: dict[str, str] = field(default_factory=dict)
    served: dict[str, set[str]] = field(default_factory=dict)
    grants: dict[tuple[str, str], bool] = field(default_factory=dict)
    jobs: dict[str, str | None] = field(default_factory=dict)
    #: Runs and versions looked up and found absent (``prefetch``).
    absent: set[str] = field(default_factory=set)

    def prefetch(self, events: Sequence[NewEvent]) -> None:
        """Look up the runs and versions a batch names in one statement per table and
        chunk, rather than one per event: the checks below then answer from memory.
        Fields of the wrong type are left to the checks, which look them up alone."""
        runs: set[str] = set()
        versions: set[str] = set()
        for e in events:
            b = e.body
            if e.type.startswith("run-"):
                runs.add(e.entity)
            elif e.type in _VERSION_EVENTS:
                versions.add(e.entity)
            for name in ("parent_run", "produced_by", "run"):
                if isinstance(b.get(name), str):
                    runs.add(b[name])
            for name in ("inputs", "derived_from"):
                named = b.get(name)
                if isinstance(named, list):
                    versions.update(v for v in named if isinstance(v, str))
        for chunk in _chunks(sorted(runs - self.runs.keys())):
            rows = self.raw.all(
                f"SELECT id, project, status FROM cat_runs WHERE id {self.raw.among(chunk)}",
                self.raw.among_params(chunk),
            )
            for node, project, status in rows:
                self.runs[node] = (project, status)
            self.absent.update(set(chunk) - {r[0] for r in rows})
        for table, known in (("cat_datasets", self.datasets), ("cat_models", self.models)):
            wanted = sorted(v for v in versions if kind_of(v) == table[4:-1])
            for chunk in _chunks(wanted):
                found = {
                    r[0]
                    for r in self.raw.all(
                        f"SELECT id FROM {table} WHERE id {self.raw.among(chunk)}",
                        self.raw.among_params(chunk),
                    )
                }
                known.update(found)
                self.absent.update(set(chunk) - found)

    def dataset(self, node: str) -> bool:
        return node in self.datasets or (
            node not in self.absent
            and self.raw.one("SELECT 1 FROM cat_datasets WHERE id = ?", (node,)) is not None
        )

    def model(self, node: str) -> bool:
        return node in self.models or (
            node not in self.absent
            and self.raw.one("SELECT 1 FROM cat_models WHERE id = ?", (node,)) is not None
        )

    def run_status(self, node: str, project: str) -> str | None:
        """The status of run ``node`` if ``project`` started it, else None (unknown)."""
        if node not in self.runs:
            if node in self.absent:
                return None
            row = self.raw.one("SELECT project, status FROM cat_runs WHERE id = ?", (node,))
            if row is None:
                return None
            self.runs[node] = (row[0], row[1])
        owner, status = self.runs[node]
        return status if owner == project else None

    def run_taken(self, node: str) -> bool:
        """Whether any project already started a run with this id."""
        return node in self.runs or (
            node not in self.absent
            and self.raw.one("SELECT 1 FROM cat_runs WHERE id = ?", (node,)) is not None
        )

    def job_status(self, run: str) -> str | None:
        """The status of run ``run``'s job (``run_executions``), None before it is
        submitted. Ask only about a run of the event's project: its job is its own."""
        if run not in self.jobs:
            self.jobs[run] = self.raw.scalar(
                "SELECT status FROM run_executions WHERE run = ?", (run,)
            )
        return self.jobs[run]

    def granted(self, owner: str, grantee: str) -> bool:
        """Whether project ``owner`` grants ``grantee`` access to its versions now."""
        key = (owner, grantee)
        if key not in self.grants:
            self.grants[key] = (
                self.raw.one(
                    "SELECT 1 FROM project_grants WHERE project = ? AND grantee = ? "
                    "AND revoked_pos IS NULL",
                    key,
                )
                is not None
            )
        return self.grants[key]

    def readable(self, node: str, project: str) -> bool:
        """Whether a dataset or model version may be referenced from ``project``."""
        owner = NodeId.parse(node).project
        return owner == project or (owner is not None and self.granted(owner, project))

    def deployment_status(self, node: str) -> str | None:
        if node not in self.deployments:
            status = self.raw.scalar("SELECT status FROM cat_deployments WHERE id = ?", (node,))
            if status is None:
                return None
            self.deployments[node] = status
        return self.deployments[node]

    def served_by(self, deployment: str) -> set[str]:
        if deployment not in self.served:
            self.served[deployment] = {
                r[0]
                for r in self.raw.all(
                    "SELECT DISTINCT model FROM deployment_history WHERE deployment = ?",
                    (deployment,),
                )
            }
        return self.served[deployment]

    def check(self, index: int, e: NewEvent) -> None:
        """Raise EventRejected for the first rule ``e`` breaks; else note what it adds."""
        rule = _EVENT_CHECKS.get(e.type)
        if rule is not None:
            rule(_EventCheck(self, index, e))


@dataclass(frozen=True)
class _EventCheck:
    """One event under check: what the per-type checks below share."""

    checker: Checker
    index: int
    e: NewEvent

    def reject(self, where: str, message: str) -> None:
        e = self.e
        raise EventRejected(self.index, e.event_id, e.type, where, message)

    def versions(self, where: str, nodes: Sequence[str]) -> None:
        """Every dataset or model version in ``nodes`` is known and readable here."""
        c, project = self.checker, self.e.project
        for j, node in enumerate(nodes):
            kind = kind_of(node)
            known = c.dataset(node) if kind == "dataset" else c.model(node)
            if not known:
                self.reject(f"{where}.{j}", f"unknown {kind} version {node}")
            if not c.readable(node, project):
                self.reject(
                    f"{where}.{j}",
                    f"{node} belongs to project {NodeId.parse(node).project!r}, which "
                    f"grants project {project!r} no access; expected a version of "
                    f"{project!r} (or ask that project's admin for a grant)",
                )

    def own_run(self, where: str, run: str) -> None:
        if self.checker.run_status(run, self.e.project) is None:
            self.reject(where, f"unknown run {run} in project {self.e.project!r}")

    def named_as_entity(self, make: Callable[[str, str, str], str]) -> None:
        """The body's name and version make the event's entity id."""
        e, b = self.e, self.e.body
        if _node_or_none(make, e.project, b["name"], b["version"]) != e.entity:
            self.reject(
                "body.name",
                f"name/version {b['name']}@{b['version']} are not valid or "
                f"do not match entity {e.entity}",
            )


#: Events whose entity is a dataset or model version (``Checker.prefetch``).
_VERSION_EVENTS = frozenset(
    {"dataset-version-registered", "model-version-registered", "dataset-records-added"}
)


def _version_registered(c: _EventCheck) -> None:
    """A new dataset or model version, named as its entity, made by a run of this
    project (a dataset version also from versions it may read)."""
    e, b = c.e, c.e.body
    dataset = e.type == "dataset-version-registered"
    if (c.checker.dataset if dataset else c.checker.model)(e.entity):
        c.reject(
            "entity",
            f"dataset version {e.entity} is already registered; versions "
            "are immutable, expected a new version label"
            if dataset
            else f"model version {e.entity} is already registered; expected a new version label",
        )
    c.named_as_entity(dataset_id if dataset else model_id)
    if dataset:
        c.versions("body.derived_from", b.get("derived_from", []))
    run_field = "produced_by" if dataset else "run"
    if b.get(run_field):
        c.own_run(f"body.{run_field}", b[run_field])
    (c.checker.datasets if dataset else c.checker.models).add(e.entity)


def _dataset_records_added(c: _EventCheck) -> None:
    if not c.checker.dataset(c.e.entity):
        c.reject("entity", f"unknown dataset version {c.e.entity}; register it first")


def _run_started(c: _EventCheck) -> None:
    e = c.e
    if c.checker.run_taken(e.entity):
        c.reject("entity", f"run {e.entity} was already started; expected a new run id")
    parent = e.body.get("parent_run")
    if parent:
        c.own_run("body.parent_run", parent)
    c.checker.runs[e.entity] = (e.project, "running")


def _run_event(c: _EventCheck) -> None:
    """An event on a running run of this project; completion and failure end it."""
    e = c.e
    status = c.checker.run_status(e.entity, e.project)
    if status is None:
        c.reject(
            "entity",
            f"unknown run {e.entity} in project {e.project!r}; expected a started run",
        )
    if status != "running":
        c.reject("entity", f"run {e.entity} has already ended ({status}); expected a running run")
    c.versions("body.inputs", e.body.get("inputs", []))
    if e.type in ("run-completed", "run-failed"):
        ended = "completed" if e.type == "run-completed" else "failed"
        c.checker.runs[e.entity] = (e.project, ended)


#: The statuses a job ends in, by the event that ends it.
_JOB_ENDS = {"job-succeeded": "succeeded", "job-failed": "failed", "job-cancelled": "cancelled"}
#: The status each other job event leaves the job in.
_JOB_STATUS = {
    "job-submitted": "submitted",
    "job-scheduled": "scheduled",
    "job-started": "running",
    "job-attempt-failed": "retrying",
    **_JOB_ENDS,
}


def _job_event(c: _EventCheck) -> None:
    """An event of the job executing a run of this project. The job is submitted once,
    while its run runs; every other job event follows the submission, and none follows
    the job's end. The platform may report after the run ended: those are accepted."""
    e = c.e
    run_status = c.checker.run_status(e.entity, e.project)
    if run_status is None:
        c.reject(
            "entity",
            f"unknown run {e.entity} in project {e.project!r}; expected a run this project "
            "started (a job event is an event of the run its job executes)",
        )
    job = c.checker.job_status(e.entity)
    if e.type == "job-submitted":
        if job is not None:
            c.reject(
                "entity",
                f"the job of run {e.entity} in project {e.project!r} was already submitted "
                f"(now {job}); expected one job-submitted event per run",
            )
        if run_status != "running":
            c.reject(
                "entity",
                f"run {e.entity} in project {e.project!r} has already ended ({run_status}); "
                "expected a running run to submit its job",
            )
    elif job is None:
        c.reject(
            "entity",
            f"no job of run {e.entity} was submitted in project {e.project!r}; expected a "
            f"job-submitted event for the run before {e.type}",
        )
    elif job in _JOB_ENDS.values():
        c.reject(
            "entity",
            f"the job of run {e.entity} in project {e.project!r} has already ended ({job}); "
            f"expected no job event after its end (a retry of that event keeps its event id)",
        )
    c.checker.jobs[e.entity] = _JOB_STATUS[e.type]


def _openlineage_run_event(c: _EventCheck) -> None:
    # The run itself is started (or known) in the same batch, in this project.
    e = c.e
    if c.checker.run_taken(e.entity) and c.checker.run_status(e.entity, e.project) is None:
        c.reject(
            "entity",
            f"run {e.entity} belongs to another project; expected a run id of this project",
        )


def _model_alias_moved(c: _EventCheck) -> None:
    if not c.checker.model(c.e.entity):
        c.reject("entity", f"unknown model version {c.e.entity}")


def _deployment_configured(c: _EventCheck) -> None:
    e = c.e
    for j, served in enumerate(e.body["served"]):
        if NodeId.parse(served["model"]).project != e.project:
            c.reject(
                f"body.served.{j}.model",
                f"belongs to another project; expected a model version of {e.project!r}",
            )
        if not c.checker.model(served["model"]):
            c.reject(f"body.served.{j}.model", f"unknown model version {served['model']}")
    c.checker.deployments[e.entity] = "active"
    c.checker.served_by(e.entity).update(s["model"] for s in e.body["served"])


def _deployment_retired(c: _EventCheck) -> None:
    e = c.e
    status = c.checker.deployment_status(e.entity)
    if status != "active":
        c.reject(
            "entity",
            f"deployment {e.entity} is "
            f"{'unknown' if status is None else status}; expected an active one",
        )
    c.checker.deployments[e.entity] = "retired"


def _deployment_drifted(c: _EventCheck) -> None:
    """A change made outside the ledger to what serves a deployment of this project: the
    deployment must exist (configured before)."""
    e = c.e
    if c.checker.deployment_status(e.entity) is None:
        c.reject(
            "entity",
            f"unknown deployment {e.entity} in project {e.project!r}; expected a deployment "
            "configured before it drifted",
        )
    if NodeId.parse(e.body["model"]).project != e.project:
        c.reject("body.model", f"belongs to another project; expected a model of {e.project!r}")


def _predictions_logged(c: _EventCheck) -> None:
    e = c.e
    if c.checker.deployment_status(e.entity) is None:
        c.reject("entity", f"unknown deployment {e.entity}; configure it first")
    served = c.checker.served_by(e.entity)
    for j, model in enumerate(e.body["models"]):
        if model not in served:
            c.reject(
                f"body.models.{j}",
                f"{model} was never served by {e.entity}; "
                "expected a model version from its configuration",
            )


def _project_access(c: _EventCheck) -> None:
    e = c.e
    grantee = e.body["grantee"]
    if grantee == e.project:
        c.reject("body.grantee", "a project always reads itself; expected another project")
    granting = e.type == "project-access-granted"
    active = c.checker.granted(e.project, grantee)
    if granting and active:
        c.reject("body.grantee", f"project {grantee!r} already has access")
    if not granting and not active:
        c.reject("body.grantee", f"project {grantee!r} has no access to revoke")
    c.checker.grants[(e.project, grantee)] = granting


#: The check each event type must pass against what the ledger already holds.
_EVENT_CHECKS: dict[str, Callable[[_EventCheck], None]] = {
    "dataset-version-registered": _version_registered,
    "dataset-records-added": _dataset_records_added,
    "run-started": _run_started,
    "run-inputs-used": _run_event,
    "run-params-logged": _run_event,
    "run-metrics-logged": _run_event,
    "run-completed": _run_event,
    "run-failed": _run_event,
    "openlineage-run-event": _openlineage_run_event,
    "model-version-registered": _version_registered,
    "model-alias-moved": _model_alias_moved,
    "deployment-configured": _deployment_configured,
    "deployment-retired": _deployment_retired,
    "deployment-drifted": _deployment_drifted,
    "predictions-logged": _predictions_logged,
    "project-access-granted": _project_access,
    "project-access-revoked": _project_access,
    **{job: _job_event for job in _JOB_STATUS},
}
