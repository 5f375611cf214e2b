"""The catalogue's machinery: the base of every event body, the table of event types
(``CATALOGUE``), the upcasters between schema versions, and the checks body fields share.

Each type is a small pydantic model for the event's ``body``, registered with
its kebab-case name, its ``schema_version`` and the kind of node it is about
(``@event_type``). The class docstring is the type's documentation and each field
carries a description; ``docs/events.md`` is generated from the catalogue and a
test fails when anything is undocumented. A type never changes once released: a
new ``schema_version`` comes with an upcaster from the old body.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from registry.canonical import NUL_MESSAGE
from registry.ids import Kind, NodeId

PSEUDONYM_RE = re.compile(r"^[0-9a-f]{32}$")


class Part(BaseModel):
    """Base of every event body and of the models nested in one: frozen, no unknown
    fields, and no NUL in a text field (projections copy text fields into columns,
    and PostgreSQL text cannot hold NUL; free-form JSON values may, being stored as
    JSON text where NUL is written \\u0000)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        texts = value if isinstance(value, tuple) else (value,)
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise PydanticCustomError("text", NUL_MESSAGE)
        return value


class Body(Part):
    """Base of every event body: frozen, no unknown fields, no NUL in text fields."""


@dataclass(frozen=True)
class EventType:
    """One entry of the catalogue."""

    name: str
    schema_version: int
    entity_kind: Kind
    body: type[Body]
    doc: str


CATALOGUE: dict[str, EventType] = {}
# (type, from_version) -> function turning an old body into the next version's body.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def event_type(name: str, *, entity: Kind, version: int = 1) -> Callable[[type[Body]], type[Body]]:
    """Register a body class in the catalogue under ``name``."""

    def register(cls: type[Body]) -> type[Body]:
        if name in CATALOGUE:
            raise RuntimeError(f"event type {name} registered twice")
        CATALOGUE[name] = EventType(name, version, entity, cls, (cls.__doc__ or "").strip())
        return cls

    return register


def upcast(type: str, schema_version: int, body: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored body up to the current schema version of its type."""
    current = CATALOGUE[type].schema_version
    while schema_version < current:
        body = UPCASTERS[(type, schema_version)](body)
        schema_version += 1
    return body


def node_check(kind: Kind) -> Callable[[str], str]:
    """A field check: the value is a node id of ``kind`` (ValueError, for pydantic, if not)."""

    def check(value: str) -> str:
        parsed = NodeId.parse(value)
        if parsed.kind != kind:
            raise ValueError(f"expected a {kind} id, got a {parsed.kind} id {value!r}")
        return value

    return check


check_dataset = node_check("dataset")
check_run = node_check("run")
check_model = node_check("model")


def check_pseudonym(value: str) -> str:
    """A field check: the value is a keyed pseudonym (32 lowercase hex digits), never a raw key."""
    if not PSEUDONYM_RE.match(value):
        raise ValueError("expected a 32-character lowercase hex pseudonym, never a raw key")
    return value


def check_uuid(value: str) -> str:
    """A field check: the value is a UUID; returns its canonical spelling."""
    return str(uuid.UUID(value))


def optional(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """``check`` for a field that may be None."""

    def run(value: str | None) -> str | None:
        return None if value is None else check(value)

    return run


def each(check: Callable[[str], Any]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """``check`` applied to every item of a tuple field (None items skipped)."""

    def run(value: tuple[Any, ...]) -> tuple[Any, ...]:
        for item in value:
            if item is not None:
                check(item)
        return value

    return run


def distinct(
    check: Callable[[str], Any], what: str
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """``check`` applied to every item of a tuple field that may hold no item twice
    (the refusal names an item ``what``)."""

    def run(value: tuple[Any, ...]) -> tuple[Any, ...]:
        for item in value:
            check(item)
        if len(set(value)) != len(value):
            raise ValueError(f"lists the same {what} twice")
        return value

    return run


def validates(field: str, check: Callable[[Any], Any]) -> Any:
    """A validator of ``field`` for a body's class body (``_run = validates("run",
    check_run)``): ``check`` runs after the field's type, and returns its value."""
    return field_validator(field)(staticmethod(check))
