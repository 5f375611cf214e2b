"""The envelope of an event, apart from its type's body: the event about to be appended
(``NewEvent``), the event read back (``StoredEvent``), the checks every envelope passes,
and the hashed form whose RFC 8785 canonical JSON is the event's Merkle leaf.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from registry.canonical import text_problem
from registry.limits import MAX_ACTOR, MAX_ENTITY, MAX_PROJECT, MAX_TRACE_ID


class NewEvent(BaseModel):
    """An event about to be appended: everything but position, recorded_at and hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(description="UUID; the idempotency key.")
    type: str = Field(description="Event type name from the catalogue.")
    schema_version: int = Field(description="Version of the body schema.")
    project: str = Field(description="Project the event belongs to.")
    entity: str = Field(
        description=f"Typed node id the event is about; at most {MAX_ENTITY} characters."
    )
    actor: str = Field(
        description=f"Who caused it (user, service, key); 1 to {MAX_ACTOR} characters."
    )
    occurred_at: str = Field(
        description="When it happened, as reported by the writer (years 1 to 9999, UTC)."
    )
    body: dict[str, Any] = Field(
        description=(
            "Type-specific, non-personal body; objects and arrays nest at most "
            "64 levels, the body being the first."
        )
    )
    personal_refs: tuple[str, ...] = Field(default=(), description="Vault entry ids.")
    trace_id: str | None = Field(
        default=None,
        description=f"Trace id of the request, if any; at most {MAX_TRACE_ID} characters.",
    )
    payload: bytes | None = Field(
        default=None,
        repr=False,
        description="Columnar rows (predictions), covered by the body's payload_digest.",
    )
    # Set by make_event to the body and payload it has just validated, so append need
    # not validate them again; a copy with another body or payload is checked anew.
    _checked: tuple[int, int] | None = PrivateAttr(default=None)

    def is_checked(self) -> bool:
        """Whether make_event validated this very body and payload."""
        checked = self.__pydantic_private__.get("_checked")  # type: ignore[union-attr]
        return bool(checked == (id(self.body), id(self.payload)))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the log."""

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
    personal_refs: tuple[str, ...]
    trace_id: str | None
    leaf_hash: bytes
    payload: bytes | None = None

    def hashed_form(self) -> dict[str, Any]:
        """The fields covered by the leaf hash, as hashed."""
        return hashed_form(
            self.position,
            self.event_id,
            self.type,
            self.schema_version,
            self.project,
            self.entity,
            self.actor,
            self.occurred_at,
            self.recorded_at,
            self.body,
            self.personal_refs,
            self.trace_id,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, leaf hash in hex."""
        out = self.hashed_form()
        out["leaf_hash"] = self.leaf_hash.hex()
        return out


def hashed_form(
    position: int,
    event_id: str,
    type: str,
    schema_version: int,
    project: str,
    entity: str,
    actor: str,
    occurred_at: str,
    recorded_at: str,
    body: dict[str, Any],
    personal_refs: tuple[str, ...] | list[str],
    trace_id: str | None,
) -> dict[str, Any]:
    """The dictionary whose canonical JSON is the Merkle leaf of an event."""
    return {
        "position": position,
        "event_id": event_id,
        "type": type,
        "schema_version": schema_version,
        "project": project,
        "entity": entity,
        "actor": actor,
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "body": body,
        "personal_refs": list(personal_refs),
        "trace_id": trace_id,
    }


def _text_field(value: str, most: int) -> str | None:
    """Why a text field of the envelope cannot be stored, or None."""
    if not value:
        return "is empty; expected a non-empty string"
    if len(value) > most:
        return f"is {len(value)} characters long; expected at most {most}"
    return text_problem(value)


def envelope_problem(
    project: str, entity: str, actor: str, trace_id: str | None
) -> tuple[str, str] | None:
    """``(field, why)`` for the first envelope field the stores cannot hold, or None."""
    for field, value, most in (
        ("project", project, MAX_PROJECT),
        ("entity", entity, MAX_ENTITY),
        ("actor", actor, MAX_ACTOR),
        ("trace_id", trace_id, MAX_TRACE_ID),
    ):
        if value is None:
            continue
        if not isinstance(value, str):
            return field, f"expected a string, got {type(value).__name__}"
        why = _text_field(value, most)
        if why is not None:
            return field, why
    return None


# JSON string literal, as RFC 8785 writes it (same escapes as the C encoder, no \u for
# non-ASCII): the C function itself, without the encoder object around it.
_string: Callable[[str], str] = json.encoder.encode_basestring


def canonical_event(
    position: int,
    event_id: str,
    type: str,
    schema_version: int,
    project: str,
    entity: str,
    actor: str,
    occurred_at: str,
    recorded_at: str,
    body_json: str,
    personal_refs: tuple[str, ...] | list[str],
    trace_id: str | None,
) -> bytes:
    """RFC 8785 form of ``hashed_form(...)``, given the body's canonical JSON.

    Equal to ``canonical_json(hashed_form(...))`` (a test checks it against the
    reference encoder) but serialises the body, the large part, only once.
    """
    refs = "[" + ",".join(_string(r) for r in personal_refs) + "]"
    trace = "null" if trace_id is None else _string(trace_id)
    return (
        f'{{"actor":{_string(actor)},"body":{body_json},"entity":{_string(entity)},'
        f'"event_id":{_string(event_id)},"occurred_at":{_string(occurred_at)},'
        f'"personal_refs":{refs},"position":{position},"project":{_string(project)},'
        f'"recorded_at":{_string(recorded_at)},"schema_version":{schema_version},'
        f'"trace_id":{trace},"type":{_string(type)}}}'
    ).encode()
