"""Request and response bodies: one family per entity (``XCreate``, ``XPublic``).

Requests are validated strictly: no unknown fields, and no conversions (``"5"`` is
not a number, ``true`` and ``1.0`` are not integers). Every string must be valid
Unicode, text stored in a column of its own must not hold NUL and is held to the
column's width, and JSON values nest at most ``MAX_DEPTH`` levels (``docs/api.md``),
so that SQLite and PostgreSQL accept exactly the same requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from registry.canonical import MAX_DEPTH, json_problem, text_problem
from registry.errors import LedgerError
from registry.events import MAX_ACTOR, MAX_ENTITY, MAX_SAFE_INTEGER, MAX_TRACE_ID
from registry.intake import key_problem
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


Text = Annotated[str, AfterValidator(_text)]
Name = Annotated[str, Field(max_length=NAME), AfterValidator(_text)]
Long = Annotated[str, Field(max_length=LONG), AfterValidator(_text)]
RunRef = Annotated[str, Field(max_length=RUN), AfterValidator(_text)]
#: An RFC 3339 time, years 1 to 9999 once in UTC.
Time = Annotated[str, Field(max_length=TIME), AfterValidator(_time)]
TraceId = Annotated[str, Field(max_length=MAX_TRACE_ID), AfterValidator(_text)]
_TIME_SCHEMA = {"maxLength": TIME, "type": "string"}
#: One time for every row, or one per row.
Times = Annotated[
    str | list[str],
    PlainValidator(_times),
    WithJsonSchema({"anyOf": [_TIME_SCHEMA, {"items": _TIME_SCHEMA, "type": "array"}]}),
]
#: A record key or data-subject id: a non-empty string or an integer, nothing else.
Key = Annotated[str | int, WrapValidator(_key)]
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


class EventSubmission(Strict):
    """One event of a batch. For ``dataset-records-added``, ``predictions-logged`` and
    ``subject-data-stored`` the body carries raw keys (sealed into pseudonyms by the
    server); every other type carries its catalogue body (docs/events.md)."""

    event_id: Annotated[str, Field(max_length=64), AfterValidator(_text)] = Field(
        description="UUID chosen by the client: the idempotency key."
    )
    type: Annotated[str, Field(max_length=64), AfterValidator(_text)] = Field(
        description="Event type from the catalogue."
    )
    entity: Annotated[str, Field(max_length=MAX_ENTITY), AfterValidator(_text)] = Field(
        description="Typed node id the event is about."
    )
    body: Document = Field(description="Type-specific body.")
    occurred_at: Time | None = Field(default=None, description="When it happened (RFC 3339).")
    actor: Annotated[str, Field(max_length=MAX_ACTOR), AfterValidator(_text)] | None = Field(
        default=None, description="Who caused it; stored with the key that sent it."
    )
    trace_id: TraceId | None = Field(default=None, description="Trace id, if not the request's.")


class EventBatch(Strict):
    events: list[EventSubmission] = Field(description="Appended atomically, in order.")


class Positions(BaseModel):
    positions: list[int] = Field(description="Log position of each event, in order.")


class StoredEventPublic(BaseModel):
    position: int
    event_id: str
    type: str
    schema_version: int
    project: str
    entity: str
    actor: str
    occurred_at: str
    recorded_at: str
    body: dict[str, Any]
    personal_refs: list[str]
    trace_id: str | None
    leaf_hash: str


class EventsPublic(BaseModel):
    events: list[StoredEventPublic]
    next: int = Field(description="Position to ask for next.")


# --- native writes ------------------------------------------------------------------


class DatasetCreate(Strict):
    name: Name
    version: Name | None = None
    uri: Text
    digest: Long = Field(min_length=1, description="Content digest, e.g. 'sha256:<hex>'.")
    schema_: Labels | None = Field(default=None, alias="schema")
    row_count: int | None = Field(default=None, ge=0, le=MAX_SAFE_INTEGER)
    records: list[Key] | None = Field(default=None, description="Record keys (raw).")
    subjects: list[Key | None] | None = Field(
        default=None, description="Each record's data-subject id (raw), or null."
    )
    derived_from: list[Long] = Field(default_factory=list)
    produced_by: RunRef | None = None
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
    inputs: list[Long] = Field(default_factory=list)
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
    inputs: list[Long] = Field(min_length=1)
    occurred_at: Time | None = None


class RunParams(Strict):
    params: BodyJSON = Field(min_length=1)
    occurred_at: Time | None = None


class RunMetrics(Strict):
    metrics: dict[Text, float] = Field(min_length=1)
    step: int | None = Field(default=None, ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)
    occurred_at: Time | None = None


class RunEnd(Strict):
    status: Literal["completed", "failed"] = "completed"
    error_type: Long | None = Field(default=None, description="Exception class, when failed.")
    occurred_at: Time | None = None


class ModelCreate(Strict):
    name: Name
    version: Name | None = Field(default=None, description="Next number when absent.")
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
    version: Name = Field(description="Model version (or another alias) to point at.")
    moved_by: Long | None = None
    occurred_at: Time | None = None


class DeploymentConfigure(Strict):
    endpoint: Text
    served: dict[Long, float] = Field(
        description="Model version id (or name@version) to traffic percentage; adds to 100."
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


def _outputs(value: list[Any]) -> list[Any]:
    for index, output in enumerate(value):
        if type(output) is float or type(output) is int:
            continue
        found = json_problem(output)
        if found is not None:
            path = f"{index}.{found[0]}" if found[0] else str(index)
            raise PydanticCustomError("json_value", found[1], {"path": path})
    return value


class PredictionsCreate(Strict):
    records: list[Key] = Field(min_length=1, description="Record keys (raw).")
    outputs: Annotated[list[Any], AfterValidator(_outputs)] = Field(
        description="One JSON output per record."
    )
    model: Long | None = Field(default=None, description="Model version of every row.")
    models: list[Long] | None = Field(default=None, description="Model version per row.")
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


Answer = dict[str, Any]


# --- keys -------------------------------------------------------------------------


class KeyCreate(Strict):
    role: Literal["viewer", "writer", "auditor", "dpo", "admin"]
    name: Text | None = Field(default=None, max_length=200)


class KeyPublic(BaseModel):
    key_id: str
    project: str
    role: str
    name: str | None
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None


class KeyCreated(KeyPublic):
    token: str = Field(description="Shown once: store it now.")
