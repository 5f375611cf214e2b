"""Writes that carry personal data, sealed where the project's secret lives.

Three kinds of event hold record keys, subject ids or personal attributes
before they are appended: records added to a dataset version, prediction
batches and vault entries. The SDK describes them with the classes below,
holding the raw keys; ``seal`` turns them into catalogue events on the side
of the ledger (pseudonyms from the project's secret, the prediction payload,
the vault write), so the secret never leaves the process that owns the store.
Over HTTP the same descriptions travel as JSON (``to_wire`` / ``from_wire``)
and the server seals them: the SDK behaves the same either way.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo
from sqlalchemy import Connection

from registry.canonical import (
    canonical_text,
    json_problem,
    number_problem,
    storable_text,
    text_problem,
)
from registry.errors import (
    ConfigError,
    EventRejected,
    FieldError,
    InvalidInput,
    InvalidNodeId,
    LedgerError,
)
from registry.events import CATALOGUE, INTERNAL_TYPES, NewEvent, make_event
from registry.ids import subject_id
from registry.lazy import lazy_import
from registry.limits import MAX_SAFE_INTEGER, MAX_TRACE_ID
from registry.store.raw import Raw
from registry.timeutil import timestamps, to_timestamp

if TYPE_CHECKING:
    from registry import payloads
else:
    payloads = lazy_import("registry.payloads")  # pyarrow, only for predictions

# The largest batch one description may carry; the SDK splits larger ones.
MAX_ROWS = 100_000


def output_json(value: Any) -> str:
    """RFC 8785 (canonical) JSON text of one prediction output.

    Plain numbers skip the encoder: an integer within ±(2^53-1) and a finite float
    whose ``repr`` is already its JCS form (neither integral, ``1.0``, nor in
    exponent notation, ``1e-07``, which JCS writes ``1`` and ``1e-7``). Anything
    else goes through ``canonical_text``: keys sorted, numbers in JCS form; an
    integer beyond ±(2^53-1), which RFC 8785 numbers cannot hold, raises ValueError.
    """
    kind = type(value)
    if kind is float:
        text = repr(value)
        if "e" not in text and not text.endswith(".0") and math.isfinite(value):
            return text
    elif kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return repr(value)
    return canonical_text(value)[0]


@dataclass(frozen=True)
class Personal:
    """Common envelope of a write carrying personal data (not yet sealed)."""

    event_id: str
    project: str
    entity: str
    actor: str
    occurred_at: str
    trace_id: str | None

    type = ""

    def wire_body(self) -> dict[str, Any]:
        """The body sent to a server: the fields of the write's own class, in order."""
        envelope = {f.name for f in fields(Personal)}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in envelope}

    def to_wire(self) -> dict[str, Any]:
        """JSON form sent to a server (raw keys included: send it over TLS only)."""
        return to_wire(self)


@dataclass(frozen=True)
class RecordsAdded(Personal):
    """Records (and each record's subject, or None) joining a dataset version."""

    records: list[str | int] = field(default_factory=list)
    subjects: list[str | int | None] | None = None

    type = "dataset-records-added"


@dataclass(frozen=True)
class Predictions(Personal):
    """A batch of predictions served by a deployment.

    ``models`` lists the distinct model versions and ``model_index`` gives each
    row's place in it (None: every row the first model); ``at`` is one time for
    every row or one per row.
    """

    models: list[str] = field(default_factory=list)
    records: list[str | int] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    model_index: list[int] | None = None
    at: str | list[str] | None = None
    trace_ids: list[str | None] | None = None

    type = "predictions-logged"


@dataclass(frozen=True)
class SubjectData(Personal):
    """Personal attributes of one data subject, for the encrypted vault.

    The entity is filled in when sealed (it is the subject's pseudonymous node id);
    the vault entry's id is the event id, so sending it twice stores it once.
    """

    subject: str | int = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    type = "subject-data-stored"


Item = NewEvent | Personal
PERSONAL_TYPES: dict[str, type[Personal]] = {
    cls.type: cls for cls in (RecordsAdded, Predictions, SubjectData)
}


# --- wire form ----------------------------------------------------------------------


