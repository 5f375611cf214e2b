"""The event catalogue page (``docs/events.md``), generated from ``registry.events``.

Regenerate it with::

    python -m registry.catalogue_docs > docs/events.md

A test compares the page with ``render_events_markdown()``, so the page can
never drift from the catalogue.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from registry.events import CATALOGUE, UPCASTERS, NewEvent, StoredEvent
from registry.ids import KINDS, NodeId

COMMAND = "python -m registry.catalogue_docs > docs/events.md"

# Envelope fields that are set at append time and so are not on NewEvent.
_ASSIGNED = {
    "position": "Global, gap-free, 0-based place in the log, assigned at append.",
    "recorded_at": "When the ledger stored it (UTC), assigned at append.",
    "leaf_hash": "RFC 6962 leaf hash of the event (32 bytes; hex in JSON), assigned at append.",
}

_PLACEHOLDER: dict[str, NodeId] = {
    "dataset": NodeId("dataset", "<project>", "<name>", "<version>"),
    "model": NodeId("model", "<project>", "<name>", "<version>"),
    "run": NodeId("run", None, "<uuid>"),
    "deployment": NodeId("deployment", "<project>", "<name>"),
    "record": NodeId("record", "<project>", "<pseudonym>"),
    "subject": NodeId("subject", "<project>", "<pseudonym>"),
    "job": NodeId("job", "<project>", "<name>"),
    "project": NodeId("project", "<project>", "<project>"),
}


_CONSTRAINTS = (
    ("min_length", "min length"),
    ("max_length", "max length"),
    ("ge", "≥"),
    ("gt", ">"),
    ("le", "≤"),
    ("lt", "<"),
)


def id_format(kind: str) -> str:
    """The node id format of ``kind``, e.g. ``dataset:<project>/<name>@<version>``."""
    return str(_PLACEHOLDER[kind])


def envelope_fields() -> list[tuple[str, str, str]]:
    """``(name, type, description)`` of every envelope field, in stored order."""
    described = NewEvent.model_fields
    out = []
    for field in dataclasses.fields(StoredEvent):
        info = described.get(field.name)
        text = info.description if info is not None else _ASSIGNED.get(field.name)
        if not text:
            raise LookupError(f"envelope field {field.name!r} has no description")
        out.append((field.name, type_name(field.type), text))
    return out


def type_name(tp: Any) -> str:
    """A readable Python spelling of a field annotation."""
    if isinstance(tp, str):
        return tp
    if tp is type(None):
        return "None"
    if tp is Any:
        return "Any"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def nested_models(tp: Any) -> list[type[BaseModel]]:
    """Pydantic models mentioned anywhere in an annotation."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in nested_models(arg)]


def field_name(name: str, info: FieldInfo) -> str:
    """The name a field has in JSON (its alias when it has one)."""
    return info.alias or name


def _constraints(info: FieldInfo) -> list[str]:
    out = []
    for item in info.metadata:
        for attr, label in _CONSTRAINTS:
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{label} {value}")
    return out


