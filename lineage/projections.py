"""The projections the lineage layer owns: the catalogue (runs, dataset and model
versions, deployments, aliases), the record and prediction indexes, the lineage
edges, the erasures with the references and remediation flags they leave, and the
jobs that execute runs (``lineage.executions``).

Each is a ``HandlerProjection``: a handler per event type over one ``Batch`` of
writes. The interface they implement, the runner that keeps them exactly once at the
head of the log, and the digest of their tables are the core's
(``registry.projection``); ``registry.assembly`` hands them to the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from lineage import prediction_filters
from lineage.executions import Executions
from registry.canonical import canonical_text, loads
from registry.events import StoredEvent
from registry.ids import NodeId, kind_of
from registry.lazy import lazy_import
from registry.projection import Projection
from registry.store.raw import Raw, placeholders
from registry.store.schema import EPOCH_ROWS, PREDICTIONS_PER_EVENT

if TYPE_CHECKING:
    from registry import payloads
else:
    payloads = lazy_import("registry.payloads")  # pyarrow, only for predictions

CHUNK = 500
Handler = Callable[["Batch", StoredEvent], None]
BATCH = 2_000


def _dumps(value: Any) -> str:
    """A catalogue JSON column's text: RFC 8785 (canonical), as the exports promise."""
    return canonical_text(value)[0]


class Batch:
    """What one projection does with one batch of events: rows to insert, rows
    read once and changed in memory, written back together at the end."""

    def __init__(self, conn: Connection):
        self.raw = Raw(conn)
        self.inserts: dict[str, list[tuple[Any, ...]]] = {}
        self.runs: dict[str, list[Any]] = {}
        self.new_runs: set[str] = set()
        self.new_edges: set[tuple[str, str, str]] = set()

    def insert(self, sql: str, row: tuple[Any, ...]) -> None:
        self.inserts.setdefault(sql, []).append(row)

    def flush(self) -> None:
        for sql, rows in self.inserts.items():
            self.raw.many(sql, rows)
        self.inserts.clear()
        self.raw.many(RUN_INSERT, (row for run, row in self.runs.items() if run in self.new_runs))
        self.raw.many(
            RUN_UPDATE,
            ((*row[4:], row[0]) for run, row in self.runs.items() if run not in self.new_runs),
        )
        self.runs.clear()
        self.new_runs.clear()
        self.new_edges.clear()


class HandlerProjection(Projection):
    """A projection applying each event type with a handler of its own, over one
    ``Batch`` of writes per call."""

    def handlers(self) -> dict[str, Handler]:
        raise NotImplementedError

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        handlers = self.handlers()
        batch = Batch(conn)
        for event in events:
            handler = handlers.get(event.type)
            if handler is not None:
                handler(batch, event)
        batch.flush()


# --- catalogue ---------------------------------------------------------------------------

RUN_COLUMNS = (
    "id",
    "project",
    "job",
    "actor",
    "status",
    "params",
    "metrics",
    "code",
    "environment",
    "tags",
    "parent_run",
    "started_at",
    "ended_at",
    "error_type",
    "position",
)
RUN_INSERT = f"INSERT INTO cat_runs ({', '.join(RUN_COLUMNS)}) VALUES ({placeholders(15)})"
RUN_UPDATE = (
    "UPDATE cat_runs SET " + ", ".join(f"{c} = ?" for c in RUN_COLUMNS[4:]) + " WHERE id = ?"
)
MODEL_NAME_UPSERT = (
    "INSERT INTO model_names (project, name, versions, top_version) VALUES (?, ?, 1, ?) "
    "ON CONFLICT (project, name) DO UPDATE SET versions = model_names.versions + 1, "
    "top_version = CASE WHEN excluded.top_version IS NOT NULL AND (model_names.top_version "
    "IS NULL OR excluded.top_version > model_names.top_version) THEN excluded.top_version "
    "ELSE model_names.top_version END"
)
RUN_SELECT = f"SELECT {', '.join(RUN_COLUMNS)} FROM cat_runs WHERE id = ?"
STATUS, PARAMS, METRICS, ENDED, ERROR = 4, 5, 6, 12, 13
DATASET_INSERT = (
    "INSERT INTO cat_datasets (id, project, name, version, digest, uri, schema, row_count, "
    f"produced_by, derived_from, tags, registered_at, position) VALUES ({placeholders(13)})"
)
MODEL_INSERT = (
    "INSERT INTO cat_models (id, project, name, version, run, artifact_uri, artifact_digest, "
    f"framework, tags, registered_at, position) VALUES ({placeholders(11)})"
)


