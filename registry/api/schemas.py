"""Request and response bodies: one family per entity (``XCreate``, ``XPublic``).

Requests are validated strictly: no unknown fields, and no conversions (``"5"`` is
not a number, ``true`` and ``1.0`` are not integers). Every string must be valid
Unicode, text stored in a column of its own must not hold NUL and is held to the
column's width, and JSON values nest at most ``MAX_DEPTH`` levels (``docs/api.md``),
so that SQLite and PostgreSQL accept exactly the same requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_type_hints

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    create_model,
)
from pydantic_core import PydanticCustomError

from registry.canonical import MAX_DEPTH, json_problem, number_problem, text_problem
from registry.errors import LedgerError
from registry.events import CATALOGUE, StoredEvent
from registry.intake import key_problem
from registry.limits import MAX_ACTOR, MAX_ENTITY, MAX_SAFE_INTEGER, MAX_TRACE_ID
from registry.timeutil import to_timestamp

# Column widths the text is held to (registry/store/schema.py).
NAME = 128
LONG = 300
RUN = 64
TIME = 64


def _text(value: str) -> str:
    why = text_problem(value)
    if why is not None:
        raise PydanticCustomError("text", why)
    return value


def _unicode(value: str) -> str:
    why = text_problem(value, nul=False)
    if why is not None:
        raise PydanticCustomError("text", why)
    return value


def _time(value: str, path: str | None = None) -> str:
    if len(value) > TIME:
        raise PydanticCustomError(
            "time", f"is {len(value)} characters long; expected at most {TIME}", _at(path)
        )
    try:
        to_timestamp(value)
    except LedgerError as exc:
        raise PydanticCustomError("time", str(exc).removeprefix("time "), _at(path)) from None
    return value


def _at(path: str | None) -> dict[str, str] | None:
    return None if path is None else {"path": path}


def _times(value: Any) -> Any:
    """One RFC 3339 time or a list of them (one error, naming the item, not the union)."""
    if isinstance(value, str):
        return _time(value)
    if not isinstance(value, list):
        raise PydanticCustomError("time", "expected an RFC 3339 time or a list of them")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise PydanticCustomError("time", "expected an RFC 3339 time", {"path": str(index)})
        _time(item, str(index))
    return value


def _json(depth: int) -> Callable[[Any], Any]:
    """A validator refusing what ``json_problem`` finds in a value nested ``MAX_DEPTH -
    depth`` levels deep in what is stored; the path below the field goes in ``ctx``."""

    def check(value: Any) -> Any:
        found = json_problem(value, depth)
        if found is not None:
            path, why = found
            raise PydanticCustomError("json_value", why, {"path": path} if path else None)
        return value

    return check


def _key(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # Scalars get one clear error; other values (lists, objects) the union's own.
    if isinstance(value, str | int | float):
        why = key_problem(value)
        if why is not None:
            raise PydanticCustomError("key", why)
    return handler(value)


def _shown(**schema: Any) -> Any:
    """Adds ``schema`` to a type's JSON schema, and nothing to its validation: the check
    stays where it is made (a validator above, or the ledger), whose messages say more
    than "does not match"."""
    return Field(json_schema_extra=schema)


# Patterns of the OpenAPI document (ECMA 262, as JSON Schema reads them).
#: A name of the ledger: project, dataset, model, version, deployment (registry/ids.py).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$"
_NAME = NAME_PATTERN[1:-1]
_VERSIONED = f"{_NAME}/{_NAME}@{_NAME}"
_UUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
UUID_PATTERN = f"^{_UUID}$"
#: A run: ``run:<uuid>`` or the bare uuid.
RUN_PATTERN = f"^(run:)?{_UUID}$"
DATASET_ID_PATTERN = f"^dataset:{_VERSIONED}$"
MODEL_ID_PATTERN = f"^model:{_VERSIONED}$"
#: A dataset or model version id.
VERSION_ID_PATTERN = f"^(dataset|model):{_VERSIONED}$"
#: A dataset version of the project (``name@version``) or any dataset version id.
DATASET_REF_PATTERN = f"^({_NAME}@{_NAME}|dataset:{_VERSIONED})$"
#: A model version of the project (``name@version``, ``name@alias``) or any model version id.
MODEL_REF_PATTERN = f"^({_NAME}@{_NAME}|model:{_VERSIONED})$"
#: A deployment of the project (its name) or any deployment id.
DEPLOYMENT_REF_PATTERN = f"^({_NAME}|deployment:{_NAME}/{_NAME})$"
#: Any typed node id (registry/ids.py).
NODE_ID_PATTERN = (
    f"^((dataset|model):{_VERSIONED}|run:{_UUID}|(deployment|record|subject|job):{_NAME}/{_NAME}"
    f"|project:{_NAME})$"
)
#: Text stored in a column of its own: no NUL.
TEXT_PATTERN = "^[^\\u0000]*$"
#: Text in a URL: no control characters (the gate refuses them, registry.api.gate).
URL_TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f]*$"
#: A time in years 1 to 9999 once in UTC: an offset may move a time of the first day
#: before the range, or one of the last day past it.
TIME_PATTERN = "^(?!0001-01-01[Tt][^+]*\\+(?!00:00)|9999-12-31[Tt][^-]*-(?!00:00))"

Text = Annotated[str, _shown(pattern=TEXT_PATTERN), AfterValidator(_text)]
Name = Annotated[str, Field(max_length=NAME), _shown(pattern=TEXT_PATTERN), AfterValidator(_text)]
#: A name or version of a dataset or model (the ledger refuses others: 400 invalid-node-id).
NodeName = Annotated[
    str, Field(max_length=NAME), _shown(pattern=NAME_PATTERN), AfterValidator(_text)
]
Long = Annotated[str, Field(max_length=LONG), _shown(pattern=TEXT_PATTERN), AfterValidator(_text)]
#: A run: ``run:<uuid>`` or ``<uuid>``.
RunRef = Annotated[str, Field(max_length=RUN), _shown(pattern=RUN_PATTERN), AfterValidator(_text)]
#: A run id: ``run:<uuid>``.
RunId = Annotated[
    str, Field(max_length=RUN), _shown(pattern=f"^run:{_UUID}$"), AfterValidator(_text)
]
#: A dataset version id.
DatasetId = Annotated[
    str, Field(max_length=LONG), _shown(pattern=DATASET_ID_PATTERN), AfterValidator(_text)
]
#: A dataset or model version id.
VersionId = Annotated[
    str, Field(max_length=LONG), _shown(pattern=VERSION_ID_PATTERN), AfterValidator(_text)
]
#: A model version: ``name@version``, ``name@alias`` or its id.
ModelRef = Annotated[
    str, Field(max_length=LONG), _shown(pattern=MODEL_REF_PATTERN), AfterValidator(_text)
]
_TIME_SCHEMA = {
    "format": "date-time",
    "maxLength": TIME,
    "pattern": TIME_PATTERN,
    "type": "string",
}
#: An RFC 3339 time, years 1 to 9999 once in UTC.
Time = Annotated[
    str, Field(max_length=TIME), _shown(format="date-time", pattern=TIME_PATTERN),
    AfterValidator(_time),
]  # fmt: skip
Actor = Annotated[
    str, Field(max_length=MAX_ACTOR), _shown(pattern=TEXT_PATTERN), AfterValidator(_text)
]
TraceId = Annotated[
    str, Field(max_length=MAX_TRACE_ID), _shown(pattern=TEXT_PATTERN), AfterValidator(_text)
]
#: One time for every row, or one per row.
Times = Annotated[
    str | list[str],
    PlainValidator(_times),
    WithJsonSchema({"anyOf": [_TIME_SCHEMA, {"items": _TIME_SCHEMA, "type": "array"}]}),
]
#: A record key or data-subject id: a non-empty string or an integer, nothing else.
Key = Annotated[
    str | int,
    WrapValidator(_key),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}),
]
#: A JSON value stored as an event body's field (the body is the first level).
BodyJSON = Annotated[dict[str, Any], AfterValidator(_json(MAX_DEPTH - 1))]
#: A JSON document stored on its own (an event's body, vault attributes).
Document = Annotated[dict[str, Any], AfterValidator(_json(MAX_DEPTH))]
#: Text stored inside a JSON value, where NUL is written \u0000: valid Unicode suffices.
JSONText = Annotated[str, AfterValidator(_unicode)]
Labels = dict[JSONText, JSONText]
JSONScalar = str | int | float | bool | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- batches of events ------------------------------------------------------------------


_EVENT_TYPES: list[Any] = sorted(CATALOGUE)


class EventSubmission(Strict):
    """One event of a batch. For ``dataset-records-added``, ``predictions-logged`` and
    ``subject-data-stored`` the body carries raw keys (sealed into pseudonyms by the
    server); every other type carries its catalogue body (docs/events.md)."""

    event_id: Annotated[str, Field(max_length=64), AfterValidator(_text)] = Field(
        description="UUID chosen by the client: the idempotency key.",
        json_schema_extra={"pattern": UUID_PATTERN},
    )
    type: Annotated[str, Field(max_length=64), AfterValidator(_text)] = Field(
        description="Event type from the catalogue.",
        json_schema_extra={"enum": _EVENT_TYPES},
    )
    entity: Annotated[str, Field(max_length=MAX_ENTITY), AfterValidator(_text)] = Field(
        description="Typed node id the event is about.",
        json_schema_extra={"pattern": NODE_ID_PATTERN},
    )
    body: Document = Field(description="Type-specific body.")
    occurred_at: Time | None = Field(default=None, description="When it happened (RFC 3339).")
    actor: Actor | None = Field(
        default=None, description="Who caused it; stored with the key that sent it."
    )
    trace_id: TraceId | None = Field(default=None, description="Trace id, if not the request's.")


class EventBatch(Strict):
    events: list[EventSubmission] = Field(description="Appended atomically, in order.")


class Positions(BaseModel):
    positions: list[int] = Field(description="Log position of each event, in order.")


#: How the wire form of a stored event (``StoredEvent.as_dict``) differs from the event:
#: vault ids as a list, the leaf hash in hex; the payload is left out.
_WIRE_TYPES: dict[str, Any] = {"personal_refs": list[str], "leaf_hash": str}


def _wire_fields(event: type[Any]) -> dict[str, Any]:
    """The fields of the dataclass ``event``, in order, as the API sends them."""
    hints = get_type_hints(event)
    return {
        f.name: (_WIRE_TYPES.get(f.name, hints[f.name]), ...)
        for f in dataclasses.fields(event)
        if f.name != "payload"
    }


class StoredEventPublic(create_model("StoredEventPublic", **_wire_fields(StoredEvent))):  # type: ignore[misc]
    # The fields of registry.events.StoredEvent, declared once there.
    pass


class EventsPublic(BaseModel):
    events: list[StoredEventPublic]
    next: int = Field(description="Position to ask for next.")


# --- native writes ------------------------------------------------------------------


#: A digest whose first 12 characters after its last ':' make a version name.
_VERSION_DIGEST = "^([\\s\\S]*:)?[A-Za-z0-9]([A-Za-z0-9._\\-]{0,10}|[A-Za-z0-9._\\-]{11}[^:]*)$"


class DatasetCreate(Strict):
    """A dataset version. Without ``version``, the first 12 characters of the digest's
    hex (after its last ':') are the version. ``subjects``, when given, has one item per
    record (400 otherwise)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["version"], "properties": {"version": {"type": "string"}}},
                {"properties": {"digest": {"pattern": _VERSION_DIGEST}}},
            ]
        }
    )
    name: NodeName
    version: Annotated[NodeName, Field(min_length=1)] | None = None
    uri: Text
    digest: Long = Field(min_length=1, description="Content digest, e.g. 'sha256:<hex>'.")
    schema_: Labels | None = Field(default=None, alias="schema")
    row_count: int | None = Field(default=None, ge=0, le=MAX_SAFE_INTEGER)
    records: list[Key] | None = Field(default=None, description="Record keys (raw).")
    subjects: list[Key | None] | None = Field(
        default=None, description="Each record's data-subject id (raw), or null."
    )
    derived_from: list[DatasetId] = Field(
        default_factory=list,
        description="Dataset version ids it was derived from.",
        json_schema_extra={"uniqueItems": True},
    )
    produced_by: RunId | None = Field(default=None, description="The run that wrote it.")
    tags: Labels = Field(default_factory=dict)
    occurred_at: Time | None = None


