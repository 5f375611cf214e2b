"""Ingestion: the ledger events one OpenLineage event means.

``to_events`` builds the batch (it reads the ledger, writes nothing); append it
with ``first_wins=True``: its ids are derived from the project and the
OpenLineage content, and the first claim of a run start or end stands.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage.openlineage.constants import REDACTED_FIELDS, SAFE_INT, TERMINAL, UNSAFE
from lineage.openlineage.naming import (
    dataset_name,
    dataset_uri,
    event_id,
    job_name,
    run_job,
    version_label,
)
from lineage.openlineage.validation import live, validate
from registry.canonical import printable
from registry.errors import Conflict
from registry.events import NewEvent, make_event
from registry.ids import NodeId, check_name, dataset_id, job_id, run_id
from registry.store.raw import Raw
from registry.timeutil import to_timestamp

if TYPE_CHECKING:
    from registry.ledger import Ledger

# sourceCodeLocation job-facet field -> key of the run-started ``code``.
_CODE_FIELDS = {
    "version": "git_commit",
    "branch": "git_branch",
    "repoUrl": "repo_url",
    "url": "url",
    "path": "path",
}
# processing_engine run-facet field -> key of the run-started ``environment``.
_ENGINE_FIELDS = {
    "name": "name",
    "version": "version",
    "openlineageAdapterVersion": "openlineage_adapter_version",
}


# --- storable copies ------------------------------------------------------------------------


def _storable(value: Any, path: str, stringified: list[str]) -> Any:
    """``value`` with numbers canonical JSON cannot hold turned into strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        unsafe = abs(value) > SAFE_INT if isinstance(value, int) else not math.isfinite(value)
        if unsafe:
            stringified.append(path)
            return str(value)
        return value
    if isinstance(value, dict):
        # The path names where a number was stringified: printable, whatever the key holds.
        return {k: _storable(v, f"{path}.{printable(k)}", stringified) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v, f"{path}.{i}", stringified) for i, v in enumerate(value)]
    return value


def _redact(facets: dict[str, Any], path: str, redacted: list[str]) -> dict[str, Any]:
    out = dict(facets)
    for key, fields in REDACTED_FIELDS.items():
        facet = out.get(key)
        if not isinstance(facet, dict):
            continue
        removed = [f for f in fields if f in facet]
        if removed:
            out[key] = {k: v for k, v in facet.items() if k not in fields}
            redacted += [f"{path}.{key}.{f}" for f in removed]
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _schema_of(facets: dict[str, Any]) -> dict[str, str] | None:
    """Column name to type from a schema facet; nested fields as ``parent.child``."""
    facet = facets.get("schema")
    if not live(facet):
        return None
    out: dict[str, str] = {}

    def walk(fields: list[Any], prefix: str) -> None:
        for item in fields:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                name = prefix + item["name"]
                kind = item.get("type")
                out[name] = kind if isinstance(kind, str) else "unknown"
                walk(_list(item.get("fields")), name + ".")

    walk(_list(facet.get("fields")), "")
    return out


def _strings(facet: Any, keys: Mapping[str, str]) -> dict[str, str]:
    """Selected string fields of a facet, renamed."""
    return {
        ours: facet[theirs]
        for theirs, ours in keys.items()
        if live(facet) and isinstance(facet.get(theirs), str)
    }