def to_wire(item: Item) -> dict[str, Any]:
    """JSON form of a batch item (an event, or a write carrying personal data)."""
    return {
        "event_id": item.event_id,
        "type": item.type,
        "entity": item.entity,
        "actor": item.actor,
        "occurred_at": item.occurred_at,
        "trace_id": item.trace_id,
        "body": item.wire_body() if isinstance(item, Personal) else item.body,
    }


KEY_EXPECTED = "expected a non-empty string or an integer (not a boolean, not a decimal)"


def key_problem(key: Any, what: str = "key") -> str | None:
    """Why ``key`` is not a record key or subject id (a message starting with ``what``),
    or None when it is one. Only a key's keyed hash is stored, so NUL is fine; a lone
    surrogate is not (no UTF-8 to hash)."""
    if type(key) is int:
        return None
    if isinstance(key, str):
        if not key:
            return f"{what} is empty: {KEY_EXPECTED}"
        why = text_problem(key, nul=False)
        return None if why is None else f"{what} {why}"
    if isinstance(key, int) and not isinstance(key, bool):
        return None  # an int subclass (numpy's are turned into ints before)
    return f"{what} is a {type(key).__name__}: {KEY_EXPECTED}"


def check_keys(
    keys: Sequence[Any], field: str, *, nullable: bool = False, what: str = "record key"
) -> None:
    """Raise FieldError (``<field>.<index>``) for the first key that is not a record key
    or subject id (or None, when ``nullable``)."""
    strings = [k for k in keys if type(k) is str]
    if len(strings) == len(keys):  # the common case, checked without a loop in Python
        text = "".join(strings)
        if (text.isascii() or text_problem(text, nul=False) is None) and "" not in strings:
            return
    for index, key in enumerate(keys):
        if key is None and nullable:
            continue
        why = key_problem(key, what)
        if why is not None:
            raise FieldError(f"{field}.{index}", why)


# Each wire model checks its fields in order and reports the first problem as the
# FieldError its check raised (``_first_problem``). Fields are ``Any`` with a check, so
# the messages are the ledger's own rather than pydantic's.


def _keys(what: str = "record key", *, nullable: bool = False) -> Callable[..., Any]:
    """Check of a list of record keys or subject ids (None allowed when ``nullable``)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        where = f"body.{info.field_name}"
        if not isinstance(value, list):
            raise FieldError(where, "expected a list")
        check_keys(value, where, nullable=nullable, what=what)
        return value

    return check


def _shape(where: str, test: Callable[[Any], bool], expected: str) -> AfterValidator:
    """Check refusing a value ``test`` rejects: FieldError(``where``, ``expected``)."""

    def check(value: Any) -> Any:
        if not test(value):
            raise FieldError(where, expected)
        return value

    return AfterValidator(check)


def _list_of(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, list) and all(test(v) for v in value)


def _or_none(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or test(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _check_event_id(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value or "")))
    except ValueError:
        raise FieldError("event_id", "expected a UUID (the idempotency key)") from None


def _check_occurred_at(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise FieldError("occurred_at", "expected an RFC 3339 time string or null")
    try:
        return to_timestamp(value, "occurred_at")
    except LedgerError as exc:
        raise FieldError("occurred_at", str(exc)) from None


def _check_type(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("type", "expected an event type name")
    if value in INTERNAL_TYPES:
        raise FieldError(
            "type",
            f"{value} events are appended only by the erasure process; "
            "expected an erasure request (POST /projects/{project}/erasures)",
        )
    if value not in CATALOGUE:
        raise FieldError(
            "type", f"unknown event type {value!r}; expected one of {', '.join(CATALOGUE)}"
        )
    return value


def _check_subject(value: Any) -> Any:
    why = key_problem(value, "subject id")
    if why is not None:
        raise FieldError("body.subject", why)
    return value


def _check_subjects(value: Any, info: ValidationInfo) -> Any:
    return value if value is None else _keys("subject id", nullable=True)(value, info)


class WireModel(BaseModel):
    """Base of the wire models: unknown members ignored; every field checked, a missing
    one too (refused by its check, or as ``field required``)."""

    model_config = ConfigDict(validate_default=True, protected_namespaces=())


class WireEnvelope(WireModel):
    """The members every batch item carries, in the order their problems are reported."""

    event_id: Annotated[Any, AfterValidator(_check_event_id)] = None
    body: Annotated[Any, _shape("body", _is_dict, "expected an object")] = None
    actor: Annotated[
        Any, _shape("actor", lambda v: _is_str(v) and bool(v), "expected a non-empty string")
    ] = None
    trace_id: Annotated[Any, _shape("trace_id", _or_none(_is_str), "expected a string or null")] = (
        None
    )
    occurred_at: Annotated[Any, AfterValidator(_check_occurred_at)] = None
    entity: Annotated[Any, _shape("entity", _is_str, "expected a node id string")] = None
    type: Annotated[Any, AfterValidator(_check_type)] = None


class RecordsAddedBody(WireModel):
    """Body of ``dataset-records-added`` on the wire: raw record keys and subject ids."""

    records: Annotated[Any, AfterValidator(_keys())]
    subjects: Annotated[Any, AfterValidator(_check_subjects)] = None


class PredictionsBody(WireModel):
    """Body of ``predictions-logged`` on the wire (see ``Predictions``)."""

    models: Annotated[
        Any, _shape("body.models", _list_of(_is_str), "expected a list of model version ids")
    ]
    outputs: Annotated[Any, _shape("body.outputs", _is_list, "expected a list")]
    model_index: Annotated[
        Any,
        _shape(
            "body.model_index", _or_none(_list_of(_is_int)), "expected a list of integers or null"
        ),
    ] = None
    at: Annotated[
        Any,
        _shape(
            "body.at",
            _or_none(lambda v: _is_str(v) or _list_of(_is_str)(v)),
            "expected an RFC 3339 time, a list of them, or null",
        ),
    ] = None
    trace_ids: Annotated[
        Any,
        _shape(
            "body.trace_ids",
            _or_none(_list_of(_or_none(_is_str))),
            "expected a list of strings or nulls",
        ),
    ] = None
    records: Annotated[Any, AfterValidator(_keys())]


class SubjectDataBody(WireModel):
    """Body of ``subject-data-stored`` on the wire: one subject's attributes."""

    subject: Annotated[Any, AfterValidator(_check_subject)]
    attributes: Annotated[
        Any,
        _shape("body.attributes", lambda v: _is_dict(v) and bool(v), "expected a non-empty object"),
    ]