class DatasetPublic(BaseModel):
    id: str
    name: str
    version: str
    digest: str
    records: int


class RunCreate(Strict):
    job: Long = Field(min_length=1)
    run_id: RunRef | None = Field(default=None, description="UUID; a new one when absent.")
    params: BodyJSON = Field(default_factory=dict)
    inputs: list[VersionId] = Field(
        default_factory=list, description="Dataset or model version ids it reads."
    )
    tags: Labels = Field(default_factory=dict)
    parent: RunRef | None = None
    code: BodyJSON = Field(default_factory=dict, description="git_commit, git_dirty, ...")
    environment: BodyJSON = Field(default_factory=dict)
    occurred_at: Time | None = None


class RunPublic(BaseModel):
    id: str
    job: str
    status: str


class RunInputs(Strict):
    inputs: list[VersionId] = Field(
        min_length=1, description="Dataset or model version ids it reads."
    )
    occurred_at: Time | None = None


class RunParams(Strict):
    params: BodyJSON = Field(min_length=1)
    occurred_at: Time | None = None


class RunMetrics(Strict):
    metrics: dict[
        Annotated[str, AfterValidator(_text)],
        Annotated[float, Field(allow_inf_nan=False), BeforeValidator(_exact)],
    ] = Field(
        min_length=1,
        description="Metric name (not empty) to value.",
        json_schema_extra={"propertyNames": {"minLength": 1, "pattern": TEXT_PATTERN}},
    )
    step: int | None = Field(default=None, ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)
    occurred_at: Time | None = None


