"""Events checked against the catalogue: ``make_event`` builds a validated event,
``validate_new`` re-checks one built elsewhere (sent over the wire), ``normalised``
puts its body in schema form.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError

from registry.canonical import json_problem, printable
from registry.errors import FieldError, InvalidInput, LedgerError
from registry.events.bodies import PAYLOAD_TYPES
from registry.events.catalogue import CATALOGUE, Body, EventType
from registry.events.envelope import NewEvent, envelope_problem
from registry.ids import NodeId, new_id
from registry.timeutil import is_stored, to_timestamp


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(printable(str(part)) for part in loc)


def _first_error(exc: ValidationError) -> tuple[str, str, str]:
    """``(field, where, message)`` of the first error pydantic found in a body:
    ``field`` is the dotted path from the envelope (``body.params``), ``where`` the
    path inside the body (empty for the body itself)."""
    err = exc.errors()[0]
    where = _field_path(err["loc"])
    return ("body." + where if where else "body"), where, err["msg"]


def body_problem(body: Any) -> tuple[str, str] | None:
    """``(field, why)`` for the first part of a body no store can hold (a lone surrogate,
    nesting deeper than ``MAX_DEPTH``), or None. NUL in text fields is the body
    model's to refuse (``Part``)."""
    found = json_problem(body)
    if found is None:
        return None
    path, why = found
    return ("body." + path if path else "body"), why


def _spec(type: str) -> EventType:
    """The catalogue entry of ``type``; InvalidInput naming the known types if none."""
    try:
        return CATALOGUE[type]
    except KeyError:
        raise InvalidInput(
            f"unknown event type {type!r}; expected one of {', '.join(CATALOGUE)}", field="type"
        ) from None


def _check_entity(type: str, spec: EventType, project: str, entity: str) -> None:
    """FieldError unless ``entity`` is a node id of the type's kind, in ``project``."""
    parsed = NodeId.parse(entity)
    if parsed.kind != spec.entity_kind:
        raise FieldError(
            "entity",
            f"{type}: entity {entity!r} is a {parsed.kind} id, expected a {spec.entity_kind} id",
        )
    if parsed.project is not None and parsed.project != project:
        raise FieldError(
            "entity",
            f"{type}: entity {entity!r} belongs to project {parsed.project!r}, not {project!r}",
        )


def _body_model(type: str, spec: EventType, body: dict[str, Any] | Body) -> Body:
    """``body`` validated against the type's model; FieldError naming the bad field."""
    if isinstance(body, Body):
        return body
    problem = body_problem(body)
    if problem is not None:
        where = problem[0].removeprefix("body").removeprefix(".")
        raise FieldError(
            problem[0],
            f"{type}: body field {where!r} {problem[1]}" if where else f"{type}: body {problem[1]}",
        )
    try:
        return spec.body.model_validate(body)
    except ValidationError as exc:
        field, where, message = _first_error(exc)
        raise FieldError(
            field,
            f"{type}: body field {where!r}: {message}" if where else f"{type}: body: {message}",
        ) from None


def _event_uuid(type: str, event_id: str | uuid.UUID | None) -> str:
    """The event id in canonical UUID form, a new one when none is given."""
    if event_id is None:
        return new_id()
    try:
        return str(uuid.UUID(str(event_id)))
    except ValueError:
        raise FieldError("event_id", f"{type}: event_id {str(event_id)!r} is not a UUID") from None