@dataclass
class _Copy:
    """The stored copy of an OpenLineage event: ``kept`` is the event with unsafe
    numbers stringified (their paths in ``stringified``); ``redacted`` lists the
    run-facet fields removed."""

    doc: dict[str, Any]
    kept: dict[str, Any]
    stringified: list[str]
    redacted: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> _Copy:
        stringified: list[str] = []
        kept = _storable(doc, "", stringified)
        return cls(doc, kept, [p.lstrip(".") for p in stringified])

    @property
    def fingerprint(self) -> str:
        """The original event as canonical text: what makes a re-sent event the same."""
        return json.dumps(self.doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def body(self, **fields: Any) -> dict[str, Any]:
        """The body of an ``openlineage-*-event``: the envelope, ``fields``, and what
        was redacted and stringified."""
        kept = self.kept
        return {
            "event_time": kept["eventTime"],
            "producer": kept["producer"],
            "schema_url": kept["schemaURL"],
            **fields,
            "redacted": self.redacted,
            "stringified": self.stringified,
        }

    def job(self) -> dict[str, Any]:
        job = self.kept["job"]
        return {
            "namespace": job["namespace"],
            "name": job["name"],
            "facets": _dict(job.get("facets")),
        }

    def datasets(self, side: str, nodes: list[str]) -> list[dict[str, Any]]:
        extra = "input_facets" if side == "inputs" else "output_facets"
        theirs = "inputFacets" if side == "inputs" else "outputFacets"
        return [
            {
                "namespace": ds["namespace"],
                "name": ds["name"],
                "facets": _dict(ds.get("facets")),
                extra: _dict(ds.get(theirs)),
                "dataset": node,
            }
            for ds, node in zip(_list(self.kept.get(side)), nodes, strict=True)
        ]


# --- the batch -------------------------------------------------------------------------------


@dataclass
class _Batch:
    """The events one OpenLineage event becomes, and what they add to the ledger."""

    raw: Raw
    project: str
    actor: str
    when: str
    events: list[NewEvent] = field(default_factory=list)
    registered: set[str] = field(default_factory=set)
    latest: dict[str, str] = field(default_factory=dict)

    def add(self, type: str, entity: str, body: dict[str, Any], *key: str) -> None:
        """Append to the batch an event whose id is derived from the project and ``key``."""
        self.events.append(
            make_event(
                type,
                project=self.project,
                entity=entity,
                actor=self.actor,
                body=body,
                occurred_at=self.when,
                event_id=event_id(self.project, *key),
            )
        )

    def run_state(self, run: str) -> tuple[str, str] | None:
        """``(project, status)`` of a run, counting those started in this batch."""
        if any(e.type == "run-started" and e.entity == run for e in self.events):
            return self.project, "running"
        row = self.raw.one("SELECT project, status FROM cat_runs WHERE id = ?", (run,))
        return None if row is None else (row[0], row[1])

    def known(self, node: str) -> bool:
        return (
            node in self.registered
            or self.raw.one("SELECT 1 FROM cat_datasets WHERE id = ?", (node,)) is not None
        )

    def latest_version(self, name: str) -> str | None:
        if name not in self.latest:
            found = self.raw.scalar(
                "SELECT id FROM cat_datasets WHERE project = ? AND name = ? "
                "ORDER BY position DESC LIMIT 1",
                (self.project, name),
            )
            if found is None:
                return None
            self.latest[name] = found
        return self.latest[name]

    def dataset(self, ds: dict[str, Any], *, output: bool = False, run: str | None = None) -> str:
        """The dataset version an OpenLineage dataset stands for, registered if new.

        Its DatasetVersion facet names it; without one, a run's output is a new
        version ``run-<run uuid hex>`` and anything else is the latest version
        registered (or ``unversioned`` when there is none).
        """
        name = dataset_name(ds["namespace"], ds["name"])
        facet = _dict(ds.get("facets")).get("version")
        if live(facet):
            version = version_label(facet["datasetVersion"])
        elif output and run is not None:
            version = "run-" + uuid.UUID(NodeId.parse(run).name).hex
        else:
            latest = self.latest_version(name)
            if latest is not None:
                return latest
            version = "unversioned"
        node = dataset_id(self.project, name, version)
        if not self.known(node):
            self.register(node, ds, name, version, run if output else None)
        return node

    def register(
        self, node: str, ds: dict[str, Any], name: str, version: str, run: str | None
    ) -> None:
        """Register dataset version ``node``; ``run`` is the run that wrote it, if any."""
        namespace, ol_name = ds["namespace"], ds["name"]
        facets = _dict(ds.get("facets"))
        tags = {"openlineage.namespace": namespace, "openlineage.name": ol_name}
        if live(facets.get("version")):
            tags["openlineage.version"] = facets["version"]["datasetVersion"]
        stats = _dict(ds.get("outputFacets")).get("outputStatistics") if run else None
        rows = stats.get("rowCount") if live(stats) else None
        digest = hashlib.sha256("\0".join((namespace, ol_name, version)).encode()).hexdigest()
        body = {
            "name": name,
            "version": version,
            "digest": f"openlineage:sha256:{digest}",
            "uri": dataset_uri(namespace, ol_name),
            "schema": _schema_of(facets),
            "row_count": rows if isinstance(rows, int) and rows >= 0 else None,
            "produced_by": run,
            "tags": tags,
        }
        self.add("dataset-version-registered", node, body, "dataset-version-registered", node)
        self.registered.add(node)
        self.latest[name] = node

    def datasets(self, doc: dict[str, Any], side: str, run: str | None = None) -> list[str]:
        """The dataset versions of ``doc[side]`` (``inputs`` or ``outputs``); outputs
        of ``run`` when it is given."""
        output = run is not None
        return [self.dataset(ds, output=output, run=run) for ds in _list(doc.get(side))]


# --- one function per kind of event ---------------------------------------------------------


def to_events(ledger: Ledger, project: str, actor: str, doc: dict[str, Any]) -> list[NewEvent]:
    """The batch of events one OpenLineage event means in ``project``, for
    ``ledger.append``; it reads the ledger but writes nothing.

    Event ids are derived from the project and the OpenLineage content, so
    appending the batch of an event already recorded appends nothing. Raises
    InvalidInput for an invalid event, Conflict for a run id another project has.
    """
    check_name(project, "project")
    kind = validate(doc)
    when = to_timestamp(doc["eventTime"], "eventTime")
    copy = _Copy.of(doc)
    with ledger.store.read() as conn:
        batch = _Batch(Raw(conn), project, actor, when)
        if kind == "RunEvent":
            _run_event(batch, copy)
        elif kind == "DatasetEvent":
            _dataset_event(batch, copy)
        else:
            _job_event(batch, copy)
    return batch.events


def _dataset_event(batch: _Batch, copy: _Copy) -> None:
    dataset = copy.doc["dataset"]
    body = copy.body(
        namespace=dataset["namespace"],
        name=dataset["name"],
        facets=_dict(copy.kept["dataset"].get("facets")),
    )
    node = batch.dataset(dataset)
    batch.add(
        "openlineage-dataset-event", node, body, "openlineage-dataset-event", copy.fingerprint
    )


def _job_event(batch: _Batch, copy: _Copy) -> None:
    job = copy.doc["job"]
    entity = job_id(batch.project, job_name(job["namespace"], job["name"]))
    body = copy.body(
        job=copy.job(),
        inputs=copy.datasets("inputs", batch.datasets(copy.doc, "inputs")),
        outputs=copy.datasets("outputs", batch.datasets(copy.doc, "outputs")),
    )
    batch.add("openlineage-job-event", entity, body, "openlineage-job-event", copy.fingerprint)


def _run_event(batch: _Batch, copy: _Copy) -> None:
    """A RunEvent: the run's start (and its parent's) when new, the inputs it
    declares, the event itself, and the run's end for COMPLETE, FAIL or ABORT."""
    doc = copy.doc
    run = run_id(doc["run"]["runId"])
    status = _status(batch, run)
    if status is None:
        _start(batch, doc, run)
        status = "running"
    inputs = batch.datasets(doc, "inputs")
    if status == "running" and inputs:
        _declare_inputs(batch, run, inputs)
    outputs = batch.datasets(doc, "outputs", run)
    run_kept = _redact(_dict(copy.kept["run"].get("facets")), "run.facets", copy.redacted)
    body = copy.body(
        event_type=doc.get("eventType"),
        job=copy.job(),
        run_facets=run_kept,
        inputs=copy.datasets("inputs", inputs),
        outputs=copy.datasets("outputs", outputs),
    )
    batch.add("openlineage-run-event", run, body, "openlineage-run-event", copy.fingerprint)
    if status == "running":
        _end(batch, doc, run)


def _status(batch: _Batch, run: str) -> str | None:
    """The run's status (None when unknown); Conflict when another project has it."""
    state = batch.run_state(run)
    if state is not None and state[0] != batch.project:
        raise Conflict(
            f"run {run} belongs to project {state[0]!r}, not {batch.project!r}; OpenLineage "
            "run ids are global, so a run is recorded in one project only"
        )
    return None if state is None else state[1]


def _start(batch: _Batch, doc: dict[str, Any], run: str) -> None:
    """The run-started of a run first seen (and of its parent run, if new)."""
    job = doc["job"]
    run_facets = _dict(doc["run"].get("facets"))
    engine = _strings(run_facets.get("processing_engine"), _ENGINE_FIELDS)
    body = {
        "job": run_job(job["name"], job["namespace"]),
        "code": _strings(_dict(job.get("facets")).get("sourceCodeLocation"), _CODE_FIELDS),
        "environment": {"processing_engine": engine} if engine else {},
        "parent_run": _start_parent(batch, run_facets, run),
        "tags": {
            "openlineage.namespace": job["namespace"],
            "openlineage.job": job["name"],
            "openlineage.producer": doc["producer"],
            "openlineage.first_event": doc.get("eventType") or "none",
        },
    }
    batch.add("run-started", run, body, "run-started", run)


def _start_parent(batch: _Batch, run_facets: dict[str, Any], run: str) -> str | None:
    """The parent run of the ParentRunFacet (started here when unknown), if any."""
    facet = run_facets.get("parent")
    if not live(facet) or run_id(facet["run"]["runId"]) == run:
        return None
    parent = run_id(facet["run"]["runId"])
    namespace, name = facet["job"]["namespace"], facet["job"]["name"]
    if batch.run_state(parent) is None:
        body = {
            "job": run_job(name, namespace),
            "tags": {
                "openlineage.namespace": namespace,
                "openlineage.job": name,
                "openlineage.first_event": "parent facet",
            },
        }
        batch.add("run-started", parent, body, "run-started", parent)
    return parent


def _declare_inputs(batch: _Batch, run: str, inputs: list[str]) -> None:
    """A run-inputs-used for the inputs the running run has not declared yet."""
    declared = {
        r[0]
        for r in batch.raw.all(
            "SELECT src FROM lineage_edges WHERE dst = ? AND kind = 'input'", (run,)
        )
    }
    fresh = [node for node in dict.fromkeys(inputs) if node not in declared]
    if fresh:
        batch.add("run-inputs-used", run, {"inputs": fresh}, "run-inputs-used", run, *fresh)


def _end(batch: _Batch, doc: dict[str, Any], run: str) -> None:
    """The run's end, when the event is a COMPLETE, FAIL or ABORT."""
    event_type = doc.get("eventType")
    terminal = TERMINAL.get(event_type or "")
    if terminal is None:
        return
    body: dict[str, Any] = {}
    if terminal == "run-failed":
        run_facets = _dict(doc["run"].get("facets"))
        language = _dict(run_facets.get("errorMessage")).get("programmingLanguage")
        suffix = UNSAFE.sub("_", language)[:64] if isinstance(language, str) else ""
        body["error_type"] = f"openlineage.{event_type}" + (f".{suffix}" if suffix else "")
    # One id for either end, so a COMPLETE and a FAIL of one run never both land.
    batch.add(terminal, run, body, "run-ended", run)