#: The wire model of each personal type's body.
WIRE_BODIES: dict[str, type[WireModel]] = {
    RecordsAdded.type: RecordsAddedBody,
    Predictions.type: PredictionsBody,
    SubjectData.type: SubjectDataBody,
}


def _parse(model: type[WireModel], data: Any, prefix: str) -> Any:
    """``data`` as ``model``; raise the FieldError of its first problem (a missing member
    is ``field required`` at ``prefix`` + its name)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raised = (err.get("ctx") or {}).get("error")
        if isinstance(raised, FieldError):
            raise raised from None
        where = prefix + ".".join(str(p) for p in err["loc"])
        raise FieldError(
            where, "field required" if err["type"] == "missing" else err["msg"]
        ) from None


def _wire_id(data: Mapping[str, Any]) -> str:
    """The item's event id as an error names it: its UUID form, else as sent (or ?)."""
    try:
        return _check_event_id(data.get("event_id"))
    except FieldError:
        return str(data.get("event_id") or "") or "?"


def from_wire(
    data: Mapping[str, Any], index: int, *, project: str, actor: str | None = None
) -> Item:
    """Parse one JSON batch item for ``project``; raise EventRejected naming the field.

    ``actor``, when given, replaces the actor the item declares (a server sets
    it from the credential that sent the batch).
    """
    try:
        envelope = _parse(WireEnvelope, {**data, "actor": actor or data.get("actor")}, "")
        common: dict[str, Any] = dict(
            event_id=envelope.event_id,
            project=project,
            entity=envelope.entity,
            actor=envelope.actor,
            occurred_at=envelope.occurred_at,
            trace_id=envelope.trace_id,
        )
        if envelope.type in PERSONAL_TYPES:
            body = _parse(WIRE_BODIES[envelope.type], envelope.body, "body.")
            return PERSONAL_TYPES[envelope.type](**common, **dict(body))
        return make_event(envelope.type, body=envelope.body, **common)
    except LedgerError as exc:
        type_ = data.get("type")
        type_name = type_ if isinstance(type_, str) else "?"
        raise EventRejected(index, _wire_id(data), type_name, *_split(exc)) from None


# --- sealing ------------------------------------------------------------------------