def make_event(
    type: str,
    *,
    project: str,
    entity: str,
    actor: str,
    body: dict[str, Any] | Body,
    occurred_at: Any = None,
    event_id: str | uuid.UUID | None = None,
    personal_refs: tuple[str, ...] = (),
    trace_id: str | None = None,
    payload: bytes | None = None,
) -> NewEvent:
    """Build a validated event; raise InvalidInput (a LedgerError) naming the bad field."""
    spec = _spec(type)
    problem = envelope_problem(project, entity, actor, trace_id)
    if problem is not None:
        raise FieldError(problem[0], f"{type}: {problem[0]} {problem[1]}")
    _check_entity(type, spec, project, entity)
    model = _body_model(type, spec, body)
    event = NewEvent(
        event_id=_event_uuid(type, event_id),
        type=type,
        schema_version=spec.schema_version,
        project=project,
        entity=entity,
        actor=actor,
        occurred_at=to_timestamp(occurred_at, "occurred_at"),
        body=model.model_dump(mode="json", by_alias=True, exclude_none=False),
        personal_refs=tuple(personal_refs),
        trace_id=trace_id,
        payload=payload,
    )
    _check_payload(event)
    event._checked = (id(event.body), id(event.payload))
    return event


def _envelope_problem(event: NewEvent, spec: EventType) -> tuple[str, str] | None:
    """``(field, message)`` for the first envelope field of ``event`` that is wrong."""
    if event.schema_version != spec.schema_version:
        return "schema_version", f"{event.schema_version} is not current ({spec.schema_version})"
    problem = envelope_problem(event.project, event.entity, event.actor, event.trace_id)
    if problem is not None:
        return problem
    if not is_stored(event.occurred_at):
        return "occurred_at", (
            f"{event.occurred_at!r} is not a stored timestamp: expected "
            "YYYY-MM-DDTHH:MM:SS.ffffffZ (registry.timeutil.to_timestamp makes one)"
        )
    try:
        parsed = NodeId.parse(event.entity)
    except LedgerError as exc:
        return "entity", str(exc)
    if parsed.kind != spec.entity_kind:
        return "entity", f"expected a {spec.entity_kind} id, got {event.entity!r}"
    if parsed.project is not None and parsed.project != event.project:
        return "entity", f"belongs to project {parsed.project!r}, not {event.project!r}"
    return None


def _body_and_payload_problem(event: NewEvent, spec: EventType) -> tuple[str, str] | None:
    """``(field, message)`` for the first problem of the body of ``event`` or its payload."""
    problem = body_problem(event.body)
    if problem is not None:
        return problem
    try:
        spec.body.model_validate(event.body)
    except ValidationError as exc:
        field, _, message = _first_error(exc)
        return field, message
    if event.type in PAYLOAD_TYPES:
        from registry.payloads import check_predictions

        return check_predictions(event.body, event.payload)
    if event.payload is not None:
        return "payload", f"{event.type} events carry no payload"
    return None


def validate_new(event: NewEvent) -> tuple[str, str] | None:
    """Re-check an event built elsewhere (e.g. sent over the wire).

    Return ``(field, message)`` for the first problem, or None when it is valid.
    """
    if event.is_checked():
        return None
    spec = CATALOGUE.get(event.type)
    if spec is None:
        return "type", f"unknown event type {event.type!r}"
    return _envelope_problem(event, spec) or _body_and_payload_problem(event, spec)


def normalised(event: NewEvent) -> NewEvent:
    """The event with its body in schema form (defaults filled, aliases applied), as
    ``make_event`` builds it; call after ``validate_new`` found no problem."""
    if event.is_checked():
        return event
    body = CATALOGUE[event.type].body.model_validate(event.body)
    return event.model_copy(update={"body": body.model_dump(mode="json", by_alias=True)})


def _check_payload(event: NewEvent) -> None:
    """A payload must go with the types that have one, and match the body's digest."""
    if (event.payload is not None) != (event.type in PAYLOAD_TYPES):
        raise InvalidInput(
            f"{event.type}: "
            + ("needs its rows as a payload" if event.payload is None else "carries no payload"),
            field="payload",
        )
    if event.payload is not None:
        from registry.payloads import digest

        if digest(event.payload) != event.body["payload_digest"]:
            raise InvalidInput(
                f"{event.type}: body field 'payload_digest' does not match the payload",
                field="body.payload_digest",
            )