def _presence(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    factory = info.default_factory
    default = factory() if factory is not None else info.default  # type: ignore[call-arg]
    if isinstance(default, BaseModel):  # a part with defaults of its own: as its JSON
        default = default.model_dump(mode="json", by_alias=True)
    return f"optional, default `{json.dumps(default)}`"


def _escape(text: str) -> str:
    """Escape ``<`` and ``>`` outside code spans, so ``<hex>`` is not taken for HTML."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _cell(text: str) -> str:
    return _escape(text).replace("|", "\\|").replace("\n", " ")


def _prose(doc: str | None) -> str:
    """A docstring as Markdown: dedented, reST double backticks made single."""
    return _escape(re.sub(r"``(.+?)``", r"`\1`", inspect.cleandoc(doc or "")))


def _field_table(model: type[BaseModel]) -> list[str]:
    if not model.model_fields:
        return ["The body is empty: `{}`."]
    lines = ["| Field | Type | Required / default | Description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        kind = f"`{type_name(info.annotation)}`"
        extra = _constraints(info)
        if extra:
            kind += ", " + ", ".join(extra)
        lines.append(
            f"| `{field_name(name, info)}` | {_cell(kind)} | {_presence(info)} | "
            f"{_cell(info.description or '')} |"
        )
    return lines


def _nested(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    lines: list[str] = []
    for name, info in model.model_fields.items():
        for inner in nested_models(info.annotation):
            if inner in seen:
                continue
            seen.add(inner)
            what = _prose(inner.__doc__).rstrip(".")
            lines += [
                "",
                f"Each item of `{field_name(name, info)}` is a `{inner.__name__}` "
                f"({what[:1].lower()}{what[1:]}):",
                "",
            ]
            lines += _field_table(inner)
            lines += _nested(inner, seen)
    return lines


_HEADER = [
    "# Event catalogue",
    "",
    "<!-- Generated from the registry/events/ package; do not edit by hand. Regenerate with:",
    f"     {COMMAND} -->",
    "",
    "Every change mlledger knows about is an event appended to one log. This page lists",
    "every event type the log can hold: its name, the version of its body schema, the",
    "kind of node it is about, what it means, and the fields of its body. Bodies hold no",
    "personal data: record keys and data-subject ids appear only as keyed pseudonyms",
    "(32 lowercase hex digits), personal attributes only as references to vault entries.",
    "",
    "## Envelope",
    "",
    "Every event, whatever its type, has the same envelope; `body` holds the type's fields.",
    "Types are given in Python notation: a `tuple` or `list` is a JSON array, a `dict` a",
    "JSON object, `None` is `null`.",
    "",
    "| Field | Type | Description |",
    "|---|---|---|",
]

_ENVELOPE_RULES = [
    "",
    "Times are UTC text of one fixed, sortable form: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.",
    "`event_id` is the idempotency key of one project: re-appending an event whose",
    "`event_id` is already in its project's log, with the same content (everything",
    "hashed but `position`, the two times and `trace_id`), writes nothing and returns",
    "the original position; the same id with other content is refused (HTTP 409), and",
    "the whole batch with it. Other projects' ids neither collide nor show. A body is",
    "validated against its type before anything is written: unknown fields are",
    "refused, and an invalid event rejects its whole batch. Text fields of a body may",
    "not contain NUL (U+0000); free-form JSON values may. Every string must be valid",
    "Unicode, and a body nests at most 64 levels.",
    "",
    "Every reference an event makes is checked against its `project`: a run is known",
    "only to the project that started it, and another project's dataset or model",
    "version may be referenced only while that project grants access",
    "(`project-access-granted`; see `docs/security.md`).",
    "",
    "`entity` is a typed node id; its kind is fixed by the event type, and the project",
    "inside it (when it has one) must be the event's `project`:",
    "",
    "| Kind | Node id |",
    "|---|---|",
]

_HASHING = [
    "",
    "### Leaf hash",
    "",
    "The leaf hash covers every envelope field but itself. The ledger builds the",
    "*hashed form*, the JSON object of `position`, `event_id`, `type`, `schema_version`,",
    "`project`, `entity`, `actor`, `occurred_at`, `recorded_at`, `body`, `personal_refs`",
    "(an array) and `trace_id` (null when absent), serialises it as RFC 8785 canonical",
    "JSON (keys sorted, no insignificant whitespace, UTF-8), and hashes it as an",
    "RFC 6962 Merkle leaf:",
    "",
    "```",
    "leaf_hash = SHA-256(0x00 || canonical_json(hashed_form))",
    "```",
    "",
    "Interior nodes of the Merkle tree are `SHA-256(0x01 || left || right)`.",
    "",
    "### Schema versions",
    "",
    "An event type never changes once released. A new body schema gets a new",
    "`schema_version` and an upcaster that turns a body of the previous version into",
    "the new one; projections read every stored body upcast to the current version.",
]


def _upcasters() -> list[str]:
    """The sentence listing the upcasters, or saying there are none."""
    if not UPCASTERS:
        return ["", "Every type is at its first version; no upcasters exist yet."]
    listed = ", ".join(f"`{t}` v{v} → v{v + 1}" for t, v in sorted(UPCASTERS))
    return ["", f"Upcasters: {listed}."]


def _type_index() -> list[str]:
    """The table of every type, each linked to its section."""
    lines = [
        "",
        "## Types",
        "",
        "| Type | Schema version | Entity | Summary |",
        "|---|---|---|---|",
    ]
    for spec in CATALOGUE.values():
        summary = _prose(spec.doc).split("\n", 1)[0]
        lines.append(
            f"| [`{spec.name}`](#{spec.name}) | {spec.schema_version} | "
            f"{spec.entity_kind} | {_cell(summary)} |"
        )
    return lines


def _intro() -> list[str]:
    """Everything before the first type's section: the envelope, hashing, the index."""
    lines = list(_HEADER)
    lines += [
        f"| `{name}` | {_cell(f'`{kind}`')} | {_cell(text)} |"
        for name, kind, text in envelope_fields()
    ]
    lines += _ENVELOPE_RULES
    lines += [f"| {kind} | `{id_format(kind)}` |" for kind in KINDS]
    return lines + _HASHING + _upcasters() + _type_index()


def render_events_markdown() -> str:
    """The whole event catalogue page, as Markdown."""
    lines = _intro()
    for spec in CATALOGUE.values():
        lines += [
            "",
            f"### {spec.name}",
            "",
            f"Schema version {spec.schema_version}; entity `{id_format(spec.entity_kind)}`.",
            "",
            _prose(spec.doc),
            "",
        ]
        lines += _field_table(spec.body)
        lines += _nested(spec.body, set())
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the page: ``python -m registry.catalogue_docs > docs/events.md``."""
    sys.stdout.write(render_events_markdown())


if __name__ == "__main__":
    main()