def seal(
    ledger: Any, items: Sequence[Item]
) -> tuple[list[NewEvent], Callable[[Connection], None] | None]:
    """Catalogue events for ``items`` (pseudonyms, payloads) and the vault writes that
    must commit with them; raise EventRejected naming the item and field."""
    events: list[NewEvent] = []
    vault_writes: list[tuple[str, str, dict[str, Any], str]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Personal):
            events.append(item)
            continue
        try:
            events.append(_seal_one(ledger, item, vault_writes))
        except LedgerError as exc:
            if isinstance(exc, EventRejected | ConfigError):
                raise
            field_, message = _split(exc)
            raise EventRejected(index, item.event_id, item.type, field_, message) from None
    if not vault_writes:
        return events, None

    def write(conn: Connection) -> None:
        raw = Raw(conn)
        for project, pseudonym, attributes, entry in vault_writes:
            # The entry id is the event id: a batch sent twice stores the entry once.
            if raw.one("SELECT 1 FROM vault_entries WHERE entry = ?", (entry,)) is None:
                ledger.vault.put(conn, project, pseudonym, attributes, entry)

    return events, write


def _split(exc: LedgerError) -> tuple[str, str]:
    """The field an error names and its message: the field it carries; for a node id
    that does not parse, the event's entity (the one node id no body model checks);
    else the body as a whole."""
    if isinstance(exc, InvalidInput) and exc.field:
        return exc.field, str(exc)
    return ("entity" if isinstance(exc, InvalidNodeId) else "body"), str(exc)


def _check_records(item: RecordsAdded) -> list[str | int | None]:
    if len(item.records) > MAX_ROWS:
        raise FieldError(
            "body.records", f"{len(item.records)} records; expected at most {MAX_ROWS}"
        )
    subjects: list[str | int | None] = (
        item.subjects if item.subjects is not None else [None] * len(item.records)
    )
    if len(subjects) != len(item.records):
        raise FieldError(
            "body.subjects",
            f"{len(item.records)} records but {len(subjects)} subjects; "
            "expected one subject (or null) per record",
        )
    check_keys(item.records, "body.records")
    if item.subjects is not None:
        check_keys(item.subjects, "body.subjects", nullable=True, what="subject id")
    return subjects


def _check_subject_data(item: SubjectData) -> None:
    why = key_problem(item.subject, "subject id")
    if why is not None:
        raise FieldError("body.subject", why)
    if not isinstance(item.attributes, dict) or not item.attributes:
        raise FieldError("body.attributes", "expected a non-empty object")
    found = json_problem(item.attributes)
    if found is not None:
        raise FieldError(_under("body.attributes", found[0]), found[1])


def _seal_one(
    ledger: Any, item: Personal, vault_writes: list[tuple[str, str, dict[str, Any], str]]
) -> NewEvent:
    pseudo = ledger.pseudonymizer(item.project)
    common: dict[str, Any] = dict(
        project=item.project,
        actor=item.actor,
        occurred_at=item.occurred_at,
        event_id=item.event_id,
        trace_id=item.trace_id,
    )
    if isinstance(item, RecordsAdded):
        subjects = _check_records(item)
        return make_event(
            item.type,
            entity=item.entity,
            body={"records": pseudo.records(item.records), "subjects": pseudo.subjects(subjects)},
            **common,
        )
    if isinstance(item, Predictions):
        return _seal_predictions(item, pseudo, common)
    if isinstance(item, SubjectData):
        _check_subject_data(item)
        pseudonym = pseudo.subject(item.subject)
        vault_writes.append((item.project, pseudonym, dict(item.attributes), item.event_id))
        return make_event(
            item.type,
            entity=subject_id(item.project, pseudonym),
            body={"entry": item.event_id, "fields": sorted(item.attributes)},
            personal_refs=(item.event_id,),
            **common,
        )
    raise FieldError("type", f"no sealing for {item.type}")


def _prepare_predictions(item: Predictions) -> tuple[list[int], list[str], list[str]]:
    """Each row's model index, time and output as JSON text; raise FieldError naming the field."""
    n = len(item.records)
    if n == 0:
        raise FieldError("body.records", "no rows; expected at least one prediction")
    if n > MAX_ROWS:
        raise FieldError("body.records", f"{n} rows; expected at most {MAX_ROWS} per batch")
    if len(item.outputs) != n:
        raise FieldError(
            "body.outputs", f"{n} records but {len(item.outputs)} outputs; expected one per record"
        )
    index = _model_index(item, n)
    times = _row_times(item.at, n)
    if item.trace_ids is not None:
        if len(item.trace_ids) != n:
            raise FieldError("body.trace_ids", f"{n} records but {len(item.trace_ids)} trace ids")
        _check_trace_ids(item.trace_ids)
    check_keys(item.records, "body.records")
    return index, times, [_output_text(i, value) for i, value in enumerate(item.outputs)]


