"""Projections: deterministic functions of the log, each with a tracking position.

Every projection applies events in position order and records the last
position it applied in ``projection_tracking`` *in the same transaction* as
its update, so each event is applied exactly once, however the runner stops.
``ProjectionRunner.catch_up`` brings every projection to the head of the log;
the ledger runs it inside each append transaction (read-your-writes), and
``rebuild`` empties the tables and replays the whole log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update

from registry.events import StoredEvent, upcast
from registry.ids import NodeId
from registry.store.schema import PROJECTION_TABLES, T

Handler = Callable[[Connection, StoredEvent], None]
BATCH = 2_000


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Projection:
    """A named view of the log: the tables it owns and a handler per event type."""

    name: str = ""
    tables: tuple[str, ...] = ()

    def handlers(self) -> dict[str, Handler]:
        raise NotImplementedError

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        handlers = self.handlers()
        for event in events:
            handler = handlers.get(event.type)
            if handler is not None:
                handler(conn, event)


# --- catalogue ---------------------------------------------------------------------------


class Catalogue(Projection):
    """Datasets, runs, models (with alias history) and deployments (with serving history)."""

    name = "catalogue"
    tables = ("cat_datasets", "cat_runs", "cat_models", "alias_history", "cat_deployments",
              "deployment_history")

    def handlers(self) -> dict[str, Handler]:
        return {
            "dataset-version-registered": self._dataset,
            "run-started": self._run_started,
            "run-params-logged": self._params,
            "run-metrics-logged": self._metrics,
            "run-completed": self._run_ended,
            "run-failed": self._run_ended,
            "model-version-registered": self._model,
            "model-alias-moved": self._alias,
            "deployment-configured": self._deployment,
            "deployment-retired": self._retired,
        }

    def _dataset(self, conn: Connection, e: StoredEvent) -> None:
        b = e.body
        conn.execute(insert(T["cat_datasets"]).values(
            id=e.entity, project=e.project, name=b["name"], version=b["version"],
            digest=b["digest"], uri=b["uri"],
            schema=None if b.get("schema") is None else _dumps(b["schema"]),
            row_count=b.get("row_count"), produced_by=b.get("produced_by"),
            derived_from=_dumps(b.get("derived_from", [])), tags=_dumps(b.get("tags", {})),
            registered_at=e.occurred_at, position=e.position))

    def _run_started(self, conn: Connection, e: StoredEvent) -> None:
        b = e.body
        conn.execute(insert(T["cat_runs"]).values(
            id=e.entity, project=e.project, job=b["job"], status="running",
            params=_dumps(b.get("params", {})), metrics=_dumps({}), code=_dumps(b.get("code", {})),
            environment=_dumps(b.get("environment", {})), tags=_dumps(b.get("tags", {})),
            parent_run=b.get("parent_run"), actor=e.actor, started_at=e.occurred_at,
            position=e.position))

    def _merge(self, conn: Connection, run: str, column: str, change: dict[str, Any]) -> None:
        runs = T["cat_runs"]
        current = json.loads(conn.execute(select(runs.c[column]).where(runs.c.id == run)).scalar_one())
        current.update(change)
        conn.execute(update(runs).where(runs.c.id == run).values({column: _dumps(current)}))

    def _params(self, conn: Connection, e: StoredEvent) -> None:
        self._merge(conn, e.entity, "params", e.body["params"])

    def _metrics(self, conn: Connection, e: StoredEvent) -> None:
        # The catalogue keeps the latest value of each metric; the log keeps every one.
        self._merge(conn, e.entity, "metrics", {m["key"]: m["value"] for m in e.body["metrics"]})

    def _run_ended(self, conn: Connection, e: StoredEvent) -> None:
        runs = T["cat_runs"]
        conn.execute(update(runs).where(runs.c.id == e.entity).values(
            status="completed" if e.type == "run-completed" else "failed",
            ended_at=e.occurred_at, error_type=e.body.get("error_type")))

    def _model(self, conn: Connection, e: StoredEvent) -> None:
        b = e.body
        conn.execute(insert(T["cat_models"]).values(
            id=e.entity, project=e.project, name=b["name"], version=b["version"], run=b.get("run"),
            artifact_uri=b["artifact_uri"], artifact_digest=b["artifact_digest"],
            framework=b.get("framework"), tags=_dumps(b.get("tags", {})),
            registered_at=e.occurred_at, position=e.position))

    def _alias(self, conn: Connection, e: StoredEvent) -> None:
        node = NodeId.parse(e.entity)
        hist = T["alias_history"]
        same = and_(hist.c.project == e.project, hist.c.name == node.name,
                    hist.c.alias == e.body["alias"], hist.c.valid_to.is_(None))
        conn.execute(update(hist).where(same).values(valid_to=e.occurred_at, closed_pos=e.position))
        conn.execute(insert(hist).values(
            opened_pos=e.position, project=e.project, name=node.name, alias=e.body["alias"],
            model=e.entity, moved_by=e.actor, valid_from=e.occurred_at))

    def _close_serving(self, conn: Connection, e: StoredEvent) -> None:
        hist = T["deployment_history"]
        conn.execute(update(hist).where(hist.c.deployment == e.entity, hist.c.valid_to.is_(None))
                     .values(valid_to=e.occurred_at, closed_pos=e.position))

    def _deployment(self, conn: Connection, e: StoredEvent) -> None:
        deps, hist = T["cat_deployments"], T["deployment_history"]
        b = e.body
        self._close_serving(conn, e)
        conn.execute(insert(hist), [
            {"deployment": e.entity, "opened_pos": e.position, "model": s["model"],
             "traffic": s["traffic"], "endpoint": b["endpoint"], "valid_from": e.occurred_at}
            for s in b["served"]])
        values = {"endpoint": b["endpoint"], "status": "active", "served": _dumps(b["served"]),
                  "updated_at": e.occurred_at, "position": e.position}
        changed = conn.execute(update(deps).where(deps.c.id == e.entity).values(values)).rowcount
        if not changed:
            conn.execute(insert(deps).values(id=e.entity, project=e.project,
                                              name=NodeId.parse(e.entity).name,
                                              created_at=e.occurred_at, **values))

    def _retired(self, conn: Connection, e: StoredEvent) -> None:
        deps = T["cat_deployments"]
        self._close_serving(conn, e)
        conn.execute(update(deps).where(deps.c.id == e.entity).values(
            status="retired", served=_dumps([]), updated_at=e.occurred_at, position=e.position))


# --- record index ---------------------------------------------------------------------------


class RecordIndex(Projection):
    """Dataset version <-> record pseudonym <-> subject pseudonym."""

    name = "record_index"
    tables = ("record_index", "dataset_record_counts")

    def handlers(self) -> dict[str, Handler]:
        return {"dataset-records-added": self._records}

    def _records(self, conn: Connection, e: StoredEvent) -> None:
        table = T["record_index"]
        records, subjects = e.body["records"], e.body["subjects"]
        existing: set[str] = set()
        # A record listed twice for one version stays one membership row.
        for start in range(0, len(records), BATCH):
            chunk = records[start:start + BATCH]
            existing.update(conn.execute(select(table.c.record).where(
                table.c.dataset == e.entity, table.c.record.in_(chunk))).scalars())
        rows = []
        for record, subject in zip(records, subjects, strict=True):
            if record not in existing:
                existing.add(record)
                rows.append({"dataset": e.entity, "record": record, "project": e.project,
                             "subject": subject, "position": e.position})
        if not rows:
            return
        conn.execute(insert(table), rows)
        counts = T["dataset_record_counts"]
        current = conn.execute(select(counts.c.records).where(counts.c.dataset == e.entity)).scalar()
        if current is None:
            conn.execute(insert(counts).values(dataset=e.entity, records=len(rows)))
        else:
            conn.execute(update(counts).where(counts.c.dataset == e.entity)
                         .values(records=current + len(rows)))


# --- prediction index -------------------------------------------------------------------------


class PredictionIndex(Projection):
    """Every prediction by record pseudonym, and counts per deployment and model version."""

    name = "prediction_index"
    tables = ("prediction_index", "prediction_counts")

    def handlers(self) -> dict[str, Handler]:
        return {"predictions-logged": self._predictions}

    def _predictions(self, conn: Connection, e: StoredEvent) -> None:
        b = e.body
        models = b["models"]
        traces = b.get("trace_id") or [None] * len(b["record"])
        dumps = json.dumps
        rows = [
            {"position": e.position, "seq": seq, "project": e.project, "record": record,
             "deployment": e.entity, "model": models[m], "at": at,
             "output": dumps(output, separators=(",", ":")), "trace_id": trace}
            for seq, (record, m, output, at, trace) in enumerate(
                zip(b["record"], b["model"], b["output"], b["at"], traces, strict=True))
        ]
        conn.execute(insert(T["prediction_index"]), rows)
        counts: dict[str, list[Any]] = {}
        for m, at in zip(b["model"], b["at"], strict=True):
            entry = counts.get(models[m])
            if entry is None:
                counts[models[m]] = [1, at, at]
            else:
                entry[0] += 1
                entry[1] = min(entry[1], at)
                entry[2] = max(entry[2], at)
        table = T["prediction_counts"]
        for model, (n, first, last) in sorted(counts.items()):
            key = and_(table.c.deployment == e.entity, table.c.model == model)
            row = conn.execute(select(table.c.n, table.c.first_at, table.c.last_at).where(key)).first()
            if row is None:
                conn.execute(insert(table).values(deployment=e.entity, model=model, n=n,
                                                  first_at=first, last_at=last))
            else:
                conn.execute(update(table).where(key).values(
                    n=row.n + n, first_at=min(row.first_at, first), last_at=max(row.last_at, last)))


# --- lineage graph (persisted edges) --------------------------------------------------------


class LineageEdges(Projection):
    """Nodes and edges of the lineage graph, each edge with a validity interval.

    Edges point downstream: dataset -> derived dataset ("derived"), dataset or
    model -> run ("input"), run -> dataset or model ("output"), model ->
    deployment ("serves"), parent run -> child run ("child"). The in-memory
    networkx graph in ``lineage.graph`` is loaded from these tables.
    """

    name = "lineage"
    tables = ("lineage_nodes", "lineage_edges")

    def handlers(self) -> dict[str, Handler]:
        return {
            "dataset-version-registered": self._dataset,
            "run-started": self._run,
            "run-inputs-used": self._inputs,
            "model-version-registered": self._model,
            "deployment-configured": self._deployment,
            "deployment-retired": self._retired,
        }

    def _node(self, conn: Connection, e: StoredEvent, label: str) -> None:
        nodes = T["lineage_nodes"]
        if conn.execute(select(nodes.c.id).where(nodes.c.id == e.entity)).first() is None:
            kind = e.entity.split(":", 1)[0]
            conn.execute(insert(nodes).values(id=e.entity, kind=kind,
                                              project=e.project, label=label,
                                              created_at=e.occurred_at, position=e.position))

    def _open(self, conn: Connection, e: StoredEvent, edges: list[tuple[str, str, str]]) -> None:
        table = T["lineage_edges"]
        rows = []
        for src, dst, kind in edges:
            already = conn.execute(select(table.c.src).where(
                table.c.src == src, table.c.dst == dst, table.c.kind == kind,
                table.c.valid_to.is_(None))).first()
            if already is None:
                rows.append({"src": src, "dst": dst, "kind": kind, "opened_pos": e.position,
                             "valid_from": e.occurred_at})
        if rows:
            conn.execute(insert(table), rows)

    def _dataset(self, conn: Connection, e: StoredEvent) -> None:
        b = e.body
        self._node(conn, e, f"{b['name']}@{b['version']}")
        edges = [(parent, e.entity, "derived") for parent in b.get("derived_from", [])]
        if b.get("produced_by"):
            edges.append((b["produced_by"], e.entity, "output"))
        self._open(conn, e, edges)

    def _run(self, conn: Connection, e: StoredEvent) -> None:
        self._node(conn, e, e.body["job"])
        if e.body.get("parent_run"):
            self._open(conn, e, [(e.body["parent_run"], e.entity, "child")])

    def _inputs(self, conn: Connection, e: StoredEvent) -> None:
        self._open(conn, e, [(src, e.entity, "input") for src in e.body["inputs"]])

    def _model(self, conn: Connection, e: StoredEvent) -> None:
        b = e.body
        self._node(conn, e, f"{b['name']}@{b['version']}")
        if b.get("run"):
            self._open(conn, e, [(b["run"], e.entity, "output")])

    def _close(self, conn: Connection, e: StoredEvent, keep: set[str]) -> None:
        table = T["lineage_edges"]
        open_edges = conn.execute(select(table.c.src).where(
            table.c.dst == e.entity, table.c.kind == "serves", table.c.valid_to.is_(None))).scalars()
        for src in [s for s in open_edges if s not in keep]:
            conn.execute(update(table).where(
                table.c.src == src, table.c.dst == e.entity, table.c.kind == "serves",
                table.c.valid_to.is_(None)).values(valid_to=e.occurred_at, closed_pos=e.position))

    def _deployment(self, conn: Connection, e: StoredEvent) -> None:
        self._node(conn, e, NodeId.parse(e.entity).name)
        served = {s["model"] for s in e.body["served"]}
        self._close(conn, e, served)
        self._open(conn, e, [(model, e.entity, "serves") for model in sorted(served)])

    def _retired(self, conn: Connection, e: StoredEvent) -> None:
        self._close(conn, e, set())


PROJECTIONS: tuple[Projection, ...] = (Catalogue(), RecordIndex(), PredictionIndex(), LineageEdges())


class ProjectionRunner:
    """Keeps every projection at the head of the log, exactly once."""

    def __init__(self, projections: Sequence[Projection] = PROJECTIONS):
        self.projections = tuple(projections)

    def positions(self, conn: Connection) -> dict[str, int]:
        """Tracking position of each projection (-1: nothing applied)."""
        table = T["projection_tracking"]
        stored = dict(conn.execute(select(table.c.name, table.c.position)).tuples().all())
        return {p.name: int(stored.get(p.name, -1)) for p in self.projections}

    def _track(self, conn: Connection, name: str, position: int, known: bool) -> None:
        table = T["projection_tracking"]
        if known:
            conn.execute(update(table).where(table.c.name == name).values(position=position))
        else:
            conn.execute(insert(table).values(name=name, position=position))

    def apply(self, conn: Connection, events: Sequence[StoredEvent],
              positions: dict[str, int] | None = None) -> None:
        """Apply events (contiguous, in order) to every projection not past them."""
        if not events:
            return
        if positions is None:
            positions = self.positions(conn)
        known = set(conn.execute(select(T["projection_tracking"].c.name)).scalars())
        events = [_current(e) for e in events]
        for projection in self.projections:
            done = positions[projection.name]
            todo = [e for e in events if e.position > done]
            if todo:
                projection.apply(conn, todo)
                self._track(conn, projection.name, todo[-1].position, projection.name in known)

    def catch_up(self, conn: Connection, head: int) -> int:
        """Apply every event up to ``head`` not yet applied; return how many were read."""
        from registry.store.base import Store

        positions = self.positions(conn)
        start = min(positions.values()) + 1
        read = 0
        while start <= head:
            events = Store.select_events(conn, start, limit=BATCH, stop=head + 1)
            if not events:
                break
            self.apply(conn, events, positions)
            for projection in self.projections:
                positions[projection.name] = max(positions[projection.name], events[-1].position)
            read += len(events)
            start = events[-1].position + 1
        return read

    def reset(self, conn: Connection) -> None:
        """Empty every projection table and forget the tracking positions."""
        for projection in self.projections:
            for table in projection.tables:
                conn.execute(delete(T[table]))
        conn.execute(delete(T["projection_tracking"]))


def _current(event: StoredEvent) -> StoredEvent:
    """The event with its body upcast to the current schema version."""
    from registry.events import CATALOGUE

    if event.schema_version == CATALOGUE[event.type].schema_version:
        return event
    from dataclasses import replace

    return replace(event, body=upcast(event.type, event.schema_version, event.body))


def projection_digest(conn: Connection) -> str:
    """SHA-256 over every projection row in a fixed order: equal digests, equal state."""
    digest = hashlib.sha256()
    for name, order in PROJECTION_TABLES.items():
        table = T[name]
        digest.update(name.encode() + b"\x00")
        columns = sorted(table.c.keys())
        query = select(*[table.c[c] for c in columns]).order_by(*[table.c[c] for c in order])
        for row in conn.execute(query):
            digest.update(json.dumps([_plain(v) for v in row], separators=(",", ":")).encode())
            digest.update(b"\n")
    tracking = T["projection_tracking"]
    for name, position in conn.execute(select(tracking.c.name, tracking.c.position)
                                       .order_by(tracking.c.name)):
        digest.update(f"{name}={position}\n".encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value
