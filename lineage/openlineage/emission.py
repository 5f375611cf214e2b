"""Emission: the project's runs, models and deployments as OpenLineage events,
with mlledger's own facets, read from the log a chunk at a time.

Runs and datasets that came in through OpenLineage go out with every facet received
(``lineage.openlineage.facets``: merged over their events in the order received),
beside ours; a facet of ours (``mlledger_*``) is always ours."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage.openlineage import naming
from lineage.openlineage.constants import CHUNK, PRODUCER, event_url
from lineage.openlineage.facets import RunFacets, dataset_facets, restored
from lineage.openlineage.validation import schema_url
from registry.canonical import loads
from registry.errors import FieldError
from registry.events import upcast
from registry.ids import NodeId, check_name
from registry.store.raw import Raw, placeholders

if TYPE_CHECKING:
    from registry.ledger import Ledger

#: The log events ``emit`` turns into OpenLineage events.
EMITTED_TYPES = (
    "run-started",
    "run-completed",
    "run-failed",
    "dataset-version-registered",
    "model-version-registered",
    "deployment-configured",
    "deployment-retired",
    "openlineage-job-event",
)
_JSON_COLUMNS = ("params", "metrics", "code", "environment")
_RUN_COLUMNS = ("project", "job", "status", *_JSON_COLUMNS, "tags", "parent_run", "error_type")


@dataclass
class _Received:
    """What an emission keeps across its chunks: every version's dataset facets
    received, read in one pass over the project's OpenLineage events when first
    needed, instead of a pass for each version named."""

    datasets: dict[str, dict[str, Any]] | None = None


@dataclass
class _Emitter:
    """Builds the OpenLineage events of one chunk of the log, reading the catalogue."""

    raw: Raw
    project: str
    producer: str
    runs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    ends: dict[str, int | None] = field(default_factory=dict)
    received_runs: dict[str, RunFacets] = field(default_factory=dict)
    shared: _Received = field(default_factory=lambda: _Received())

    def received(self, run: str) -> RunFacets:
        """The facets the OpenLineage events of ``run`` carried (none for our runs)."""
        if run not in self.received_runs:
            self.received_runs[run] = RunFacets.read(self.raw, self.project, [run])
        return self.received_runs[run]

    def received_dataset(self, node: str) -> dict[str, Any]:
        """The dataset facets the OpenLineage events naming ``node`` carried."""
        if self.shared.datasets is None:
            self.shared.datasets = dataset_facets(self.raw, self.project, None, in_runs=False)
        return self.shared.datasets.get(node, {})

    def facet(self, key: str, /, **fields: Any) -> dict[str, Any]:
        return {"_producer": self.producer, "_schemaURL": schema_url(key), **fields}

    def run(self, run: str) -> dict[str, Any] | None:
        """The catalogue record of a run (JSON columns decoded), None when unknown."""
        if run not in self.runs:
            row = self.raw.one(
                f"SELECT {', '.join(_RUN_COLUMNS)} FROM cat_runs WHERE id = ?", (run,)
            )
            record = None if row is None else dict(zip(_RUN_COLUMNS, row, strict=True))
            if record is not None:
                for column in _JSON_COLUMNS:
                    record[column] = json.loads(record[column])
                record["tags"] = naming.tags_of(record["tags"])
            self.runs[run] = record
        return self.runs[run]

    def end(self, run: str) -> int | None:
        """Log position of the run's end, if it ended."""
        if run not in self.ends:
            self.ends[run] = self.raw.scalar(
                "SELECT MIN(position) FROM events WHERE entity = ? "
                "AND type IN ('run-completed', 'run-failed')",
                (run,),
            )
        return self.ends[run]

    def job(self, row: dict[str, Any], run: str | None = None) -> dict[str, Any]:
        """The job of a run (``row``), with the job facets ``run``'s events carried."""
        namespace, name = naming.run_key(row["project"], row["job"], row["tags"])
        facets = _theirs(self.received(run).job_facets(run)) if run is not None else {}
        return {"namespace": namespace, "name": name, "facets": facets}

    def run_facets(
        self, run: str, row: dict[str, Any], start: dict[str, Any] | None
    ) -> dict[str, Any]:
        """``mlledger_run`` (and ``parent``) of a run; ``start`` is the run-started body
        for a START event, else the run's current record is used."""
        source = start if start is not None else row
        facets: dict[str, Any] = {
            "mlledger_run": self.facet(
                "mlledger_run",
                id=run,
                project=row["project"],
                job=row["job"],
                status="running" if start is not None else row["status"],
                params=source.get("params", {}),
                metrics={} if start is not None else row["metrics"],
                code=source.get("code", {}),
                environment=source.get("environment", {}),
                tags=source.get("tags", {}),
                parent_run=source.get("parent_run"),
                error_type=None if start is not None else row["error_type"],
            )
        }
        parent = source.get("parent_run")
        parent_row = self.run(parent) if parent else None
        if parent and parent_row is not None:
            job = self.job(parent_row)
            facets["parent"] = self.facet(
                "parent",
                run={"runId": naming.uuid_of(parent)},
                job={"namespace": job["namespace"], "name": job["name"]},
            )
        # The facets received stand over ours (a parent as sent may name the root run
        # too), but for our own facets.
        return {
            **facets,
            **_theirs(self.received(run).run_facets(run, whole=True)),
            **{k: v for k, v in facets.items() if k.startswith(OURS)},
        }

    def dataset(
        self, node: str, *, output: bool = False, run: str | None = None
    ) -> dict[str, Any] | None:
        """An input or output dataset for a dataset or model version of the project,
        with the input or output facets ``run``'s events carried for it."""
        parsed = NodeId.parse(node)
        if parsed.project != self.project:
            return None  # another project's data stays out of this project's export
        if parsed.kind == "model":
            return self.model(node, output=output)
        found = self.catalogued(node)
        if found is None:
            return None
        out, row_count = found
        side = "outputs" if output else "inputs"
        sent = _theirs(self.received(run).io_facets(run, side, node)) if run is not None else {}
        if output:
            ours = (
                {"outputStatistics": self.facet("outputStatistics", rowCount=row_count)}
                if row_count is not None
                else {}
            )
            out["outputFacets"] = {**ours, **sent}
        else:
            out["inputFacets"] = sent
        return out

    def model(self, node: str, *, output: bool) -> dict[str, Any] | None:
        """A model version as an OpenLineage dataset ``model/<name>``."""
        row = self.raw.one(
            "SELECT name, version, run, artifact_uri, artifact_digest, framework, tags "
            "FROM cat_models WHERE id = ?",
            (node,),
        )
        if row is None:
            return None
        name, version, run, uri, digest, framework, tags = row
        namespace, ol_name = naming.model_key(self.project, name)
        facets = {
            "version": self.facet("version", datasetVersion=version),
            "mlledger_model": self.facet(
                "mlledger_model",
                id=node,
                name=name,
                version=version,
                artifact_uri=uri,
                artifact_digest=digest,
                framework=framework,
                run=run,
                tags=naming.tags_of(tags),
            ),
        }
        out: dict[str, Any] = {"namespace": namespace, "name": ol_name, "facets": facets}
        if output:
            out["outputFacets"] = {}
        return out

    def catalogued(self, node: str) -> tuple[dict[str, Any], int | None] | None:
        """A dataset version as an OpenLineage dataset (no input or output facets yet),
        with its row count; None when it is not catalogued."""
        row = self.raw.one(
            "SELECT name, version, digest, uri, schema, row_count, derived_from, tags "
            "FROM cat_datasets WHERE id = ?",
            (node,),
        )
        if row is None:
            return None
        name, version, digest, uri, schema, row_count, derived, tags = row
        labels = naming.tags_of(tags)
        namespace, ol_name = naming.dataset_key(self.project, name, labels)
        facets = {}
        if "openlineage.namespace" not in labels:
            facets["version"] = self.facet("version", datasetVersion=version)
        elif "openlineage.version" in labels:
            facets["version"] = self.facet("version", datasetVersion=labels["openlineage.version"])
        if schema is not None:
            facets["schema"] = self.facet(
                "schema",
                fields=[{"name": k, "type": v} for k, v in json.loads(schema).items()],
            )
        # What OpenLineage events sent about it stands over what we made of it.
        facets.update(_theirs(self.received_dataset(node)))
        facets["mlledger_dataset"] = self.facet(
            "mlledger_dataset",
            id=node,
            name=name,
            version=version,
            digest=digest,
            uri=uri,
            row_count=row_count,
            derived_from=json.loads(derived),
            tags=labels,
        )
        return {"namespace": namespace, "name": ol_name, "facets": facets}, row_count

    def datasets(
        self, nodes: Iterable[str], *, output: bool, run: str | None = None
    ) -> list[dict[str, Any]]:
        found = (self.dataset(n, output=output, run=run) for n in dict.fromkeys(nodes))
        return [d for d in found if d is not None]

    def run_event(
        self,
        event_type: str,
        when: str,
        run_uuid: str,
        job: dict[str, Any],
        run_facets: dict[str, Any],
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "eventType": event_type,
            "eventTime": when,
            "producer": self.producer,
            "schemaURL": event_url("RunEvent"),
            "run": {"runId": run_uuid, "facets": run_facets},
            "job": job,
            "inputs": inputs,
            "outputs": outputs,
        }

    def dataset_event(self, when: str, dataset: dict[str, Any]) -> dict[str, Any]:
        return {
            "eventTime": when,
            "producer": self.producer,
            "schemaURL": event_url("DatasetEvent"),
            "dataset": {k: dataset[k] for k in ("namespace", "name", "facets")},
        }

    def produced(
        self, position: int, when: str, run: str | None, node: str
    ) -> list[dict[str, Any]]:
        """The event for a version registered at ``position``: a DatasetEvent when no run
        of the project produced it, an OTHER RunEvent when its run had already ended,
        nothing when the run's COMPLETE or FAIL will list it."""
        row = self.run(run) if run else None
        if run is None or row is None or row["project"] != self.project:
            dataset = self.dataset(node)
            return [] if dataset is None else [self.dataset_event(when, dataset)]
        end = self.end(run)
        if end is None or end > position:
            return []
        return [
            self.run_event(
                "OTHER",
                when,
                naming.uuid_of(run),
                self.job(row, run),
                self.run_facets(run, row, None),
                [],
                self.datasets([node], output=True, run=run),
            )
        ]

    def events_for(
        self, position: int, type: str, entity: str, when: str, body: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The OpenLineage events of the log event ``type`` at ``position``."""
        if type == "run-started":
            return self.started(entity, when, body)
        if type in ("run-completed", "run-failed"):
            return self.ended(position, type, entity, when)
        if type == "dataset-version-registered":
            return self.produced(position, when, body.get("produced_by"), entity)
        if type == "model-version-registered":
            return self.produced(position, when, body.get("run"), entity)
        if type in ("deployment-configured", "deployment-retired"):
            return [self.deployment(position, type, entity, when, body)]
        if type == "openlineage-job-event":
            return [self.job_event(restored(body))]
        return []

    def started(self, run: str, when: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The START RunEvent of a run-started."""
        row = self.run(run)
        if row is None:
            return []
        facets = self.run_facets(run, row, body)
        job = self.job(row, run)
        return [self.run_event("START", when, naming.uuid_of(run), job, facets, [], [])]

    def ended(self, position: int, type: str, run: str, when: str) -> list[dict[str, Any]]:
        """The COMPLETE or FAIL RunEvent of a run's end at ``position``, with every
        input declared and every output written before it."""
        row = self.run(run)
        if row is None:
            return []
        # In the order declared (the edges table does not keep it).
        inputs = [
            node
            for version, body in self.raw.all(
                "SELECT schema_version, body FROM events WHERE entity = ? "
                "AND type = 'run-inputs-used' AND position < ? ORDER BY position",
                (run, position),
            )
            for node in upcast("run-inputs-used", version, loads(body))["inputs"]
        ]
        outputs = [
            r[0]
            for r in self.raw.all(
                "SELECT dst FROM lineage_edges WHERE src = ? AND kind = 'output' "
                "AND opened_pos < ? ORDER BY opened_pos, dst",
                (run, position),
            )
        ]
        return [
            self.run_event(
                "COMPLETE" if type == "run-completed" else "FAIL",
                when,
                naming.uuid_of(run),
                self.job(row, run),
                self.run_facets(run, row, None),
                self.datasets(inputs, output=False, run=run),
                self.datasets(outputs, output=True, run=run),
            )
        ]

    def deployment(
        self, position: int, type: str, entity: str, when: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The COMPLETE RunEvent of job ``deployment/<name>`` for a configuration change."""
        name = NodeId.parse(entity).name
        namespace, job_name_ = naming.deployment_key(self.project, name)
        if type == "deployment-configured":
            endpoint, status, reason = body["endpoint"], "active", None
            served = [
                {
                    "model": s["model"],
                    "name": NodeId.parse(s["model"]).name,
                    "version": NodeId.parse(s["model"]).version,
                    "traffic": s["traffic"],
                }
                for s in body["served"]
            ]
        else:
            endpoint = self.raw.scalar(
                "SELECT endpoint FROM deployment_history WHERE deployment = ? "
                "AND closed_pos = ? ORDER BY model LIMIT 1",
                (entity, position),
            ) or self.raw.scalar("SELECT endpoint FROM cat_deployments WHERE id = ?", (entity,))
            status, reason, served = "retired", body.get("reason"), []
        facet = self.facet(
            "mlledger_deployment",
            id=entity,
            name=name,
            endpoint=endpoint or "",
            status=status,
            served=served,
            reason=reason,
        )
        return self.run_event(
            "COMPLETE",
            when,
            naming.deployment_run(entity, position),
            {"namespace": namespace, "name": job_name_, "facets": {}},
            {"mlledger_deployment": facet},
            self.datasets([s["model"] for s in served], output=False),
            [],
        )

    def job_event(self, body: dict[str, Any]) -> dict[str, Any]:
        """A recorded OpenLineage JobEvent, sent on with its original names and facets."""
        return {
            "eventTime": body["event_time"],
            "producer": self.producer,
            "schemaURL": event_url("JobEvent"),
            "job": body["job"],
            "inputs": _recorded(body["inputs"], "inputFacets", "input_facets"),
            "outputs": _recorded(body["outputs"], "outputFacets", "output_facets"),
        }


#: The names of our own facets: one of these received from a producer is not sent on.
OURS = "mlledger_"


def _theirs(facets: dict[str, Any]) -> dict[str, Any]:
    """Facets received, less any named as ours."""
    return {k: v for k, v in facets.items() if not k.startswith(OURS)}


def _recorded(datasets: list[dict[str, Any]], theirs: str, ours: str) -> list[dict[str, Any]]:
    """Recorded datasets of a JobEvent in OpenLineage's shape (``ours`` -> ``theirs``)."""
    return [
        {"namespace": d["namespace"], "name": d["name"], "facets": d["facets"], theirs: d[ours]}
        for d in datasets
    ]


def _bounds(stop: int | None, recorded: tuple[str | None, str | None]) -> tuple[str, list[Any]]:
    """The SQL conditions (``AND ...``) and parameters of ``emit``'s optional bounds."""
    bounds, extra = "", []
    for sql, value in (
        ("position < ?", stop),
        ("recorded_at >= ?", recorded[0]),
        ("recorded_at < ?", recorded[1]),
    ):
        if value is not None:
            bounds += f" AND {sql}"
            extra.append(value)
    return bounds, extra


def emit(
    ledger: Ledger,
    project: str,
    *,
    since: int = 0,
    producer: str = PRODUCER,
    stop: int | None = None,
    recorded: tuple[str | None, str | None] = (None, None),
) -> Iterator[dict[str, Any]]:
    """The project's runs, models and deployments as OpenLineage events, in log order,
    from log position ``since`` on.

    - ``run-started`` -> a START RunEvent with the ``mlledger_run`` facet (and
      ``parent``);
    - ``run-completed`` / ``run-failed`` -> COMPLETE / FAIL with every input and
      every output written before the end (model versions as datasets
      ``model/<name>`` with the ``mlledger_model`` facet), final params and metrics;
    - a dataset or model version written after its run ended -> an OTHER RunEvent;
      one no run of the project wrote -> a DatasetEvent;
    - ``deployment-configured`` / ``deployment-retired`` -> a COMPLETE RunEvent of job
      ``deployment/<name>`` whose inputs are the model versions served, with the
      ``mlledger_deployment`` facet;
    - a recorded OpenLineage JobEvent -> that JobEvent again.

    Runs and datasets that came in through OpenLineage keep their original
    namespaces and names. Each chunk is read in its own short transaction.
    ``stop`` ends before that log position; ``recorded`` keeps the events the log
    recorded in ``[from, to)`` (timestamps in the log's form; either end open).
    """
    check_name(project, "project")
    if not isinstance(since, int) or since < 0:
        raise FieldError(
            "since", f"since {since!r} is not valid: expected a log position, 0 or more"
        )
    cursor = since
    shared = _Received()
    types = placeholders(len(EMITTED_TYPES))
    bounds, extra = _bounds(stop, recorded)
    while True:
        with ledger.store.read() as conn:
            raw = Raw(conn)
            rows = raw.all(
                "SELECT position, type, schema_version, entity, occurred_at, body FROM events "
                f"WHERE project = ? AND position >= ? AND type IN ({types}){bounds} "
                "ORDER BY position LIMIT ?",
                (project, cursor, *EMITTED_TYPES, *extra, CHUNK),
            )
            emitter = _Emitter(raw, project, producer, shared=shared)
            documents = [
                doc
                for position, type, version, entity, when, body in rows
                for doc in emitter.events_for(
                    position, type, entity, when, upcast(type, version, loads(body))
                )
            ]
        yield from documents
        if len(rows) < CHUNK:
            return
        cursor = rows[-1][0] + 1
