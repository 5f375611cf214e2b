"""OpenLineage in and out: validation, ingestion, Marquez-shaped lineage, emission.

Four library functions; the HTTP routes call them and add nothing:

- ``validate(doc)``: check a document against the OpenLineage 2-0-2 JSON
  schema (vendored under ``lineage/schemas/openlineage``) and the facets this
  module relies on; return its kind or raise ``LedgerError`` naming the first
  bad field.
- ``to_events(ledger, project, actor, doc)``: the batch of events one
  OpenLineage event means in this ledger (built, not appended; append it with
  ``first_wins=True``: its ids are derived, and the first claim of a run start
  or end stands).
- ``marquez_graph(ledger, project, node_id, depth)``: the lineage around a
  dataset or job, in the shape Marquez's ``GET /api/v1/lineage`` answers.
- ``emit(ledger, project, since=...)``: the project's runs, models and
  deployments as OpenLineage events, with mlledger's own facets.

The mapping rules (names, versions, parents, facets kept, idempotency,
out-of-order events) are described in ``docs/openlineage.md``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from lineage.graph import graph_of
from registry.canonical import json_problem, loads, printable
from registry.errors import Conflict, FieldError, InvalidNodeId, LedgerError, NotFound
from registry.events import NewEvent, make_event, upcast
from registry.ids import NodeId, check_name, dataset_id, job_id, run_id
from registry.lazy import lazy_import
from registry.store.raw import Raw, placeholders
from registry.timeutil import FORMAT, stored_form, to_timestamp

if TYPE_CHECKING:
    import networkx as nx

    from registry.ledger import Ledger
else:
    nx = lazy_import("networkx")  # loaded when first used: not for every command

Kind = Literal["RunEvent", "DatasetEvent", "JobEvent"]

SCHEMAS = Path(__file__).resolve().parent / "schemas"
SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
# uuid5 namespace of every event id this module derives (fixed forever: changing it
# would make re-sent OpenLineage events look new).
ID_NAMESPACE = uuid.UUID("5e9d6dd7-7835-4258-aba1-eb73099527b4")
_SAFE_INT = 2**53 - 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_NAME_MAX = 128
_JOB_MAX = 300  # cat_runs.job and lineage_nodes.label hold 300 characters
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
CHUNK = 500
TERMINAL = {"COMPLETE": "run-completed", "FAIL": "run-failed", "ABORT": "run-failed"}
# Run-facet fields removed before storage: they may hold personal data or secrets.
REDACTED_FIELDS: dict[str, tuple[str, ...]] = {
    "errorMessage": ("message", "stackTrace"),
    "environmentVariables": ("environmentVariables",),
}


def _package_version() -> str:
    try:
        return importlib.metadata.version("mlledger")
    except importlib.metadata.PackageNotFoundError:
        return "0"


#: Default ``producer`` of emitted events (and ``_producer`` of their facets).
PRODUCER = f"urn:mlledger:{_package_version()}"


# --- schemas ----------------------------------------------------------------------------


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36 and all(value[i] == "-" for i in (8, 13, 18, 23))


def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time: a date, a time and a UTC offset (or Z)."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


FORMATS = FormatChecker(formats=())
FORMATS.checks("uuid")(_is_uuid)
FORMATS.checks("date-time")(_is_date_time)


@dataclass(frozen=True)
class _Schemas:
    """Every schema, compiled once: one validator per event kind, one per facet we check."""

    events: dict[str, Draft202012Validator]
    # container ("run", "dataset", "output") -> facet key -> validator of {key: facet}
    facets: dict[str, dict[str, Draft202012Validator]]
    # facet key -> _schemaURL we write when emitting it
    urls: dict[str, str]


# Which facets are checked, in which facet container, by which schema file.
_CHECKED_FACETS: dict[str, dict[str, str]] = {
    "run": {
        "parent": "openlineage/facets/ParentRunFacet.json",
        "mlledger_run": "facets/MlledgerRunFacet.json",
        "mlledger_deployment": "facets/MlledgerDeploymentFacet.json",
    },
    "dataset": {
        "version": "openlineage/facets/DatasetVersionDatasetFacet.json",
        "schema": "openlineage/facets/SchemaDatasetFacet.json",
        "mlledger_dataset": "facets/MlledgerDatasetFacet.json",
        "mlledger_model": "facets/MlledgerModelFacet.json",
    },
    "output": {
        "outputStatistics": "openlineage/facets/OutputStatisticsOutputDatasetFacet.json",
    },
}


@functools.cache
def _schemas() -> _Schemas:
    documents = {
        path.relative_to(SCHEMAS).as_posix(): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMAS.rglob("*.json"))
    }
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents.values()
    )

    def compile_(schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(schema, registry=registry, format_checker=FORMATS)

    events = {
        kind: compile_({"$ref": f"{SPEC}#/$defs/{kind}"})
        for kind in ("RunEvent", "DatasetEvent", "JobEvent")
    }
    facets: dict[str, dict[str, Draft202012Validator]] = {}
    urls: dict[str, str] = {}
    for container, files in _CHECKED_FACETS.items():
        facets[container] = {}
        for key, file in files.items():
            doc = documents[file]
            facets[container][key] = compile_(doc)
            definition = doc["properties"][key]["$ref"].rsplit("/", 1)[1]
            urls[key] = f"{doc['$id']}#/$defs/{definition}"
    return _Schemas(events, facets, urls)


def schema_url(facet: str) -> str:
    """The ``_schemaURL`` written for facet ``facet`` (e.g. ``version``, ``mlledger_run``)."""
    return _schemas().urls[facet]


# --- validation ------------------------------------------------------------------------------


def _kind(doc: Any) -> Kind:
    """The kind of an event, decided as the spec's oneOf decides it."""
    if not isinstance(doc, dict):
        raise LedgerError(
            f"an OpenLineage event is a JSON object, got {type(doc).__name__}; expected a "
            "RunEvent, DatasetEvent or JobEvent"
        )
    if "run" in doc and "job" in doc:
        return "RunEvent"
    if "job" in doc:
        if "dataset" in doc:
            raise LedgerError(
                "OpenLineage event has both 'job' and 'dataset': expected a JobEvent (job "
                "without run) or a DatasetEvent (dataset), not both"
            )
        return "JobEvent"
    if "dataset" in doc:
        return "DatasetEvent"
    if "run" in doc:
        return "RunEvent"  # without a job: the RunEvent schema says what is missing
    raise LedgerError(
        "not an OpenLineage event: expected 'run' and 'job' (a RunEvent), 'dataset' "
        "(a DatasetEvent) or 'job' without 'run' (a JobEvent)"
    )


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts)


