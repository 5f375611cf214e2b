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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from registry.canonical import canonical_text, json_problem, number_problem, text_problem
from registry.errors import ConfigError, EventRejected, FieldError, LedgerError
from registry.events import INTERNAL_TYPES, NewEvent, make_event
from registry.ids import subject_id
from registry.lazy import lazy_import
from registry.limits import MAX_SAFE_INTEGER, MAX_TRACE_ID
from registry.store.raw import Raw
from registry.timeutil import to_timestamp

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
        raise NotImplementedError

    def to_wire(self) -> dict[str, Any]:
        """JSON form sent to a server (raw keys included: send it over TLS only)."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "entity": self.entity,
            "actor": self.actor,
            "occurred_at": self.occurred_at,
            "trace_id": self.trace_id,
            "body": self.wire_body(),
        }


@dataclass(frozen=True)
class RecordsAdded(Personal):
    """Records (and each record's subject, or None) joining a dataset version."""

    records: list[str | int] = field(default_factory=list)
    subjects: list[str | int | None] | None = None

    type = "dataset-records-added"

    def wire_body(self) -> dict[str, Any]:
        return {"records": self.records, "subjects": self.subjects}


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

    def wire_body(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "records": self.records,
            "outputs": self.outputs,
            "model_index": self.model_index,
            "at": self.at,
            "trace_ids": self.trace_ids,
        }


@dataclass(frozen=True)
class SubjectData(Personal):
    """Personal attributes of one data subject, for the encrypted vault.

    The entity is filled in when sealed (it is the subject's pseudonymous node id);
    the vault entry's id is the event id, so sending it twice stores it once.
    """

    subject: str | int = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    type = "subject-data-stored"

    def wire_body(self) -> dict[str, Any]:
        return {"subject": self.subject, "attributes": self.attributes}


Item = NewEvent | Personal
PERSONAL_TYPES: dict[str, type[Personal]] = {
    cls.type: cls for cls in (RecordsAdded, Predictions, SubjectData)
}


# --- wire form ----------------------------------------------------------------------


def to_wire(item: Item) -> dict[str, Any]:
    """JSON form of a batch item (an event, or a write carrying personal data)."""
    if isinstance(item, Personal):
        return item.to_wire()
    return {
        "event_id": item.event_id,
        "type": item.type,
        "entity": item.entity,
        "actor": item.actor,
        "occurred_at": item.occurred_at,
        "trace_id": item.trace_id,
        "body": item.body,
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


def _key_list(
    value: Any, where: str, *, nullable: bool = False, what: str = "record key"
) -> list[Any]:
    if not isinstance(value, list):
        raise FieldError(where, "expected a list")
    check_keys(value, where, nullable=nullable, what=what)
    return value


def _body_field(body: Mapping[str, Any], name: str, default: Any = ...) -> Any:
    if name in body:
        return body[name]
    if default is ...:
        raise FieldError(f"body.{name}", "field required")
    return default


def from_wire(
    data: Mapping[str, Any], index: int, *, project: str, actor: str | None = None
) -> Item:
    """Parse one JSON batch item for ``project``; raise EventRejected naming the field.

    ``actor``, when given, replaces the actor the item declares (a server sets
    it from the credential that sent the batch).
    """
    event_id = str(data.get("event_id") or "")
    type_ = data.get("type")
    type_name = type_ if isinstance(type_, str) else "?"

    def reject(where: str, message: str) -> EventRejected:
        return EventRejected(index, event_id or "?", type_name, where, message)

    try:
        event_id = str(uuid.UUID(event_id))
    except ValueError:
        raise reject("event_id", "expected a UUID (the idempotency key)") from None
    body = data.get("body")
    if not isinstance(body, dict):
        raise reject("body", "expected an object")
    who = actor or data.get("actor")
    if not isinstance(who, str) or not who:
        raise reject("actor", "expected a non-empty string")
    trace = data.get("trace_id")
    if trace is not None and not isinstance(trace, str):
        raise reject("trace_id", "expected a string or null")
    occurred_at = data.get("occurred_at")
    if occurred_at is not None and not isinstance(occurred_at, str):
        raise reject("occurred_at", "expected an RFC 3339 time string or null")
    try:
        occurred = to_timestamp(occurred_at, "occurred_at")
    except LedgerError as exc:
        raise reject("occurred_at", str(exc)) from None
    entity = data.get("entity")
    if not isinstance(entity, str):
        raise reject("entity", "expected a node id string")
    common: dict[str, Any] = dict(
        event_id=event_id,
        project=project,
        entity=entity,
        actor=who,
        occurred_at=occurred,
        trace_id=trace,
    )
    try:
        if type_ == RecordsAdded.type:
            subjects = _body_field(body, "subjects", None)
            return RecordsAdded(
                **common,
                records=_key_list(_body_field(body, "records"), "body.records"),
                subjects=None
                if subjects is None
                else _key_list(subjects, "body.subjects", nullable=True, what="subject id"),
            )
        if type_ == Predictions.type:
            models = _body_field(body, "models")
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise FieldError("body.models", "expected a list of model version ids")
            outputs = _body_field(body, "outputs")
            if not isinstance(outputs, list):
                raise FieldError("body.outputs", "expected a list")
            index_ = _body_field(body, "model_index", None)
            if index_ is not None and (
                not isinstance(index_, list)
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in index_)
            ):
                raise FieldError("body.model_index", "expected a list of integers or null")
            at = _body_field(body, "at", None)
            if at is not None and not (
                isinstance(at, str)
                or (isinstance(at, list) and all(isinstance(t, str) for t in at))
            ):
                raise FieldError("body.at", "expected an RFC 3339 time, a list of them, or null")
            traces = _body_field(body, "trace_ids", None)
            if traces is not None and (
                not isinstance(traces, list)
                or not all(t is None or isinstance(t, str) for t in traces)
            ):
                raise FieldError("body.trace_ids", "expected a list of strings or nulls")
            return Predictions(
                **common,
                models=models,
                records=_key_list(_body_field(body, "records"), "body.records"),
                outputs=outputs,
                model_index=index_,
                at=at,
                trace_ids=traces,
            )
        if type_ == SubjectData.type:
            subject = _body_field(body, "subject")
            why = key_problem(subject, "subject id")
            if why is not None:
                raise FieldError("body.subject", why)
            attributes = _body_field(body, "attributes")
            if not isinstance(attributes, dict) or not attributes:
                raise FieldError("body.attributes", "expected a non-empty object")
            return SubjectData(**common, subject=subject, attributes=attributes)
    except FieldError as exc:
        raise reject(exc.field, str(exc)) from None
    if not isinstance(type_, str):
        raise reject("type", "expected an event type name")
    if type_ in INTERNAL_TYPES:
        raise reject(
            "type",
            f"{type_} events are appended only by the erasure process; "
            "expected an erasure request (POST /projects/{project}/erasures)",
        )
    try:
        return make_event(
            type_,
            project=project,
            entity=entity,
            actor=who,
            body=body,
            occurred_at=occurred,
            event_id=event_id,
            trace_id=trace,
        )
    except LedgerError as exc:
        raise reject(_split(exc)[0], str(exc)) from None


def _field_of(message: str) -> str:
    """The field a make_event message names ("body field 'x'" → "body.x")."""
    marker = "body field '"
    if marker in message:
        return "body." + message.split(marker, 1)[1].split("'", 1)[0]
    if "entity" in message:
        return "entity"
    if "unknown event type" in message:
        return "type"
    return "body"


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
    if isinstance(exc, FieldError):
        return exc.field, str(exc)
    return _field_of(str(exc)), str(exc)


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
    if item.at is None or isinstance(item.at, str):
        times = [to_timestamp(item.at, "body.at")] * n
    else:
        if len(item.at) != n:
            raise FieldError("body.at", f"{n} records but {len(item.at)} times")
        times = [to_timestamp(t, f"body.at.{i}") for i, t in enumerate(item.at)]
    if item.trace_ids is not None:
        if len(item.trace_ids) != n:
            raise FieldError("body.trace_ids", f"{n} records but {len(item.trace_ids)} trace ids")
        _check_trace_ids(item.trace_ids)
    check_keys(item.records, "body.records")
    texts = []
    for i, value in enumerate(item.outputs):
        kind = type(value)
        if kind is float or kind is int:  # the common case, without a walk
            why = number_problem(value)
            if why is not None:
                raise FieldError(f"body.outputs.{i}", why)
        else:
            found = json_problem(value)
            if found is not None:
                raise FieldError(_under(f"body.outputs.{i}", found[0]), found[1])
        try:
            texts.append(output_json(value))
        except (TypeError, ValueError) as exc:
            raise FieldError(
                f"body.outputs.{i}",
                f"not JSON ({exc}); expected finite numbers, strings, booleans, null, "
                "lists or objects",
            ) from None
    return index, times, texts


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
