"""The ledger: the one write path (``Ledger.append``) and reads of the log.

An append is one transaction holding the append lock: it skips events whose
``event_id`` is already in the log (idempotency), checks every new event
against the projections and the events before it in the batch, assigns
gap-free positions, stores each event (stamped with the caller's trace id) with
its RFC 6962 leaf hash, brings every projection up to date and records their
tracking positions, then commits. Any failure rolls the whole batch back:
nothing is half-written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import Span
from sqlalchemy import Connection

from registry.canonical import canonical_text, leaf_hash, loads
from registry.errors import EventRejected, LedgerError
from registry.events import NewEvent, StoredEvent, canonical_event, normalised, validate_new
from registry.ids import NodeId, dataset_id, model_id
from registry.store import Store, open_store
from registry.store.raw import Raw, placeholders
from registry.timeutil import now
from registry.tracing import current_trace_id, span
from registry.vault import KeyRing, Pseudonymizer, Vault

CHUNK = 500


class Ledger:
    """The log, its projections and the vault, over one store."""

    def __init__(self, store: Store, keyring: KeyRing | None = None):
        from lineage.graph import LineageGraph
        from lineage.projections import ProjectionRunner

        self.store = store
        self.vault = Vault(keyring or KeyRing.load(store.url))
        self.runner = ProjectionRunner()
        self.graph = LineageGraph(store)
        self._pseudonymizers: dict[str, Pseudonymizer] = {}

    @classmethod
    def open(cls, url: str | None = None) -> Ledger:
        """Open the ledger at ``url`` (``MLLEDGER_DB`` or the default SQLite file)."""
        return cls(open_store(url))

    def close(self) -> None:
        self.store.dispose()

    # --- write --------------------------------------------------------------------------

    def append(
        self, events: Sequence[NewEvent], before_commit: Callable[[Connection], None] | None = None
    ) -> list[int]:
        """Append a batch atomically; return each event's position.

        An event whose ``event_id`` is already in the log is not written again:
        its original position is returned. ``before_commit`` runs inside the
        transaction, for writes that must stand or fall with the events (vault).
        An event without a ``trace_id`` gets the trace id of the caller's current
        span, if any (``registry.tracing``), before it is hashed.
        """
        # The trace of the caller (a request, a job's span), taken before our own span.
        trace_id = current_trace_id()
        with span("ledger.append", **{"mlledger.events": len(events)}) as current:
            return self._append(events, trace_id, before_commit, current)

    def _append(
        self,
        events: Sequence[NewEvent],
        trace_id: str | None,
        before_commit: Callable[[Connection], None] | None,
        current: Span,
    ) -> list[int]:
        events = _prepared(events, trace_id)
        if not events:
            return []
        if current.is_recording():
            current.set_attribute("mlledger.projects", sorted({e.project for e in events}))
        with self.store.append_transaction() as conn:
            positions = self._locked(conn, events, current)
            if before_commit is not None:
                before_commit(conn)
        return positions

    def append_locked(self, conn: Connection, events: Sequence[NewEvent]) -> list[int]:
        """Append a batch inside a transaction the caller opened with
        ``store.append_transaction()`` (an erasure: its deletions and its event commit
        together); same checks and idempotency as ``append``."""
        trace_id = current_trace_id()
        with span("ledger.append", **{"mlledger.events": len(events)}) as current:
            prepared = _prepared(events, trace_id)
            return self._locked(conn, prepared, current) if prepared else []

    def _locked(self, conn: Connection, events: list[NewEvent], current: Span) -> list[int]:
        """The part of an append that runs under the append lock."""
        raw = Raw(conn)
        head = raw.scalar("SELECT MAX(position) FROM events")
        head = -1 if head is None else int(head)
        tracked = self.runner.positions(conn)
        if min(tracked.values()) < head:  # a projection lags (new, or emptied): catch up
            self.runner.catch_up(conn, head, tracked)
            tracked = self.runner.positions(conn)
        known = _positions_of(raw, [e.event_id for e in events])
        positions: list[int] = []
        fresh: list[tuple[int, NewEvent]] = []
        next_position = head + 1
        for index, event in enumerate(events):
            if event.event_id in known:
                positions.append(known[event.event_id])
                continue
            known[event.event_id] = next_position
            positions.append(next_position)
            fresh.append((index, event))
            next_position += 1
        if current.is_recording():
            current.set_attribute("mlledger.first_position", head + 1)
            current.set_attribute("mlledger.appended", len(fresh))
        checker = Checker(raw)
        for index, event in fresh:
            checker.check(index, event)
        stored = _store(raw, head + 1, fresh)
        self.runner.apply(conn, stored, tracked)
        # Rules that need the whole batch in the projections (a rollback undoes it all).
        for index, event in fresh:
            if event.type == "erasure-remediated":
                from audit.erasure import check_remediation

                check_remediation(self, conn, index, event)
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
        from lineage.projections import projection_digest

        with self.store.append_transaction() as conn:
            replayed = self.runner.rebuild(conn, Store.max_position(conn))
            result: dict[str, object] = {"events": replayed}
            if digest:
                result["digest"] = projection_digest(conn)
        self.graph.invalidate()
        return result

    def projection_digest(self) -> str:
        """Digest of every projection table (equal digests, equal state)."""
        from lineage.projections import projection_digest

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


def _positions_of(raw: Raw, event_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(event_ids))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        found.update(
            raw.all(
                "SELECT event_id, position FROM events WHERE event_id IN "
                f"({placeholders(len(chunk))})",
                chunk,
            )
        )
    return found


EVENT_INSERT = (
    "INSERT INTO events (position, event_id, type, schema_version, project, entity, actor, "
    "occurred_at, recorded_at, body, personal_refs, trace_id, leaf_hash) "
    f"VALUES ({placeholders(13)})"
)


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
    raw.many(EVENT_INSERT, rows)
    raw.many(
        "INSERT INTO event_payloads (position, payload) VALUES (?, ?)",
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
    """Checks events against what the ledger (and the batch so far) already holds."""

    raw: Raw
    datasets: set[str] = field(default_factory=set)
    runs: dict[str, str] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    deployments: dict[str, str] = field(default_factory=dict)
    served: dict[str, set[str]] = field(default_factory=dict)

    def dataset(self, node: str) -> bool:
        return (
            node in self.datasets
            or self.raw.one("SELECT 1 FROM cat_datasets WHERE id = ?", (node,)) is not None
        )

    def model(self, node: str) -> bool:
        return (
            node in self.models
            or self.raw.one("SELECT 1 FROM cat_models WHERE id = ?", (node,)) is not None
        )

    def run_status(self, node: str) -> str | None:
        if node not in self.runs:
            status = self.raw.scalar("SELECT status FROM cat_runs WHERE id = ?", (node,))
            if status is None:
                return None
            self.runs[node] = status
        return self.runs[node]

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

        def reject(where: str, message: str) -> None:
            raise EventRejected(index, e.event_id, e.type, where, message)

        b = e.body
        kind = e.type
        if kind == "dataset-version-registered":
            if self.dataset(e.entity):
                reject(
                    "entity",
                    f"dataset version {e.entity} is already registered; versions "
                    "are immutable, expected a new version label",
                )
            if _node_or_none(dataset_id, e.project, b["name"], b["version"]) != e.entity:
                reject(
                    "body.name",
                    f"name/version {b['name']}@{b['version']} are not valid or "
                    f"do not match entity {e.entity}",
                )
            for j, parent in enumerate(b.get("derived_from", [])):
                if not self.dataset(parent):
                    reject(
                        f"body.derived_from.{j}",
                        f"unknown dataset version {parent}; expected one registered earlier",
                    )
            if b.get("produced_by") and self.run_status(b["produced_by"]) is None:
                reject("body.produced_by", f"unknown run {b['produced_by']}")
            self.datasets.add(e.entity)
        elif kind == "dataset-records-added":
            if not self.dataset(e.entity):
                reject("entity", f"unknown dataset version {e.entity}; register it first")
        elif kind == "run-started":
            if self.run_status(e.entity) is not None:
                reject("entity", f"run {e.entity} was already started")
            parent = b.get("parent_run")
            if parent and self.run_status(parent) is None:
                reject("body.parent_run", f"unknown run {parent}")
            self.runs[e.entity] = "running"
        elif kind in (
            "run-inputs-used",
            "run-params-logged",
            "run-metrics-logged",
            "run-completed",
            "run-failed",
        ):
            status = self.run_status(e.entity)
            if status is None:
                reject("entity", f"unknown run {e.entity}; expected a started run")
            if status != "running":
                reject(
                    "entity", f"run {e.entity} has already ended ({status}); expected a running run"
                )
            for j, node in enumerate(b.get("inputs", [])):
                known = self.dataset(node) if node.startswith("dataset:") else self.model(node)
                if not known:
                    reject(f"body.inputs.{j}", f"unknown {node.split(':')[0]} version {node}")
            if kind in ("run-completed", "run-failed"):
                self.runs[e.entity] = "completed" if kind == "run-completed" else "failed"
        elif kind == "model-version-registered":
            if self.model(e.entity):
                reject(
                    "entity",
                    f"model version {e.entity} is already registered; expected a new version label",
                )
            if _node_or_none(model_id, e.project, b["name"], b["version"]) != e.entity:
                reject(
                    "body.name",
                    f"name/version {b['name']}@{b['version']} are not valid or "
                    f"do not match entity {e.entity}",
                )
            if b.get("run") and self.run_status(b["run"]) is None:
                reject("body.run", f"unknown run {b['run']}")
            self.models.add(e.entity)
        elif kind == "model-alias-moved":
            if not self.model(e.entity):
                reject("entity", f"unknown model version {e.entity}")
        elif kind == "deployment-configured":
            for j, served in enumerate(b["served"]):
                if not self.model(served["model"]):
                    reject(f"body.served.{j}.model", f"unknown model version {served['model']}")
                if NodeId.parse(served["model"]).project != e.project:
                    reject(f"body.served.{j}.model", "belongs to another project")
            self.deployments[e.entity] = "active"
            self.served_by(e.entity).update(s["model"] for s in b["served"])
        elif kind == "deployment-retired":
            status = self.deployment_status(e.entity)
            if status != "active":
                reject(
                    "entity",
                    f"deployment {e.entity} is "
                    f"{'unknown' if status is None else status}; expected an active one",
                )
            self.deployments[e.entity] = "retired"
        elif kind == "predictions-logged":
            if self.deployment_status(e.entity) is None:
                reject("entity", f"unknown deployment {e.entity}; configure it first")
            served = self.served_by(e.entity)
            for j, model in enumerate(b["models"]):
                if model not in served:
                    reject(
                        f"body.models.{j}",
                        f"{model} was never served by {e.entity}; "
                        "expected a model version from its configuration",
                    )
