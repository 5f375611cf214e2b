"""The published JSON Schema of erasure certificates
(``docs/schemas/erasure-certificate.schema.json``): it is what the models generate, a
certificate ``mlledger erase --certificate`` writes is valid against it, and one whose
shape was changed is not."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from audit.erasure.schema import Statement, json_schema, schema_text
from tests.support.shop import mlledger, populate

SCHEMA_FILE = (
    Path(__file__).resolve().parents[1] / "docs" / "schemas" / ("erasure-certificate.schema.json")
)


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return schema


def _problems(schema: dict[str, Any], instance: Any) -> list[str]:
    return [e.message for e in Draft202012Validator(schema).iter_errors(instance)]


def _statement_schema() -> dict[str, Any]:
    """The schema of the envelope's decoded payload: the file's ``$defs/Statement``."""
    schema = _schema()
    return {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/Statement"}


def _statement(envelope: dict[str, Any]) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def test_the_published_schema_is_what_the_models_generate() -> None:
    assert SCHEMA_FILE.read_text() == schema_text()
    assert _schema() == json_schema()
    Draft202012Validator.check_schema(_schema())


def test_python_m_audit_erasure_schema_prints_the_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "audit.erasure", "schema"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, SCHEMA_FILE.read_text())
    wrong = subprocess.run(
        [sys.executable, "-m", "audit.erasure"], capture_output=True, text=True, check=False
    )
    assert wrong.returncode == 2 and "usage" in wrong.stderr


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A certificate written by ``mlledger erase --certificate`` on a SQLite ledger."""
    directory = tmp_path_factory.mktemp("schema")
    url = f"sqlite:///{directory}/ledger.db"
    populate(url)
    path = directory / "certificate.json"
    done = mlledger(url, "erase", "person-2", "--certificate", str(path), "--json")
    assert done.returncode == 0, done.stderr
    envelope: dict[str, Any] = json.loads(path.read_text())
    return envelope


def test_a_real_certificate_is_valid(certificate: dict[str, Any]) -> None:
    assert _problems(_schema(), certificate) == []
    statement = _statement(certificate)
    assert _problems(_statement_schema(), statement) == []
    assert Statement.model_validate(statement).predicate.affected.records.count == 10


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda e: e.pop("signatures"), "'signatures' is a required property"),
        (lambda e: e.update(signatures=[]), "should be non-empty"),
        (lambda e: e.update(payloadType="application/json"), "was expected"),
        (lambda e: e.update(payload="not base64!"), "does not match"),
        (lambda e: e["signatures"][0].pop("sig"), "'sig' is a required property"),
    ],
)
def test_an_envelope_of_another_shape_is_invalid(
    certificate: dict[str, Any], change: Any, fragment: str
) -> None:
    envelope = copy.deepcopy(certificate)
    change(envelope)
    problems = _problems(_schema(), envelope)
    assert any(fragment in p for p in problems), problems


def _predicate(statement: dict[str, Any]) -> dict[str, Any]:
    predicate: dict[str, Any] = statement["predicate"]
    return predicate


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda s: _predicate(s)["affected"]["records"].update(count="10"), "is not of type"),
        (lambda s: _predicate(s).update(extra=1), "Additional properties are not allowed"),
        (lambda s: _predicate(s).pop("log"), "'log' is a required property"),
        (lambda s: _predicate(s)["log"]["events"].pop(), "is too short"),
        (lambda s: _predicate(s)["affected"].update(runs=["model:x"]), "does not match"),
        (lambda s: _predicate(s).update(erasure="ERASURE"), "does not match"),
        (lambda s: s.update(predicateType="https://example.com/v1"), "was expected"),
        (lambda s: _predicate(s)["remediation"].append({"model": "model:x"}), "is a required"),
    ],
)
def test_a_statement_of_another_shape_is_invalid(
    certificate: dict[str, Any], change: Any, fragment: str
) -> None:
    statement = _statement(certificate)
    change(statement)
    problems = _problems(_statement_schema(), statement)
    assert any(fragment in p for p in problems), problems