class Catalogue(HandlerProjection):
    """Datasets, runs, models (with alias history) and deployments (with serving history)."""

    name = "catalogue"
    tables = (
        "cat_datasets",
        "cat_runs",
        "cat_models",
        "model_names",
        "alias_history",
        "cat_deployments",
        "deployment_history",
        "project_grants",
    )

    def handlers(self) -> dict[str, Handler]:
        return {
            "project-access-granted": self._granted,
            "project-access-revoked": self._revoked,
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

    def _granted(self, batch: Batch, e: StoredEvent) -> None:
        # Written at once: a later event of the batch may revoke it.
        batch.raw.run(
            "INSERT INTO project_grants (project, grantee, granted_pos, granted_by, "
            f"granted_at, reason) VALUES ({placeholders(6)})",
            (
                e.project,
                e.body["grantee"],
                e.position,
                e.actor,
                e.occurred_at,
                e.body.get("reason"),
            ),
        )

    def _revoked(self, batch: Batch, e: StoredEvent) -> None:
        batch.raw.run(
            "UPDATE project_grants SET revoked_pos = ?, revoked_by = ?, revoked_at = ? "
            "WHERE project = ? AND grantee = ? AND revoked_pos IS NULL",
            (e.position, e.actor, e.occurred_at, e.project, e.body["grantee"]),
        )

    def _dataset(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        batch.insert(
            DATASET_INSERT,
            (
                e.entity,
                e.project,
                b["name"],
                b["version"],
                b["digest"],
                b["uri"],
                None if b.get("schema") is None else _dumps(b["schema"]),
                b.get("row_count"),
                b.get("produced_by"),
                _dumps(b.get("derived_from", [])),
                _dumps(b.get("tags", {})),
                e.occurred_at,
                e.position,
            ),
        )

    def _run_started(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        batch.runs[e.entity] = [
            e.entity,
            e.project,
            b["job"],
            e.actor,
            "running",
            _dumps(b.get("params", {})),
            _dumps({}),
            _dumps(b.get("code", {})),
            _dumps(b.get("environment", {})),
            _dumps(b.get("tags", {})),
            b.get("parent_run"),
            e.occurred_at,
            None,
            None,
            e.position,
        ]
        batch.new_runs.add(e.entity)

    def _run(self, batch: Batch, run: str) -> list[Any]:
        row = batch.runs.get(run)
        if row is None:
            row = list(batch.raw.one(RUN_SELECT, (run,)))
            batch.runs[run] = row
        return row

    def _merge(self, batch: Batch, run: str, column: int, change: dict[str, Any]) -> None:
        row = self._run(batch, run)
        row[column] = _dumps({**loads(row[column]), **change})

    def _params(self, batch: Batch, e: StoredEvent) -> None:
        self._merge(batch, e.entity, PARAMS, e.body["params"])

    def _metrics(self, batch: Batch, e: StoredEvent) -> None:
        # The catalogue keeps the latest value of each metric; the log keeps every one.
        self._merge(batch, e.entity, METRICS, {m["key"]: m["value"] for m in e.body["metrics"]})

    def _run_ended(self, batch: Batch, e: StoredEvent) -> None:
        row = self._run(batch, e.entity)
        row[STATUS] = "completed" if e.type == "run-completed" else "failed"
        row[ENDED] = e.occurred_at
        row[ERROR] = e.body.get("error_type")

    def _model(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        top = int(b["version"]) if b["version"].isdigit() else None
        batch.insert(MODEL_NAME_UPSERT, (e.project, b["name"], top))
        batch.insert(
            MODEL_INSERT,
            (
                e.entity,
                e.project,
                b["name"],
                b["version"],
                b.get("run"),
                b["artifact_uri"],
                b["artifact_digest"],
                b.get("framework"),
                _dumps(b.get("tags", {})),
                e.occurred_at,
                e.position,
            ),
        )

    # Aliases and deployments change rarely: plain statements, in order.

    def _alias(self, batch: Batch, e: StoredEvent) -> None:
        name = NodeId.parse(e.entity).name
        alias = e.body["alias"]
        batch.raw.run(
            "UPDATE alias_history SET valid_to = ?, closed_pos = ? WHERE project = ? "
            "AND name = ? AND alias = ? AND valid_to IS NULL",
            (e.occurred_at, e.position, e.project, name, alias),
        )
        batch.raw.run(
            "INSERT INTO alias_history (opened_pos, project, name, alias, model, "
            f"moved_by, valid_from) VALUES ({placeholders(7)})",
            (e.position, e.project, name, alias, e.entity, e.actor, e.occurred_at),
        )

    def _close_serving(self, batch: Batch, e: StoredEvent) -> None:
        batch.raw.run(
            "UPDATE deployment_history SET valid_to = ?, closed_pos = ? "
            "WHERE deployment = ? AND valid_to IS NULL",
            (e.occurred_at, e.position, e.entity),
        )

    def _deployment(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        self._close_serving(batch, e)
        batch.raw.many(
            "INSERT INTO deployment_history (deployment, opened_pos, model, traffic, "
            f"endpoint, valid_from) VALUES ({placeholders(6)})",
            [
                (e.entity, e.position, s["model"], s["traffic"], b["endpoint"], e.occurred_at)
                for s in b["served"]
            ],
        )
        values = (b["endpoint"], "active", _dumps(b["served"]), e.occurred_at, e.position)
        changed = batch.raw.run(
            "UPDATE cat_deployments SET endpoint = ?, status = ?, served = ?, "
            "updated_at = ?, position = ? WHERE id = ?",
            (*values, e.entity),
        ).rowcount
        if not changed:
            batch.raw.run(
                "INSERT INTO cat_deployments (endpoint, status, served, updated_at, "
                f"position, id, project, name, created_at) VALUES ({placeholders(9)})",
                (*values, e.entity, e.project, NodeId.parse(e.entity).name, e.occurred_at),
            )

    def _retired(self, batch: Batch, e: StoredEvent) -> None:
        self._close_serving(batch, e)
        batch.raw.run(
            "UPDATE cat_deployments SET status = ?, served = ?, updated_at = ?, "
            "position = ? WHERE id = ?",
            ("retired", _dumps([]), e.occurred_at, e.position, e.entity),
        )


# --- record index ---------------------------------------------------------------------------


class RecordIndex(HandlerProjection):
    """Dataset version <-> record pseudonym <-> subject pseudonym."""

    name = "record_index"
    tables = ("record_index", "dataset_record_counts")

    def handlers(self) -> dict[str, Handler]:
        return {"dataset-records-added": self._records}

    def _records(self, batch: Batch, e: StoredEvent) -> None:
        raw = batch.raw
        records, subjects = e.body["records"], e.body["subjects"]
        current = raw.scalar(
            "SELECT records FROM dataset_record_counts WHERE dataset = ?", (e.entity,)
        )
        existing: set[str] = set()
        # A version's first records have nothing to meet; later ones may repeat some.
        if current is not None:
            # One array parameter on PostgreSQL takes an event's records at once.
            step = len(records) if raw.postgres else CHUNK
            for start in range(0, len(records), step):
                chunk = records[start : start + step]
                existing.update(
                    r[0]
                    for r in raw.all(
                        f"SELECT record FROM record_index WHERE dataset = ? AND record "
                        f"{raw.among(chunk)}",
                        (e.entity, *raw.among_params(chunk)),
                    )
                )
        # A record listed twice for one version stays one membership row.
        rows = []
        for record, subject in zip(records, subjects, strict=True):
            if record not in existing:
                existing.add(record)
                rows.append((e.entity, record, e.project, subject, e.position))
        if not rows:
            return
        raw.insert("record_index", ("dataset", "record", "project", "subject", "position"), rows)
        if current is None:
            raw.run(
                "INSERT INTO dataset_record_counts (dataset, records) VALUES (?, ?)",
                (e.entity, len(rows)),
            )
        else:
            raw.run(
                "UPDATE dataset_record_counts SET records = ? WHERE dataset = ?",
                (current + len(rows), e.entity),
            )


# --- prediction index -------------------------------------------------------------------------


PREDICTION_COLUMNS = (
    "id",
    "position",
    "seq",
    "epoch",
    "project",
    "record",
    "deployment",
    "model",
    "at",
    "output",
    "trace_id",
)


class PredictionIndex(HandlerProjection):
    """Every prediction by record pseudonym, and counts per deployment and model version
    (in all, and per day)."""

    name = "prediction_index"
    # prediction_filters: a Bloom filter per epoch (lineage.prediction_filters).
    tables = ("prediction_index", "prediction_counts", "prediction_days", "prediction_filters")

    def handlers(self) -> dict[str, Handler]:
        return {"predictions-logged": self._predictions}

    def reset(self, conn: Connection) -> None:
        super().reset(conn)
        prediction_filters.reset(Raw(conn))

    def _predictions(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        raw = batch.raw
        models = b["models"]
        assert e.payload is not None, "the ledger stores every prediction batch with its rows"
        table = payloads.decode_predictions(e.payload)
        columns = {name: table.column(name).to_pylist() for name in table.column_names}
        position, project, deployment = e.position, e.project, e.entity
        base = position * PREDICTIONS_PER_EVENT
        before = int(raw.scalar("SELECT COALESCE(SUM(n), 0) FROM prediction_counts"))
        raw.insert(
            "prediction_index",
            PREDICTION_COLUMNS,
            [
                (
                    base + seq,
                    position,
                    seq,
                    (before + seq) // EPOCH_ROWS,
                    project,
                    record,
                    deployment,
                    models[m],
                    at,
                    output,
                    trace,
                )
                for seq, (record, m, output, at, trace) in enumerate(
                    zip(
                        columns["record"],
                        columns["model"],
                        columns["output"],
                        columns["at"],
                        columns["trace_id"],
                        strict=True,
                    )
                )
                # A row an erasure redacted has no record: counted, never indexed.
                if record is not None
            ],
        )
        self._filter(raw, project, before, columns["record"], table.column("record").null_count)
        days: dict[tuple[str, str], int] = {}
        for m, at in zip(columns["model"], columns["at"], strict=True):
            day = (models[m], at[:10])
            days[day] = days.get(day, 0) + 1
        # Every row, as prediction_counts counts them (a redacted one too).
        raw.many(
            "INSERT INTO prediction_days (deployment, model, day, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (deployment, model, day) DO UPDATE SET n = prediction_days.n + excluded.n",
            [(deployment, model, day, n) for (model, day), n in sorted(days.items())],
        )
        counts: dict[int, list[Any]] = {}
        for m, at in zip(columns["model"], columns["at"], strict=True):
            entry = counts.get(m)
            if entry is None:
                counts[m] = [1, at, at]
            else:
                entry[0] += 1
                if at < entry[1]:
                    entry[1] = at
                elif at > entry[2]:
                    entry[2] = at
        for m, (n, first, last) in sorted(counts.items(), key=lambda kv: models[kv[0]]):
            key = (deployment, models[m])
            row = raw.one(
                "SELECT n, first_at, last_at FROM prediction_counts "
                "WHERE deployment = ? AND model = ?",
                key,
            )
            if row is None:
                raw.run(
                    "INSERT INTO prediction_counts (deployment, model, n, first_at, last_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (*key, n, first, last),
                )
            else:
                raw.run(
                    "UPDATE prediction_counts SET n = ?, first_at = ?, last_at = ? "
                    "WHERE deployment = ? AND model = ?",
                    (row[0] + n, min(row[1], first), max(row[2], last), *key),
                )

    @staticmethod
    def _filter(raw: Raw, project: str, before: int, records: list[Any], nulls: int) -> None:
        """Add the batch's records to the filters of the epochs it fills (its rows are
        ``before``, ``before + 1``, ... of the index), and write one missing filter."""
        size = prediction_filters.filter_words(EPOCH_ROWS)
        n = len(records)
        for epoch in range(before // EPOCH_ROWS, (before + n - 1) // EPOCH_ROWS + 1):
            start = max(0, epoch * EPOCH_ROWS - before)
            chunk = records[start : min(n, (epoch + 1) * EPOCH_ROWS - before)]
            if nulls:
                chunk = [r for r in chunk if r is not None]
            fresh = epoch * EPOCH_ROWS >= before
            prediction_filters.add(raw, epoch, size, project, chunk, fresh=fresh)
        prediction_filters.backfill(raw, size)


# --- lineage graph (persisted edges) --------------------------------------------------------

NODE_INSERT = (
    "INSERT INTO lineage_nodes (id, kind, project, label, created_at, position) "
    f"VALUES ({placeholders(6)})"
)
EDGE_INSERT = (
    f"INSERT INTO lineage_edges (src, dst, kind, opened_pos, valid_from) VALUES ({placeholders(5)})"
)


class LineageEdges(HandlerProjection):
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

    @staticmethod
    def _node(batch: Batch, e: StoredEvent, label: str) -> None:
        # Datasets, runs and models are registered once (the ledger checks it).
        batch.insert(
            NODE_INSERT,
            (e.entity, kind_of(e.entity), e.project, label, e.occurred_at, e.position),
        )

    @staticmethod
    def _edges(batch: Batch, e: StoredEvent, edges: list[tuple[str, str, str]]) -> None:
        for src, dst, kind in edges:
            batch.new_edges.add((src, dst, kind))
            batch.insert(EDGE_INSERT, (src, dst, kind, e.position, e.occurred_at))

    def _dataset(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        self._node(batch, e, f"{b['name']}@{b['version']}")
        edges = [(parent, e.entity, "derived") for parent in b.get("derived_from", [])]
        if b.get("produced_by"):
            edges.append((b["produced_by"], e.entity, "output"))
        self._edges(batch, e, edges)

    def _run(self, batch: Batch, e: StoredEvent) -> None:
        self._node(batch, e, e.body["job"])
        if e.body.get("parent_run"):
            self._edges(batch, e, [(e.body["parent_run"], e.entity, "child")])

    def _inputs(self, batch: Batch, e: StoredEvent) -> None:
        # An input declared twice is one edge, whether the first is stored or pending.
        fresh = []
        for src in dict.fromkeys(e.body["inputs"]):
            if (src, e.entity, "input") in batch.new_edges:
                continue
            if (
                batch.raw.one(
                    "SELECT 1 FROM lineage_edges WHERE src = ? AND dst = ? AND kind = 'input'",
                    (src, e.entity),
                )
                is None
            ):
                fresh.append((src, e.entity, "input"))
        self._edges(batch, e, fresh)

    def _model(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        self._node(batch, e, f"{b['name']}@{b['version']}")
        if b.get("run"):
            self._edges(batch, e, [(b["run"], e.entity, "output")])

    def _serving(self, batch: Batch, e: StoredEvent, keep: set[str]) -> None:
        batch.flush()
        raw = batch.raw
        open_now = {
            r[0]
            for r in raw.all(
                "SELECT src FROM lineage_edges WHERE dst = ? AND "
                "kind = 'serves' AND valid_to IS NULL",
                (e.entity,),
            )
        }
        for src in sorted(open_now - keep):
            raw.run(
                "UPDATE lineage_edges SET valid_to = ?, closed_pos = ? WHERE src = ? AND "
                "dst = ? AND kind = 'serves' AND valid_to IS NULL",
                (e.occurred_at, e.position, src, e.entity),
            )
        self._edges(batch, e, [(m, e.entity, "serves") for m in sorted(keep - open_now)])

    def _deployment(self, batch: Batch, e: StoredEvent) -> None:
        batch.flush()
        if batch.raw.one("SELECT 1 FROM lineage_nodes WHERE id = ?", (e.entity,)) is None:
            self._node(batch, e, NodeId.parse(e.entity).name)
        self._serving(batch, e, {s["model"] for s in e.body["served"]})

    def _retired(self, batch: Batch, e: StoredEvent) -> None:
        self._serving(batch, e, set())


# --- erasures ---------------------------------------------------------------------------------


class Erasures(HandlerProjection):
    """Erasures of data subjects, the references they leave behind (so a question about
    an erased subject or record answers "erased"), and the remediation flags they put
    on model versions, resolved by the versions that replace them."""

    name = "erasures"
    tables = ("erasures", "erased_refs", "remediations")

    def handlers(self) -> dict[str, Handler]:
        return {
            "subject-erasure-requested": self._requested,
            "subject-erased": self._erased,
            "erasure-remediated": self._remediated,
        }

    def _requested(self, batch: Batch, e: StoredEvent) -> None:
        batch.raw.run(
            "INSERT INTO erasures (erasure, project, reference, status, requested_by, "
            f"requested_at, requested_pos) VALUES ({placeholders(7)})",
            (
                e.body["erasure"],
                e.project,
                NodeId.parse(e.entity).name,
                "requested",
                e.actor,
                e.occurred_at,
                e.position,
            ),
        )

    def _erased(self, batch: Batch, e: StoredEvent) -> None:
        b = e.body
        summary = {
            "records": b["records"],
            "datasets": b["datasets"],
            "derived_datasets": b["derived_datasets"],
            "runs": b["runs"],
            "models": [flag["model"] for flag in b["models"]],
            "deployments": b["deployments"],
            "predictions": b["predictions"],
            "vault_entries": b["vault_entries"],
            "redactions": len(b["redactions"]),
        }
        raw = batch.raw
        raw.run(
            "UPDATE erasures SET status = ?, erased_at = ?, erased_pos = ?, summary = ? "
            "WHERE erasure = ?",
            ("erased", e.occurred_at, e.position, _dumps(summary), b["erasure"]),
        )
        reference = NodeId.parse(e.entity).name
        raw.many(
            "INSERT INTO erased_refs (project, kind, reference, erased_pos, erasure) "
            "VALUES (?, ?, ?, ?, ?)",
            [(e.project, "subject", reference, e.position, b["erasure"])]
            + [(e.project, "record", ref, e.position, b["erasure"]) for ref in b["record_refs"]],
        )
        raw.many(
            "INSERT INTO remediations (model, erasure, project, status, justification, "
            f"approver, flagged_pos) VALUES ({placeholders(7)})",
            [
                (
                    flag["model"],
                    b["erasure"],
                    # The model's own project: its readers must see the flag (a model of
                    # a project granted the erased data is flagged in that project).
                    NodeId.parse(flag["model"]).project,
                    flag["status"],
                    flag.get("justification"),
                    flag.get("approver"),
                    e.position,
                )
                for flag in b["models"]
            ],
        )

    def _remediated(self, batch: Batch, e: StoredEvent) -> None:
        batch.raw.run(
            "UPDATE remediations SET status = ?, resolved_by = ?, resolved_pos = ? "
            "WHERE model = ? AND erasure = ? AND status = 'retrain-required'",
            ("remediated", e.entity, e.position, e.body["model"], e.body["erasure"]),
        )


#: The projections this layer owns, in the order they apply (the audit layer adds
#: the Merkle tree's: ``registry.assembly``).
PROJECTIONS: tuple[Projection, ...] = (
    Catalogue(),
    RecordIndex(),
    PredictionIndex(),
    LineageEdges(),
    Erasures(),
    Executions(),
)
