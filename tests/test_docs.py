"""The documentation is checked against the code it describes.

- ``docs/events.md`` is exactly what ``registry.catalogue_docs`` generates;
- every event type and every body field is documented;
- every ``python`` block of ``docs/sdk.md`` runs, in order, against a new ledger.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from registry.catalogue_docs import (
    COMMAND,
    envelope_fields,
    field_name,
    nested_models,
    render_events_markdown,
)
from registry.events import CATALOGUE, Body

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _models(body: type[BaseModel]) -> list[type[BaseModel]]:
    """The body model and every model nested in its fields, each once."""
    found: list[type[BaseModel]] = [body]
    for model in found:
        for info in model.model_fields.values():
            found += [m for m in nested_models(info.annotation) if m not in found]
    return found


def _fields() -> list[tuple[str, str, str, Any]]:
    """``(event type, model, field, FieldInfo)`` for every body and nested field."""
    return [
        (spec.name, model.__name__, name, info)
        for spec in CATALOGUE.values()
        for model in _models(spec.body)
        for name, info in model.model_fields.items()
    ]


def _undocumented(body: type[BaseModel]) -> list[str]:
    """What of a body model (and the models nested in it) lacks documentation."""
    missing = []
    for model in _models(body):
        if not (model.__doc__ or "").strip():
            missing.append(f"{model.__name__} (docstring)")
        missing += [
            f"{model.__name__}.{name}"
            for name, info in model.model_fields.items()
            if not (info.description or "").strip()
        ]
    return missing


# --- the generated catalogue page ------------------------------------------------------


def test_events_page_is_generated_from_the_catalogue() -> None:
    page = (DOCS / "events.md").read_text(encoding="utf-8")
    assert page == render_events_markdown(), (
        "docs/events.md is out of date with the registry/events/ package; regenerate it "
        f"with: {COMMAND}"
    )


def test_events_page_shows_every_type_field_and_alias() -> None:
    page = render_events_markdown()
    for spec in CATALOGUE.values():
        assert f"\n### {spec.name}\n" in page
    for _type, _model, name, info in _fields():
        assert f"| `{field_name(name, info)}` |" in page
    assert "| `schema` |" in page and "`schema_`" not in page
    for heading in ("`Metric`", "`Served`"):
        assert heading in page


def test_envelope_fields_are_all_described() -> None:
    names = [name for name, _type, _text in envelope_fields()]
    assert names == [
        "position",
        "event_id",
        "type",
        "schema_version",
        "project",
        "entity",
        "actor",
        "occurred_at",
        "recorded_at",
        "body",
        "personal_refs",
        "trace_id",
        "leaf_hash",
        "payload",
    ]


# --- every event type and field is documented ---------------------------------------------


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_event_type_is_documented(name: str) -> None:
    spec = CATALOGUE[name]
    assert spec.doc.strip(), f"event type {name} ({spec.body.__name__}) has no docstring"
    missing = _undocumented(spec.body)
    assert not missing, (
        f"event type {name}: undocumented {', '.join(missing)}; give each "
        "model a docstring and each field Field(description=...)"
    )


def test_undocumented_models_and_fields_are_caught() -> None:
    class Part(BaseModel):
        bare: int
        told: int = Field(description="Documented.")

    class Whole(Body):
        """Documented."""

        parts: tuple[Part, ...] = Field(description="Nested.")
        plain: str

    assert _undocumented(Whole) == ["Whole.plain", "Part (docstring)", "Part.bare"]


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_event_type_name_is_kebab_case_and_in_the_docs(name: str) -> None:
    assert KEBAB.match(name), f"event type {name!r} is not kebab-case"
    docs = "".join(
        (DOCS / page).read_text(encoding="utf-8") for page in ("concepts.md", "events.md")
    )
    assert name in docs, f"event type {name} appears in neither docs/concepts.md nor docs/events.md"


# --- the SDK guide runs ---------------------------------------------------------------------


def _python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, source)`` of every python code block, in order."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in FENCE.finditer(text)]


def test_sdk_guide_blocks_are_found() -> None:
    text = (DOCS / "sdk.md").read_text(encoding="utf-8")
    blocks = _python_blocks(text)
    assert len(blocks) >= 10
    assert len(blocks) == text.count("```python")


#: The guides whose python blocks run, each in order against a new ledger.
EXECUTED = ["sdk.md", "autolog.md"]


def run_guide(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run every python block of ``docs/<page>``, in order and in one namespace, in an
    empty directory ``tmp_path/work``, against a new ledger ``tmp_path/ledger.db``;
    the namespace. Autologging a page switched on is switched off after it."""
    import registry

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLLEDGER_DB", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(tmp_path / "master.key"))
    for name in ("MLLEDGER_PROJECT", "MLLEDGER_ACTOR", "MLLEDGER_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)

    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = _python_blocks(text)
    assert blocks and len(blocks) == text.count("```python")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        for line, source in blocks:
            code = compile(source, f"docs/{page}, block at line {line}", "exec")
            try:
                exec(code, namespace)
            except Exception as exc:
                raise AssertionError(
                    f"the python block at docs/{page} line {line} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    finally:
        registry.autolog(disable=True)
        reg = namespace.get("reg")
        if reg is not None:
            reg.close()
    return namespace


@pytest.mark.parametrize("page", EXECUTED)
def test_guide_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_guide(page, tmp_path, monkeypatch)
    assert (tmp_path / "ledger.db").exists() and (tmp_path / "master.key").exists()
