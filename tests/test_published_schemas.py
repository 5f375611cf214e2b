"""``docs/schemas/``: the JSON Schemas of proof bundles and export manifests are what
their models generate, a real bundle and a real export's manifest validate against
them (with the ``jsonschema`` library, as a consumer would), and wrong shapes do not;
the readers built on the models refuse wrong shapes naming the member."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from audit import schemas
from audit.checkpoints import load_signing_key, write_checkpoint
from audit.exports import MANIFEST, ExportError, export
from audit.exports.manifest import read_statement
from audit.proofs import ProofError, make_bundle, read_bundle
from registry.sdk import Registry
from tests.support.worlds import build_world

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    document = json.loads((PUBLISHED / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    return jsonschema.Draft202012Validator(document)


@pytest.mark.parametrize("name", sorted(schemas.MODELS))
def test_the_published_schemas_are_the_models(name: str) -> None:
    published = (PUBLISHED / name).read_text(encoding="utf-8")
    assert published == schemas.text(schemas.schemas()[name]), (
        f"docs/schemas/{name} is out of date: run `python -m audit.schemas`"
    )


def test_write_puts_every_schema_in_a_directory(tmp_path: Path) -> None:
    written = schemas.write(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted([*schemas.MODELS, schemas.CERTIFICATE])
    assert sorted(p.name for p in PUBLISHED.glob("*.json")) == sorted(p.name for p in written)
    for path in written:
        assert path.read_text(encoding="utf-8") == (PUBLISHED / path.name).read_text(
            encoding="utf-8"
        )


@pytest.fixture
def built(reg: Registry) -> Registry:
    build_world(reg)
    reg.flush()
    return reg


def _bundles(reg: Registry) -> list[dict[str, Any]]:
    key, _, _ = load_signing_key(reg.ledger.store.url, None, create=True)
    early, _ = write_checkpoint(reg.ledger.store, key, "events")
    reg.register_dataset("later", "1", uri="s3://b/later", digest="sha256:02")
    reg.flush()
    write_checkpoint(reg.ledger.store, key, "events")
    return [
        make_bundle(reg.ledger.store, 0),
        make_bundle(reg.ledger.store, 3, since=early.size),
    ]


def _refused(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


def test_real_proof_bundles_validate_and_wrong_shapes_do_not(built: Registry) -> None:
    validator = _validator("proof-bundle.schema.json")
    plain, with_consistency = _bundles(built)
    assert "consistency" in with_consistency and "consistency" not in plain
    for bundle in (plain, with_consistency):
        validator.validate(json.loads(json.dumps(bundle)))
    for change in (
        lambda b: b.update(index="0"),
        lambda b: b.update(index=-1),
        lambda b: b.pop("checkpoint"),
        lambda b: b.update(tree="other"),
        lambda b: b.update(format="mlledger-proof/2"),
        lambda b: b["inclusion_proof"].append("not base64"),
        lambda b: b.update(leaf_hash=base64.b64encode(b"short").decode()),
        lambda b: b.update(consistency={"size1": 1, "proof": []}),
    ):
        wrong = json.loads(json.dumps(with_consistency))
        change(wrong)
        assert _refused(validator, wrong), wrong


def _statement(directory: Path) -> dict[str, Any]:
    envelope = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    return dict(json.loads(base64.b64decode(envelope["payload"])))


@pytest.mark.parametrize("fmt", ["openlineage", "parquet"])
def test_a_real_export_manifest_validates_and_wrong_shapes_do_not(
    built: Registry, tmp_path: Path, fmt: str
) -> None:
    validator = _validator("export-manifest.schema.json")
    key, _, _ = load_signing_key(built.ledger.store.url, None, create=True)
    export(built.ledger, fmt, tmp_path / "out", key, project="test")
    statement = _statement(tmp_path / "out")
    validator.validate(statement)
    for change in (
        lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"),
        lambda s: s["predicate"].pop("checkpoint"),
        lambda s: s["predicate"].update(format="csv"),
        lambda s: s["predicate"]["files"][0].update(size=-1),
        lambda s: s["predicate"]["files"][0].update(path="../escape"),
        lambda s: s["predicate"]["files"][0].update(sha256="ABC"),
        lambda s: s["subject"][0].pop("digest"),
        lambda s: s["predicate"]["parameters"].update(upto="7"),
    ):
        wrong = json.loads(json.dumps(statement))
        change(wrong)
        assert _refused(validator, wrong), wrong


def test_the_bundle_reader_names_the_member_of_the_wrong_shape(built: Registry) -> None:
    bundle = _bundles(built)[1]
    for change, message in (
        (lambda b: b.update(index="0"), "index '0' is not a whole number"),
        (lambda b: b.update(tree_size=True), "tree_size True is not a whole number"),
        (lambda b: b.update(tree="other"), "tree 'other' is not one of events, access"),
        (lambda b: b.pop("checkpoint"), "holds no checkpoint note"),
        (lambda b: b.update(entry=5), "holds no entry"),
        (lambda b: b.update(inclusion_proof="x"), "inclusion_proof is not a list"),
        (lambda b: b["inclusion_proof"].append("x"), r"inclusion_proof\[\d+\] is not base64"),
        (lambda b: b.update(leaf_hash=None), r"leaf_hash\[0\] is not base64"),
        (lambda b: b["consistency"].update(proof=[5]), r"consistency\.proof\[0\] is not base64"),
        (lambda b: b.update(format="x"), "not a proof bundle"),
    ):
        wrong = json.loads(json.dumps(bundle))
        change(wrong)
        with pytest.raises(ProofError, match=message):
            read_bundle(wrong)
    assert read_bundle(bundle).model_dump() == bundle


def test_the_manifest_reader_names_the_member_of_the_wrong_shape(
    built: Registry, tmp_path: Path
) -> None:
    key, _, _ = load_signing_key(built.ledger.store.url, None, create=True)
    export(built.ledger, "openlineage", tmp_path / "out", key, project="test")
    statement = _statement(tmp_path / "out")
    for change, message in (
        (lambda s: s.update(predicateType="x"), "not an mlledger export statement"),
        (lambda s: s.update(predicate=[]), "predicate is not a JSON object"),
        (lambda s: s["predicate"].update(files={}), r"predicate\.files is not a list"),
        (lambda s: s["predicate"]["files"].append(5), r"files\[\d+\] is not a JSON object"),
        (lambda s: s["predicate"]["files"][0].update(path="/abs"), "'/abs' is not a relative"),
        (lambda s: s["predicate"]["files"][0].update(sha256="x"), "not a SHA-256 hex digest"),
        (lambda s: s["predicate"]["files"][0].update(size=-1), "size is not a byte count"),
        (lambda s: s["subject"].append(1), "subjects and predicate.files disagree"),
        (lambda s: s["predicate"].update(checkpoint=1), "no checkpoint or parameters object"),
        (lambda s: s["predicate"].update(exported_at=1), r"predicate\.exported_at is not what"),
    ):
        wrong = json.loads(json.dumps(statement))
        change(wrong)
        with pytest.raises(ExportError, match=message):
            read_statement(wrong)
    assert read_statement(statement).model_dump(by_alias=True) == statement