def _describe(kind: str, error: ValidationError, prefix: tuple[Any, ...]) -> str:
    where = [*prefix, *error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        if missing:
            where.append(missing[0])
            return f"invalid OpenLineage {kind}: {_path(where)}: is missing; it is required"
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    if error.validator == "format":
        message += f"; expected {_FORMAT_HINTS.get(error.validator_value, error.validator_value)}"
    return f"invalid OpenLineage {kind}: {_path(where) or '(event)'}: {message}"


_FORMAT_HINTS = {
    "uuid": "a UUID such as 0190b4a4-1f00-7000-8000-0123456789ab",
    "date-time": "an RFC 3339 time with its UTC offset, such as 2024-05-01T10:00:00Z",
}


def _facet_containers(kind: Kind, doc: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """``(path, container)`` of every facet map of the event the checked facets live in."""
    if kind == "RunEvent":
        yield ("run", "facets"), "run"
    if kind == "DatasetEvent":
        yield ("dataset", "facets"), "dataset"
        return
    for side in ("inputs", "outputs"):
        items = doc.get(side)
        for i in range(len(items) if isinstance(items, list) else 0):
            yield (side, i, "facets"), "dataset"
            if side == "outputs":
                yield (side, i, "outputFacets"), "output"


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
            doc = doc[part]
        else:
            return None
    return doc


def _live(facet: Any) -> TypeGuard[dict[str, Any]]:
    """A facet that is present and not a deletion marker (``_deleted: true``)."""
    return isinstance(facet, dict) and facet.get("_deleted") is not True


def validate(doc: Any) -> str:
    """Check an OpenLineage event; return its kind ("RunEvent", "DatasetEvent" or
    "JobEvent") or raise LedgerError naming the first bad field and what was expected.

    The event is checked against the OpenLineage 2-0-2 schema with formats
    (``uuid``, ``date-time``) enforced, then each facet this ledger reads
    (``parent``, ``version``, ``schema``, ``outputStatistics``, and mlledger's
    own) against its facet schema. Other facets need only be facets (an object
    with ``_producer`` and ``_schemaURL``).
    """
    # Numbers beyond what canonical JSON holds are kept as strings (``stringified``).
    problem = json_problem(doc, numbers=False)
    if problem is not None:  # a lone surrogate, or nesting the log cannot hold
        where, why = problem
        raise FieldError("body" + (f".{where}" if where else ""), f"{where or 'the event'}: {why}")
    kind = _kind(doc)
    schemas = _schemas()
    error = best_match(schemas.events[kind].iter_errors(doc))
    if error is not None:
        raise LedgerError(_describe(kind, error, ()))
    for path, container in _facet_containers(kind, doc):
        facets = _at(doc, path)
        if not isinstance(facets, dict):
            continue
        for key, validator in schemas.facets[container].items():
            if _live(facets.get(key)):
                error = best_match(validator.iter_errors({key: facets[key]}))
                if error is not None:
                    raise LedgerError(_describe(kind, error, path))
    return kind


# --- names --------------------------------------------------------------------------------


def _hash8(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


def _safe(text: str, suffix: str | None) -> str:
    """A valid mlledger name from ``text``: unsafe characters replaced by '_', leading
    punctuation dropped, trimmed to fit with ``-<suffix>``. Without a suffix, the text
    is kept as it is when already valid, else suffixed with a hash of itself."""
    base = _UNSAFE.sub("_", text).lstrip("._-")
    if suffix is None:
        if base == text and 0 < len(base) <= _NAME_MAX:
            return base
        suffix = _hash8(text)
    base = base[: _NAME_MAX - len(suffix) - 1]
    return f"{base}-{suffix}" if base else suffix


def dataset_name(namespace: str, name: str) -> str:
    """mlledger dataset name of the OpenLineage dataset ``(namespace, name)``:
    the name made safe, with ``-`` and the first 8 hex digits of
    ``sha256(namespace + '\\0' + name)`` always appended."""
    return _safe(name, _hash8(namespace, name))


def version_label(version: str) -> str:
    """mlledger version label of an OpenLineage ``datasetVersion``: as it is when
    valid, else made safe and suffixed with 8 hex digits of its SHA-256."""
    return _safe(version, None)


def job_name(namespace: str, name: str) -> str:
    """mlledger name (in ``job:<project>/<name>``) of the OpenLineage job, made like
    a dataset name."""
    return _safe(name, _hash8(namespace, name))


def _run_job(name: str, namespace: str) -> str:
    """The job text of a run-started: the OpenLineage job name, shortened (with a
    hash) only when it is empty or longer than 300 characters."""
    if 0 < len(name) <= _JOB_MAX:
        return name
    suffix = _hash8(namespace, name)
    return f"{name[: _JOB_MAX - 9]}-{suffix}" if name else f"job-{suffix}"


def dataset_uri(namespace: str, name: str) -> str:
    """Where an OpenLineage dataset lives, following the naming spec: ``file`` + path
    gives ``file://<path>``; a namespace with a scheme (``s3://bucket``,
    ``postgres://host:5432``) is joined to the name with one '/'; any other
    namespace (``bigquery``) gives ``<namespace>/<name>``."""
    if namespace == "file":
        return "file://" + name
    if namespace.endswith("/"):
        return namespace + name.lstrip("/")
    if name.startswith("/"):
        return namespace + name
    return f"{namespace}/{name}"


def _event_id(*parts: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, "\0".join(parts)))


# --- storable copies ------------------------------------------------------------------------


def _storable(value: Any, path: str, stringified: list[str]) -> Any:
    """``value`` with numbers canonical JSON cannot hold turned into strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if abs(value) > _SAFE_INT:
            stringified.append(path)
            return str(value)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
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
    if not _live(facet):
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
        if _live(facet) and isinstance(facet.get(theirs), str)
    }


# --- ingestion -------------------------------------------------------------------------------


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
                event_id=_event_id(self.project, *key),
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
        namespace, ol_name = ds["namespace"], ds["name"]
        name = dataset_name(namespace, ol_name)
        facets = _dict(ds.get("facets"))
        tags = {"openlineage.namespace": namespace, "openlineage.name": ol_name}
        facet = facets.get("version")
        if _live(facet):
            tags["openlineage.version"] = facet["datasetVersion"]
            version = version_label(facet["datasetVersion"])
        elif output and run is not None:
            version = "run-" + uuid.UUID(NodeId.parse(run).name).hex
        else:
            latest = self.latest_version(name)
            if latest is not None:
                return latest
            version = "unversioned"
        node = dataset_id(self.project, name, version)
        if self.known(node):
            return node
        stats = _dict(ds.get("outputFacets")).get("outputStatistics") if output else None
        rows = stats.get("rowCount") if _live(stats) else None
        digest = hashlib.sha256("\0".join((namespace, ol_name, version)).encode()).hexdigest()
        self.add(
            "dataset-version-registered",
            node,
            {
                "name": name,
                "version": version,
                "digest": f"openlineage:sha256:{digest}",
                "uri": dataset_uri(namespace, ol_name),
                "schema": _schema_of(facets),
                "row_count": rows if isinstance(rows, int) and rows >= 0 else None,
                "produced_by": run if output else None,
                "tags": tags,
            },
            "dataset-version-registered",
            node,
        )
        self.registered.add(node)
        self.latest[name] = node
        return node


def _parent(run_facets: dict[str, Any]) -> tuple[str, str, str] | None:
    """``(runId, job namespace, job name)`` of the ParentRunFacet, if any."""
    facet = run_facets.get("parent")
    if not _live(facet):
        return None
    return facet["run"]["runId"], facet["job"]["namespace"], facet["job"]["name"]


def _fingerprint(doc: dict[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_events(ledger: Ledger, project: str, actor: str, doc: dict[str, Any]) -> list[NewEvent]:
    """The batch of events one OpenLineage event means in ``project``, for
    ``ledger.append``; it reads the ledger but writes nothing.

    Event ids are derived from the project and the OpenLineage content, so
    appending the batch of an event already recorded appends nothing. Raises
    LedgerError for an invalid event, Conflict for a run id another project has.
    """
    check_name(project, "project")
    kind = validate(doc)
    when = to_timestamp(doc["eventTime"], "eventTime")
    stringified: list[str] = []
    redacted: list[str] = []
    kept = _storable(doc, "", stringified)
    stringified = [p.lstrip(".") for p in stringified]
    with ledger.store.read() as conn:
        batch = _Batch(Raw(conn), project, actor, when)
        if kind == "RunEvent":
            _run_event(batch, doc, kept, redacted, stringified)
        elif kind == "DatasetEvent":
            node = batch.dataset(doc["dataset"])
            batch.add(
                "openlineage-dataset-event",
                node,
                {
                    **_envelope(kept),
                    "namespace": doc["dataset"]["namespace"],
                    "name": doc["dataset"]["name"],
                    "facets": _dict(kept["dataset"].get("facets")),
                    "redacted": redacted,
                    "stringified": stringified,
                },
                "openlineage-dataset-event",
                _fingerprint(doc),
            )
        else:
            job = doc["job"]
            entity = job_id(project, job_name(job["namespace"], job["name"]))
            ins = [batch.dataset(ds) for ds in _list(doc.get("inputs"))]
            outs = [batch.dataset(ds) for ds in _list(doc.get("outputs"))]
            batch.add(
                "openlineage-job-event",
                entity,
                {
                    **_envelope(kept),
                    "job": _job(kept),
                    "inputs": _datasets(kept, "inputs", ins),
                    "outputs": _datasets(kept, "outputs", outs),
                    "redacted": redacted,
                    "stringified": stringified,
                },
                "openlineage-job-event",
                _fingerprint(doc),
            )
    return batch.events


def _envelope(kept: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_time": kept["eventTime"],
        "producer": kept["producer"],
        "schema_url": kept["schemaURL"],
    }


def _job(kept: dict[str, Any]) -> dict[str, Any]:
    job = kept["job"]
    return {
        "namespace": job["namespace"],
        "name": job["name"],
        "facets": _dict(job.get("facets")),
    }


def _datasets(kept: dict[str, Any], side: str, nodes: list[str]) -> list[dict[str, Any]]:
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
        for ds, node in zip(_list(kept.get(side)), nodes, strict=True)
    ]


def _run_event(
    batch: _Batch,
    doc: dict[str, Any],
    kept: dict[str, Any],
    redacted: list[str],
    stringified: list[str],
) -> None:
    project = batch.project
    run = run_id(doc["run"]["runId"])
    job = doc["job"]
    event_type = doc.get("eventType")
    run_facets = _dict(doc["run"].get("facets"))
    state = batch.run_state(run)
    if state is not None and state[0] != project:
        raise Conflict(
            f"run {run} belongs to project {state[0]!r}, not {project!r}; OpenLineage run "
            "ids are global, so a run is recorded in one project only"
        )
    status = None if state is None else state[1]
    if status is None:
        parent_run = None
        parent = _parent(run_facets)
        if parent is not None and run_id(parent[0]) != run:
            parent_run = run_id(parent[0])
            if batch.run_state(parent_run) is None:
                batch.add(
                    "run-started",
                    parent_run,
                    {
                        "job": _run_job(parent[2], parent[1]),
                        "tags": {
                            "openlineage.namespace": parent[1],
                            "openlineage.job": parent[2],
                            "openlineage.first_event": "parent facet",
                        },
                    },
                    "run-started",
                    parent_run,
                )
        code = _strings(
            _dict(job.get("facets")).get("sourceCodeLocation"),
            {
                "version": "git_commit",
                "branch": "git_branch",
                "repoUrl": "repo_url",
                "url": "url",
                "path": "path",
            },
        )
        engine = _strings(
            run_facets.get("processing_engine"),
            {
                "name": "name",
                "version": "version",
                "openlineageAdapterVersion": "openlineage_adapter_version",
            },
        )
        batch.add(
            "run-started",
            run,
            {
                "job": _run_job(job["name"], job["namespace"]),
                "code": code,
                "environment": {"processing_engine": engine} if engine else {},
                "parent_run": parent_run,
                "tags": {
                    "openlineage.namespace": job["namespace"],
                    "openlineage.job": job["name"],
                    "openlineage.producer": doc["producer"],
                    "openlineage.first_event": event_type or "none",
                },
            },
            "run-started",
            run,
        )
        status = "running"
    inputs = [batch.dataset(ds) for ds in _list(doc.get("inputs"))]
    if status == "running" and inputs:
        declared = {
            r[0]
            for r in batch.raw.all(
                "SELECT src FROM lineage_edges WHERE dst = ? AND kind = 'input'", (run,)
            )
        }
        fresh = [node for node in dict.fromkeys(inputs) if node not in declared]
        if fresh:
            batch.add("run-inputs-used", run, {"inputs": fresh}, "run-inputs-used", run, *fresh)
    outputs = [batch.dataset(ds, output=True, run=run) for ds in _list(doc.get("outputs"))]
    run_kept = _redact(_dict(kept["run"].get("facets")), "run.facets", redacted)
    batch.add(
        "openlineage-run-event",
        run,
        {
            **_envelope(kept),
            "event_type": event_type,
            "job": _job(kept),
            "run_facets": run_kept,
            "inputs": _datasets(kept, "inputs", inputs),
            "outputs": _datasets(kept, "outputs", outputs),
            "redacted": redacted,
            "stringified": stringified,
        },
        "openlineage-run-event",
        _fingerprint(doc),
    )
    terminal = TERMINAL.get(event_type or "")
    if terminal is not None and status == "running":
        body: dict[str, Any] = {}
        if terminal == "run-failed":
            language = _dict(run_facets.get("errorMessage")).get("programmingLanguage")
            suffix = _UNSAFE.sub("_", language)[:64] if isinstance(language, str) else ""
            body["error_type"] = f"openlineage.{event_type}" + (f".{suffix}" if suffix else "")
        # One id for either end, so a COMPLETE and a FAIL of one run never both land.
        batch.add(terminal, run, body, "run-ended", run)


# --- shared: mlledger nodes as OpenLineage datasets and jobs ------------------------------


def _tags(text: str | None) -> dict[str, str]:
    return {} if not text else dict(json.loads(text))


def _dataset_key(project: str, name: str, tags: Mapping[str, str]) -> tuple[str, str]:
    """(namespace, name) of a dataset version: its OpenLineage origin, else the project."""
    if "openlineage.namespace" in tags and "openlineage.name" in tags:
        return tags["openlineage.namespace"], tags["openlineage.name"]
    return project, name


def _model_key(project: str, name: str) -> tuple[str, str]:
    return project, f"model/{name}"


def _run_key(project: str, job: str, tags: Mapping[str, str]) -> tuple[str, str]:
    """(namespace, name) of a run's job: its OpenLineage origin, else the project."""
    if "openlineage.namespace" in tags and "openlineage.job" in tags:
        return tags["openlineage.namespace"], tags["openlineage.job"]
    return project, job


def _deployment_key(project: str, name: str) -> tuple[str, str]:
    return project, f"deployment/{name}"


def _deployment_run(deployment: str, position: int) -> str:
    """The OpenLineage runId of a deployment's configuration change at ``position``."""
    return str(uuid.uuid5(ID_NAMESPACE, f"deployment-change\0{deployment}\0{position}"))


def _uuid_of(run: str) -> str:
    return NodeId.parse(run).name


# --- Marquez-shaped lineage ---------------------------------------------------------------

NodeType = Literal["DATASET", "JOB"]


def _marquez_id(node_type: NodeType, key: tuple[str, str]) -> str:
    return f"{'dataset' if node_type == 'DATASET' else 'job'}:{key[0]}:{key[1]}"


@dataclass
class _Node:
    type: NodeType
    key: tuple[str, str]
    kind: str  # dataset, model, job, deployment
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return _marquez_id(self.type, self.key)


@dataclass
class _Project:
    """A project's catalogue grouped into Marquez's nodes, and the edges between them."""

    project: str
    nodes: dict[str, _Node] = field(default_factory=dict)
    of: dict[str, str] = field(default_factory=dict)  # mlledger node id -> Marquez node id
    edges: set[tuple[str, str]] = field(default_factory=set)
    versions: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> ns,name,v
    run_io: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # run -> in/out

    def _add(
        self, node_type: NodeType, key: tuple[str, str], kind: str, row: dict[str, Any], member: str
    ) -> None:
        node_id = _marquez_id(node_type, key)
        node = self.nodes.get(node_id)
        if node is None:
            node = self.nodes[node_id] = _Node(node_type, key, kind)
        node.rows.append(row)
        self.of[member] = node_id

    @classmethod
    def load(cls, conn: Any, project: str, graph: nx.MultiDiGraph) -> _Project:
        raw = Raw(conn)
        world = cls(project)
        for node, name, version, schema, tags, at, produced_by in raw.all(
            "SELECT id, name, version, schema, tags, registered_at, produced_by "
            "FROM cat_datasets WHERE project = ? ORDER BY position",
            (project,),
        ):
            labels = _tags(tags)
            key = _dataset_key(project, name, labels)
            world._add(
                "DATASET",
                key,
                "dataset",
                {
                    "id": node,
                    "version": version,
                    "at": at,
                    "produced_by": produced_by,
                    "schema": None if schema is None else json.loads(schema),
                },
                node,
            )
            world.versions[node] = (*key, version)
        for node, name, version, at, run in raw.all(
            "SELECT id, name, version, registered_at, run FROM cat_models "
            "WHERE project = ? ORDER BY position",
            (project,),
        ):
            key = _model_key(project, name)
            world._add(
                "DATASET",
                key,
                "model",
                {
                    "id": node,
                    "version": version,
                    "at": at,
                    "produced_by": run,
                    "schema": None,
                },
                node,
            )
            world.versions[node] = (*key, version)
        for node, job, tags, status, params, parent, started, ended, error in raw.all(
            "SELECT id, job, tags, status, params, parent_run, started_at, ended_at, error_type "
            "FROM cat_runs WHERE project = ? ORDER BY position",
            (project,),
        ):
            world._add(
                "JOB",
                _run_key(project, job, _tags(tags)),
                "job",
                {
                    "id": node,
                    "status": status,
                    "params": json.loads(params),
                    "parent": parent,
                    "started": started,
                    "ended": ended,
                    "error": error,
                },
                node,
            )
        for node, name, served, created, updated, position in raw.all(
            "SELECT id, name, served, created_at, updated_at, position FROM cat_deployments "
            "WHERE project = ? ORDER BY created_at, id",
            (project,),
        ):
            world._add(
                "JOB",
                _deployment_key(project, name),
                "deployment",
                {
                    "id": node,
                    "served": json.loads(served),
                    "created": created,
                    "updated": updated,
                    "position": position,
                },
                node,
            )
        for member, node_id in world.of.items():
            if member not in graph:
                continue
            for _src, dst, data in graph.out_edges(member, data=True):
                if data["kind"] in ("input", "output", "serves") and dst in world.of:
                    world.edges.add((node_id, world.of[dst]))
                    if data["kind"] == "input":
                        world.run_io.setdefault(dst, {}).setdefault("in", []).append(member)
                    elif data["kind"] == "output":
                        world.run_io.setdefault(member, {}).setdefault("out", []).append(dst)
        return world

    def find(self, node_type: NodeType, rest: str) -> _Node | None:
        """The node ``<namespace>:<name>`` names, trying each ':' as the separator."""
        for i, char in enumerate(rest):
            if char == ":":
                node = self.nodes.get(_marquez_id(node_type, (rest[:i], rest[i + 1 :])))
                if node is not None:
                    return node
        return None


def _parse_marquez(node_id: str) -> tuple[NodeType, str]:
    expected = (
        "expected 'dataset:<namespace>:<name>' or 'job:<namespace>:<name>' "
        "(the namespace may itself contain ':')"
    )
    if not isinstance(node_id, str) or ":" not in node_id:
        raise InvalidNodeId(f"node id {node_id!r} is not a Marquez node id: {expected}")
    prefix, rest = node_id.split(":", 1)
    if prefix not in ("dataset", "job") or ":" not in rest:
        raise InvalidNodeId(f"node id {node_id!r} is not a Marquez node id: {expected}")
    return ("DATASET" if prefix == "dataset" else "JOB"), rest


def marquez_graph(ledger: Ledger, project: str, node_id: str, depth: int = 20) -> dict[str, Any]:
    """The lineage around a dataset or job of ``project``, shaped as Marquez's
    ``GET /api/v1/lineage?nodeId=...&depth=...`` answers it.

    Nodes are datasets (dataset versions grouped by OpenLineage namespace and
    name; native ones in the project's namespace; model versions as
    ``model/<name>``) and jobs (runs grouped by job; deployments as
    ``deployment/<name>``). Edges go dataset -> job (read, or served) and job ->
    dataset (written). The walk follows edges both ways up to ``depth`` hops; a
    job found brings all its datasets. Nodes are sorted by id, edges by origin
    then destination.
    """
    check_name(project, "project")
    if not isinstance(depth, int) or depth < 0:
        raise InvalidNodeId(f"depth {depth!r} is not valid: expected 0 or more")
    node_type, rest = _parse_marquez(node_id)
    with ledger.store.read() as conn:
        world = _Project.load(conn, project, graph_of(ledger).current(conn))
    start = world.find(node_type, rest)
    if start is None:
        raise NotFound(f"no {node_type.lower()} {node_id!r} in project {project!r}")
    neighbours: dict[str, set[str]] = {}
    for origin, destination in world.edges:
        neighbours.setdefault(origin, set()).add(destination)
        neighbours.setdefault(destination, set()).add(origin)
    seen = {start.id: 0}
    queue: deque[str] = deque([start.id])
    while queue:
        current = queue.popleft()
        if seen[current] >= depth:
            continue
        for nxt in sorted(neighbours.get(current, ())):
            if nxt not in seen:
                seen[nxt] = seen[current] + 1
                queue.append(nxt)
    included = set(seen)
    for node in list(seen):
        if world.nodes[node].type == "JOB":
            included |= neighbours.get(node, set())
    incoming: dict[str, list[str]] = {}
    outgoing: dict[str, list[str]] = {}
    for origin, destination in sorted(world.edges):
        incoming.setdefault(destination, []).append(origin)
        outgoing.setdefault(origin, []).append(destination)
    graph = []
    for node in sorted(included):
        item = world.nodes[node]
        ins = [o for o in incoming.get(node, []) if o in included]
        outs = [d for d in outgoing.get(node, []) if d in included]
        graph.append(
            {
                "id": node,
                "type": item.type,
                "data": (
                    _dataset_data(item)
                    if item.type == "DATASET"
                    else _job_data(world, item, incoming.get(node, []), outgoing.get(node, []))
                ),
                "inEdges": [{"origin": o, "destination": node} for o in ins],
                "outEdges": [{"origin": node, "destination": d} for d in outs],
            }
        )
    return {"graph": graph}


def _ref(key: tuple[str, str]) -> dict[str, str]:
    return {"namespace": key[0], "name": key[1]}


def _dataset_data(node: _Node) -> dict[str, Any]:
    """A node's data shaped as Marquez's DatasetData (plus currentVersion and mlledger)."""
    first, latest = node.rows[0], node.rows[-1]
    written = [r["at"] for r in node.rows if r["produced_by"]]
    return {
        "id": _ref(node.key),
        "type": "DB_TABLE",
        "name": node.key[1],
        "physicalName": node.key[1],
        "createdAt": first["at"],
        "updatedAt": latest["at"],
        "namespace": node.key[0],
        "sourceName": node.key[0],
        "fields": [
            {"name": name, "type": kind, "tags": [], "description": None}
            for name, kind in (latest["schema"] or {}).items()
        ],
        "tags": [],
        "lastModifiedAt": max(written) if written else None,
        "description": None,
        "lastLifecycleState": None,
        "currentVersion": latest["id"],
        "mlledger": {"kind": node.kind, "versions": len(node.rows)},
    }


def _duration_ms(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    # Earlier versions wrote years below 1000 without zero padding.
    finish = datetime.strptime(stored_form(end) or end, FORMAT)
    delta = finish - datetime.strptime(stored_form(start) or start, FORMAT)
    return int(delta.total_seconds() * 1000)


_STATES = {"running": "RUNNING", "completed": "COMPLETED", "failed": "FAILED"}


def _versions(world: _Project, nodes: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for node in sorted(set(nodes)):
        if node in world.versions:
            namespace, name, version = world.versions[node]
            out.append(
                {
                    "datasetVersionId": {"namespace": namespace, "name": name, "version": version},
                    "facets": {},
                }
            )
    return out


def _latest_run(world: _Project, node: _Node) -> dict[str, Any]:
    """The latest run of a job node, shaped as Marquez's Run."""
    job = {"namespace": node.key[0], "name": node.key[1], "version": None}
    row = node.rows[-1]
    if node.kind == "deployment":
        at = row["updated"]
        return {
            "id": _deployment_run(row["id"], row["position"]),
            "createdAt": at,
            "updatedAt": at,
            "nominalStartTime": None,
            "nominalEndTime": None,
            "state": "COMPLETED",
            "startedAt": at,
            "endedAt": at,
            "durationMs": 0,
            "args": {},
            "jobVersion": job,
            "inputDatasetVersions": _versions(world, [s["model"] for s in row["served"]]),
            "outputDatasetVersions": [],
            "facets": {},
        }
    state = _STATES.get(row["status"], "OTHER")
    if state == "FAILED" and (row["error"] or "").startswith("openlineage.ABORT"):
        state = "ABORTED"
    return {
        "id": _uuid_of(row["id"]),
        "createdAt": row["started"],
        "updatedAt": row["ended"] or row["started"],
        "nominalStartTime": None,
        "nominalEndTime": None,
        "state": state,
        "startedAt": row["started"],
        "endedAt": row["ended"],
        "durationMs": _duration_ms(row["started"], row["ended"]),
        "args": {
            k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
            for k, v in row["params"].items()
        },
        "jobVersion": job,
        "inputDatasetVersions": _versions(world, world.run_io.get(row["id"], {}).get("in", [])),
        "outputDatasetVersions": _versions(world, world.run_io.get(row["id"], {}).get("out", [])),
        "facets": {},
    }


def _job_data(world: _Project, node: _Node, ins: list[str], outs: list[str]) -> dict[str, Any]:
    """A node's data shaped as Marquez's JobData (plus mlledger): ``ins`` and ``outs``
    are every dataset it ever read (or served) and wrote."""
    row = node.rows[-1]
    parent_name = None
    if node.kind == "deployment":
        created, updated = node.rows[0]["created"], row["updated"]
        current = _deployment_run(row["id"], row["position"])
    else:
        created = node.rows[0]["started"]
        updated = max(r["ended"] or r["started"] for r in node.rows)
        current = _uuid_of(row["id"])
        if row["parent"] and row["parent"] in world.of:
            parent_name = world.nodes[world.of[row["parent"]]].key[1]
    return {
        "id": _ref(node.key),
        "type": "SERVICE" if node.kind == "deployment" else "BATCH",
        "name": node.key[1],
        "simpleName": node.key[1],
        "parentJobName": parent_name,
        "parentJobUuid": None,
        "currentRunUuid": current,
        "createdAt": created,
        "updatedAt": updated,
        "namespace": node.key[0],
        "inputs": [_ref(world.nodes[n].key) for n in ins],
        "outputs": [_ref(world.nodes[n].key) for n in outs],
        "location": None,
        "description": None,
        "latestRun": _latest_run(world, node),
        "mlledger": {"kind": node.kind, "runs": len(node.rows)},
    }


# --- emission --------------------------------------------------------------------------------

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


def _event_url(kind: Kind) -> str:
    return f"{SPEC}#/$defs/{kind}"


@dataclass
class _Emitter:
    """Builds the OpenLineage events of one chunk of the log, reading the catalogue."""

    raw: Raw
    project: str
    producer: str
    runs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    ends: dict[str, int | None] = field(default_factory=dict)

    def facet(self, key: str, /, **fields: Any) -> dict[str, Any]:
        return {"_producer": self.producer, "_schemaURL": schema_url(key), **fields}

    def run(self, run: str) -> dict[str, Any] | None:
        if run not in self.runs:
            row = self.raw.one(
                "SELECT project, job, status, params, metrics, code, environment, tags, "
                "parent_run, error_type FROM cat_runs WHERE id = ?",
                (run,),
            )
            self.runs[run] = (
                None
                if row is None
                else {
                    "project": row[0],
                    "job": row[1],
                    "status": row[2],
                    "params": json.loads(row[3]),
                    "metrics": json.loads(row[4]),
                    "code": json.loads(row[5]),
                    "environment": json.loads(row[6]),
                    "tags": _tags(row[7]),
                    "parent_run": row[8],
                    "error_type": row[9],
                }
            )
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

    def job(self, row: dict[str, Any]) -> dict[str, Any]:
        namespace, name = _run_key(row["project"], row["job"], row["tags"])
        return {"namespace": namespace, "name": name, "facets": {}}

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
                run={"runId": _uuid_of(parent)},
                job={"namespace": job["namespace"], "name": job["name"]},
            )
        return facets

    def dataset(self, node: str, *, output: bool = False) -> dict[str, Any] | None:
        """An input or output dataset for a dataset or model version of the project."""
        parsed = NodeId.parse(node)
        if parsed.project != self.project:
            return None  # another project's data stays out of this project's export
        if parsed.kind == "model":
            row = self.raw.one(
                "SELECT name, version, run, artifact_uri, artifact_digest, framework, tags "
                "FROM cat_models WHERE id = ?",
                (node,),
            )
            if row is None:
                return None
            name, version, run, uri, digest, framework, tags = row
            namespace, ol_name = _model_key(self.project, name)
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
                    tags=_tags(tags),
                ),
            }
            out: dict[str, Any] = {"namespace": namespace, "name": ol_name, "facets": facets}
            if output:
                out["outputFacets"] = {}
            return out
        row = self.raw.one(
            "SELECT name, version, digest, uri, schema, row_count, derived_from, tags "
            "FROM cat_datasets WHERE id = ?",
            (node,),
        )
        if row is None:
            return None
        name, version, digest, uri, schema, row_count, derived, tags = row
        labels = _tags(tags)
        namespace, ol_name = _dataset_key(self.project, name, labels)
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
        out = {"namespace": namespace, "name": ol_name, "facets": facets}
        if output:
            out["outputFacets"] = (
                {"outputStatistics": self.facet("outputStatistics", rowCount=row_count)}
                if row_count is not None
                else {}
            )
        else:
            out["inputFacets"] = {}
        return out

    def datasets(self, nodes: Iterable[str], *, output: bool) -> list[dict[str, Any]]:
        found = (self.dataset(n, output=output) for n in dict.fromkeys(nodes))
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
            "schemaURL": _event_url("RunEvent"),
            "run": {"runId": run_uuid, "facets": run_facets},
            "job": job,
            "inputs": inputs,
            "outputs": outputs,
        }

    def dataset_event(self, when: str, dataset: dict[str, Any]) -> dict[str, Any]:
        return {
            "eventTime": when,
            "producer": self.producer,
            "schemaURL": _event_url("DatasetEvent"),
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
                _uuid_of(run),
                self.job(row),
                self.run_facets(run, row, None),
                [],
                self.datasets([node], output=True),
            )
        ]

    def events_for(
        self, position: int, type: str, entity: str, when: str, body: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if type == "run-started":
            row = self.run(entity)
            if row is None:
                return []
            return [
                self.run_event(
                    "START",
                    when,
                    _uuid_of(entity),
                    self.job(row),
                    self.run_facets(entity, row, body),
                    [],
                    [],
                )
            ]
        if type in ("run-completed", "run-failed"):
            row = self.run(entity)
            if row is None:
                return []
            # In the order declared (the edges table does not keep it).
            inputs = [
                node
                for version, body in self.raw.all(
                    "SELECT schema_version, body FROM events WHERE entity = ? "
                    "AND type = 'run-inputs-used' AND position < ? ORDER BY position",
                    (entity, position),
                )
                for node in upcast("run-inputs-used", version, loads(body))["inputs"]
            ]
            outputs = [
                r[0]
                for r in self.raw.all(
                    "SELECT dst FROM lineage_edges WHERE src = ? AND kind = 'output' "
                    "AND opened_pos < ? ORDER BY opened_pos, dst",
                    (entity, position),
                )
            ]
            return [
                self.run_event(
                    "COMPLETE" if type == "run-completed" else "FAIL",
                    when,
                    _uuid_of(entity),
                    self.job(row),
                    self.run_facets(entity, row, None),
                    self.datasets(inputs, output=False),
                    self.datasets(outputs, output=True),
                )
            ]
        if type == "dataset-version-registered":
            return self.produced(position, when, body.get("produced_by"), entity)
        if type == "model-version-registered":
            return self.produced(position, when, body.get("run"), entity)
        if type in ("deployment-configured", "deployment-retired"):
            return [self.deployment(position, type, entity, when, body)]
        if type == "openlineage-job-event":
            return [self.job_event(when, body)]
        return []

    def deployment(
        self, position: int, type: str, entity: str, when: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        name = NodeId.parse(entity).name
        namespace, job_name_ = _deployment_key(self.project, name)
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
            _deployment_run(entity, position),
            {"namespace": namespace, "name": job_name_, "facets": {}},
            {"mlledger_deployment": facet},
            self.datasets([s["model"] for s in served], output=False),
            [],
        )

    def job_event(self, when: str, body: dict[str, Any]) -> dict[str, Any]:
        """A recorded OpenLineage JobEvent, sent on with its original names and facets."""
        return {
            "eventTime": body["event_time"],
            "producer": self.producer,
            "schemaURL": _event_url("JobEvent"),
            "job": body["job"],
            "inputs": [
                {
                    "namespace": d["namespace"],
                    "name": d["name"],
                    "facets": d["facets"],
                    "inputFacets": d["input_facets"],
                }
                for d in body["inputs"]
            ],
            "outputs": [
                {
                    "namespace": d["namespace"],
                    "name": d["name"],
                    "facets": d["facets"],
                    "outputFacets": d["output_facets"],
                }
                for d in body["outputs"]
            ],
        }


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
        raise LedgerError(f"since {since!r} is not valid: expected a log position, 0 or more")
    cursor = since
    types = placeholders(len(EMITTED_TYPES))
    bounds, extra = "", []
    for sql, value in (
        ("position < ?", stop),
        ("recorded_at >= ?", recorded[0]),
        ("recorded_at < ?", recorded[1]),
    ):
        if value is not None:
            bounds += f" AND {sql}"
            extra.append(value)
    while True:
        with ledger.store.read() as conn:
            raw = Raw(conn)
            rows = raw.all(
                "SELECT position, type, schema_version, entity, occurred_at, body FROM events "
                f"WHERE project = ? AND position >= ? AND type IN ({types}){bounds} "
                "ORDER BY position LIMIT ?",
                (project, cursor, *EMITTED_TYPES, *extra, CHUNK),
            )
            emitter = _Emitter(raw, project, producer)
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