class RunEnd(Strict):
    """Completed, or failed with the exception's class name (400 without it)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"status": {"const": "completed"}}},
                {
                    "required": ["status", "error_type"],
                    "properties": {
                        "status": {"const": "failed"},
                        "error_type": {"type": "string", "minLength": 1},
                    },
                },
            ]
        }
    )
    status: Literal["completed", "failed"] = "completed"
    error_type: Long | None = Field(default=None, description="Exception class, when failed.")
    occurred_at: Time | None = None


class ModelCreate(Strict):
    name: NodeName
    version: Annotated[NodeName, Field(min_length=1)] | None = Field(
        default=None, description="Next number when absent."
    )
    run: RunRef | None = None
    artifact_uri: Text
    artifact_digest: Long = Field(min_length=1)
    framework: Name | None = None
    tags: Labels = Field(default_factory=dict)
    occurred_at: Time | None = None


class ModelPublic(BaseModel):
    id: str
    name: str
    version: str
    artifact_digest: str


class AliasMove(Strict):
    version: NodeName = Field(description="Model version (or another alias) to point at.")
    moved_by: Long | None = None
    occurred_at: Time | None = None


class DeploymentConfigure(Strict):
    endpoint: Text
    served: dict[Annotated[str, Field(max_length=LONG), AfterValidator(_text)], float] = Field(
        description="Model version id (or name@version) to traffic percentage; adds to 100 "
        "(400 otherwise).",
        json_schema_extra={
            "propertyNames": {"maxLength": LONG, "pattern": MODEL_REF_PATTERN},
            "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100},
            "minProperties": 1,
        },
    )
    occurred_at: Time | None = None


class DeploymentPublic(BaseModel):
    id: str
    name: str
    endpoint: str
    served: dict[str, float]


class DeploymentRetire(Strict):
    reason: Text | None = None
    occurred_at: Time | None = None


def _exact(value: Any) -> Any:
    """An integer a double holds exactly (a metric is one); others are refused."""
    why = number_problem(value) if type(value) is int else None
    if why is not None:
        raise PydanticCustomError("number", why)
    return value


def _outputs(value: list[Any]) -> list[Any]:
    for index, output in enumerate(value):
        kind = type(output)
        if (kind is int or kind is float) and number_problem(output) is None:
            continue  # the common case, without a walk
        found = json_problem(output)
        if found is not None:
            path = f"{index}.{found[0]}" if found[0] else str(index)
            raise PydanticCustomError("json_value", found[1], {"path": path})
    return value


class PredictionsCreate(Strict):
    """A batch of predictions: ``model`` or ``models``, not both. ``outputs``, ``models``
    and lists of ``at`` and ``trace_ids`` have one item per record (400 otherwise)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["model"], "properties": {"model": {"type": "string"},
                                                       "models": {"type": "null"}}},
                {"required": ["models"], "properties": {"models": {"type": "array"},
                                                        "model": {"type": "null"}}},
            ]
        }
    )  # fmt: skip
    records: list[Key] = Field(min_length=1, description="Record keys (raw).")
    outputs: Annotated[list[Any], AfterValidator(_outputs)] = Field(
        description="One JSON output per record."
    )
    model: ModelRef | None = Field(default=None, description="Model version of every row.")
    models: list[ModelRef] | None = Field(default=None, description="Model version per row.")
    at: Times | None = Field(default=None, description="One time, or one per row.")
    trace_ids: list[TraceId | None] | None = None