def _model_index(item: Predictions, n: int) -> list[int]:
    """Each of the ``n`` rows' place in ``item.models``, checked."""
    if not item.models:
        raise FieldError("body.models", "empty; expected the model version(s) that scored the rows")
    if item.model_index is None:
        if len(item.models) != 1:
            raise FieldError("body.model_index", "several models but no model_index; expected one")
        index = [0] * n
    else:
        index = item.model_index
        if len(index) != n:
            raise FieldError("body.model_index", f"{n} records but {len(index)} model indexes")
        top = len(item.models)
        for i, m in enumerate(index):
            if not 0 <= m < top:
                raise FieldError(f"body.model_index.{i}", f"{m} is outside 0..{top - 1}")
    if len(set(index)) != len(item.models):
        raise FieldError("body.models", "lists a model no row uses; expected only the models used")
    return index


def _row_times(at: str | list[str] | None, n: int) -> list[str]:
    """Each of the ``n`` rows' time: ``at`` for every row (now when None), or one each."""
    if at is None or isinstance(at, str):
        return [to_timestamp(at, "body.at")] * n
    if len(at) != n:
        raise FieldError("body.at", f"{n} records but {len(at)} times")
    return timestamps(at, "body.at.{}")


def _output_text(i: int, value: Any) -> str:
    """Row ``i``'s output as JSON text; raise FieldError when JSON cannot hold it."""
    kind = type(value)
    if kind is float or kind is int:  # the common case, without a walk
        why = number_problem(value)
        if why is not None:
            raise FieldError(f"body.outputs.{i}", why)
    else:
        text = storable_text(value)
        if text is not None:  # the common case: one call of the C encoder
            return text
        found = json_problem(value)
        if found is not None:
            raise FieldError(_under(f"body.outputs.{i}", found[0]), found[1])
    try:
        return output_json(value)
    except (TypeError, ValueError) as exc:
        raise FieldError(
            f"body.outputs.{i}",
            f"not JSON ({exc}); expected finite numbers, strings, booleans, null, lists or objects",
        ) from None


def _check_trace_ids(traces: Sequence[str | None]) -> None:
    for i, trace in enumerate(traces):
        if trace is None:
            continue
        if not isinstance(trace, str):
            raise FieldError(f"body.trace_ids.{i}", "expected a string or null")
        if len(trace) > MAX_TRACE_ID:
            raise FieldError(
                f"body.trace_ids.{i}",
                f"is {len(trace)} characters long; expected at most {MAX_TRACE_ID}",
            )
        why = text_problem(trace)
        if why is not None:
            raise FieldError(f"body.trace_ids.{i}", why)


def _under(field: str, path: str) -> str:
    """``field`` and a path below it (from ``json_problem``) as one dotted path."""
    return f"{field}.{path}" if path else field


def _seal_predictions(item: Predictions, pseudo: Any, common: dict[str, Any]) -> NewEvent:
    index, times, texts = _prepare_predictions(item)
    payload = payloads.encode_predictions(
        pseudo.records(item.records), index, texts, times, item.trace_ids
    )
    return make_event(
        item.type,
        entity=item.entity,
        body={
            "models": list(item.models),
            "count": len(index),
            "payload_digest": payloads.digest(payload),
        },
        payload=payload,
        **common,
    )


def check(items: Sequence[Item]) -> None:
    """Refuse, before anything is sent, what sealing would refuse for its shape alone
    (so a client fails exactly as the ledger would)."""
    for index, item in enumerate(items):
        try:
            if isinstance(item, Predictions):
                _prepare_predictions(item)
            elif isinstance(item, RecordsAdded):
                _check_records(item)
            elif isinstance(item, SubjectData):
                _check_subject_data(item)
        except FieldError as exc:
            raise EventRejected(index, item.event_id, item.type, exc.field, str(exc)) from None
