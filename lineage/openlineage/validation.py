"""Schema validation of incoming OpenLineage events.

The event is checked against the vendored OpenLineage 2-0-2 schema (formats
``uuid`` and ``date-time`` enforced), then each facet this ledger reads against
its own facet schema. Every schema is compiled once, twice over: by ``jsonschema_rs``
(compiled Rust, 15 to 50 times as fast) to accept a valid event, and by
``jsonschema`` to say what is wrong with one that the first did not accept. The
second decides: the first is asked only whether a document is valid, with the same
format checks, and a document it refuses (or cannot read) goes to the second.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from lineage.openlineage.constants import KINDS, SCHEMAS, SPEC, Kind
from registry.canonical import json_problem
from registry.errors import FieldError, InvalidInput

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FORMAT_HINTS = {
    "uuid": "a UUID such as 0190b4a4-1f00-7000-8000-0123456789ab",
    "date-time": "an RFC 3339 time with its UTC offset, such as 2024-05-01T10:00:00Z",
}


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


#: The formats the ledger checks (any other format in the schemas is any string).
FORMATS = FormatChecker(formats=())
FORMATS.checks("uuid")(_is_uuid)
FORMATS.checks("date-time")(_is_date_time)


def _is_uuid_text(value: str) -> bool:
    return _is_uuid(value)


def _is_date_time_text(value: str) -> bool:
    return _is_date_time(value)


def _any_text(value: str) -> bool:
    return True


#: The same checks for the compiled validators (which pass them strings only), and
#: every other format the schemas name left unchecked, as ``FORMATS`` leaves it.
_FAST_FORMATS = {"uuid": _is_uuid_text, "date-time": _is_date_time_text, "uri": _any_text}


@dataclass(frozen=True)
class Checker:
    """One schema, compiled by both libraries (see the module docstring)."""

    fast: Any  # jsonschema_rs's validator
    full: Draft202012Validator

    def first_error(self, instance: Any) -> ValidationError | None:
        """None when ``instance`` is valid, else the error ``jsonschema`` finds first."""
        try:
            valid = self.fast.is_valid(instance)
        except ValueError:
            # Something JSON cannot hold, which the fast one will not read: the full
            # check says what.
            valid = False
        return None if valid else best_match(self.full.iter_errors(instance))


@dataclass(frozen=True)
class Schemas:
    """Every schema, compiled once: one checker per event kind, one per facet we check."""

    events: dict[Kind, Checker]
    # container ("run", "dataset", "output") -> facet key -> checker of {key: facet}
    facets: dict[str, dict[str, Checker]]
    # facet key -> _schemaURL we write when emitting it
    urls: dict[str, str]


#: Which facets are checked, in which facet container, by which schema file.
CHECKED_FACETS: dict[str, dict[str, str]] = {
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
def schemas() -> Schemas:
    """The compiled schemas (read from ``SCHEMAS`` on first use)."""
    documents = {
        path.relative_to(SCHEMAS).as_posix(): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(SCHEMAS.rglob("*.json"))
    }
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents.values()
    )

    fast_registry = jsonschema_rs.Registry([(doc["$id"], doc) for doc in documents.values()])

    def compile_(schema: dict[str, Any]) -> Checker:
        return Checker(
            fast=jsonschema_rs.Draft202012Validator(
                schema,
                registry=fast_registry,
                formats=_FAST_FORMATS,
                validate_formats=True,
            ),
            full=Draft202012Validator(schema, registry=registry, format_checker=FORMATS),
        )

    events = {kind: compile_({"$ref": f"{SPEC}#/$defs/{kind}"}) for kind in KINDS}
    facets: dict[str, dict[str, Checker]] = {}
    urls: dict[str, str] = {}
    for container, files in CHECKED_FACETS.items():
        facets[container] = {}
        for key, file in files.items():
            doc = documents[file]
            facets[container][key] = compile_(doc)
            definition = doc["properties"][key]["$ref"].rsplit("/", 1)[1]
            urls[key] = f"{doc['$id']}#/$defs/{definition}"
    return Schemas(events, facets, urls)


def schema_url(facet: str) -> str:
    """The ``_schemaURL`` written for facet ``facet`` (e.g. ``version``, ``mlledger_run``)."""
    return schemas().urls[facet]


def _kind(doc: Any) -> Kind:
    """The kind of an event, decided as the spec's oneOf decides it."""
    if not isinstance(doc, dict):
        raise InvalidInput(
            f"an OpenLineage event is a JSON object, got {type(doc).__name__}; expected a "
            "RunEvent, DatasetEvent or JobEvent",
            field="body",
        )
    if "run" in doc and "job" in doc:
        return "RunEvent"
    if "job" in doc:
        if "dataset" in doc:
            raise InvalidInput(
                "OpenLineage event has both 'job' and 'dataset': expected a JobEvent (job "
                "without run) or a DatasetEvent (dataset), not both",
                field="body",
            )
        return "JobEvent"
    if "dataset" in doc:
        return "DatasetEvent"
    if "run" in doc:
        return "RunEvent"  # without a job: the RunEvent schema says what is missing
    raise InvalidInput(
        "not an OpenLineage event: expected 'run' and 'job' (a RunEvent), 'dataset' "
        "(a DatasetEvent) or 'job' without 'run' (a JobEvent)",
        field="body",
    )


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts)


def _rejected(kind: str, error: ValidationError, prefix: tuple[Any, ...]) -> FieldError:
    """The error for the first schema violation: the dotted path of the bad value
    (``body`` for the event itself), what is wrong and what was expected."""
    where = [*prefix, *error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance]
        if missing:
            where.append(missing[0])
            return FieldError(
                _path(where),
                f"invalid OpenLineage {kind}: {_path(where)}: is missing; it is required",
            )
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    if error.validator == "format":
        message += f"; expected {_FORMAT_HINTS.get(error.validator_value, error.validator_value)}"
    return FieldError(
        _path(where) or "body",
        f"invalid OpenLineage {kind}: {_path(where) or '(event)'}: {message}",
    )


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


def live(facet: Any) -> TypeGuard[dict[str, Any]]:
    """A facet that is present and not a deletion marker (``_deleted: true``)."""
    return isinstance(facet, dict) and facet.get("_deleted") is not True


def validate(doc: Any) -> str:
    """Check an OpenLineage event; return its kind ("RunEvent", "DatasetEvent" or
    "JobEvent") or raise FieldError naming the first bad field and what was expected.

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
    compiled = schemas()
    error = compiled.events[kind].first_error(doc)
    if error is not None:
        raise _rejected(kind, error, ())
    for path, container in _facet_containers(kind, doc):
        facets = _at(doc, path)
        if not isinstance(facets, dict):
            continue
        for key, checker in compiled.facets[container].items():
            if live(facets.get(key)):
                error = checker.first_error({key: facets[key]})
                if error is not None:
                    raise _rejected(kind, error, path)
    return kind
