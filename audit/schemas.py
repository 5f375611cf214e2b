"""JSON Schemas of the documents the audit tools hand out, generated from their models.

``docs/schemas/`` publishes them: ``proof-bundle.schema.json`` (a proof bundle,
``audit.proofs.ProofBundle``), ``export-manifest.schema.json`` (the statement an
export's ``manifest.json`` signs, ``audit.exports.manifest.ExportStatement``) and
``erasure-certificate.schema.json`` (an erasure certificate, ``audit.erasure.schema``).
``python -m audit.schemas [DIRECTORY]`` writes them all (into ``docs/schemas`` of the
working directory by default); tests check the published files equal what the models
generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from audit.erasure import schema as certificates
from audit.exports.manifest import ExportStatement
from audit.proofs import ProofBundle

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE = "urn:mlledger:schema:"
#: Each published file and the model it is the schema of.
MODELS: dict[str, type[BaseModel]] = {
    "proof-bundle.schema.json": ProofBundle,
    "export-manifest.schema.json": ExportStatement,
}


def schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of what ``model`` serialises to, with ``$id`` from
    ``name``."""
    generated = model.model_json_schema(mode="serialization")
    return {"$schema": DIALECT, "$id": BASE + name.removesuffix(".schema.json"), **generated}


#: The certificate's file: its schema describes the envelope and its decoded statement.
CERTIFICATE = "erasure-certificate.schema.json"


def schemas() -> dict[str, dict[str, Any]]:
    """Every published schema, by file name."""
    found = {name: schema(model, name) for name, model in MODELS.items()}
    return {**found, CERTIFICATE: certificates.json_schema()}


def text(document: dict[str, Any]) -> str:
    """A schema as its file holds it: indented, keys sorted, one final newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in schemas().items():
        (directory / name).write_text(text(document), encoding="utf-8")
        written.append(directory / name)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "docs/schemas")
    for path in write(target):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