class SubjectDataCreate(Strict):
    subject: Key = Field(description="Data-subject id (raw).")
    attributes: Document = Field(min_length=1)


class Entry(BaseModel):
    entry: str = Field(description="Vault entry id.")


class Position(BaseModel):
    position: int


# --- questions ------------------------------------------------------------------


class RecordQuery(Strict):
    record: Key = Field(description="Record key (raw), sent in the body to keep it out of URLs.")


class SubjectQuery(Strict):
    subject: Key = Field(description="Data-subject id (raw), sent in the body.")


# --- keys -------------------------------------------------------------------------


class KeyCreate(Strict):
    role: Literal["viewer", "writer", "auditor", "dpo", "admin"]
    name: Text | None = Field(
        default=None, max_length=200, description="Not empty.", json_schema_extra={"minLength": 1}
    )


# --- path and query parameters ------------------------------------------------------

#: A dataset, model or deployment name, or a version (the ledger refuses others: 400).
NamePath = Annotated[str, Path(json_schema_extra={"pattern": NAME_PATTERN})]
#: A run: ``run:<uuid>`` or ``<uuid>`` (others: 400).
RunPath = Annotated[
    str, Path(description="run:<uuid> or <uuid>.", json_schema_extra={"pattern": RUN_PATTERN})
]
#: Text of a path segment: the gate refuses control characters (400).
TextPath = Annotated[str, Path(json_schema_extra={"pattern": URL_TEXT_PATTERN})]
