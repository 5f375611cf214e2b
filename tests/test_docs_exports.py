"""``docs/exports.md`` and ``docs/reports.md`` as written: the Parquet schemas shown are
the ones exported, the manifest shown has the fields a real one has, and every
command shown exists."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from audit.exports import parquet
from registry.cli import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXPORTS = DOCS / "exports.md"
REPORTS = DOCS / "reports.md"


def _block(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.DOTALL)
    assert match, f"no {name} block"
    return match.group(1)


def test_the_parquet_schemas_shown_are_the_exported_ones() -> None:
    shown = _block(EXPORTS.read_text(), "parquet-schemas").strip()
    assert shown == parquet.schema_markdown().strip(), (
        "docs/exports.md is out of date: paste parquet.schema_markdown() between the markers"
    )
    for table in parquet.TABLES:
        assert f"{table}.parquet" in shown


def test_the_manifest_shown_has_the_real_fields(tmp_path: Path) -> None:
    [example] = [
        json.loads(block.replace("…", ""))
        for block in re.findall(r"```json\n(.*?)```", EXPORTS.read_text(), re.DOTALL)
        if "predicateType" in block
    ]
    assert example["_type"] == "https://in-toto.io/Statement/v1"
    assert example["predicateType"] == "https://mlledger.dev/attestations/export/v1"
    assert set(example["predicate"]) == {
        "format",
        "parameters",
        "files",
        "checkpoint",
        "exported_at",
        "producer",
    }
    assert set(example["predicate"]["parameters"]) == {"project", "since", "until", "upto"}
    assert set(example["predicate"]["checkpoint"]) == {"origin", "tree_size", "seq", "note"}


@pytest.mark.parametrize("page", [EXPORTS, REPORTS], ids=lambda p: p.name)
def test_the_commands_shown_parse(page: Path) -> None:
    parser = build_parser()
    lines = re.findall(r"^\$? ?(mlledger [^#\n]*)", page.read_text(), re.MULTILINE)
    assert len(lines) >= 3
    for line in lines:
        words = shlex.split(line.replace("…", "x"))
        if "|" in line or any(w.startswith("[") or w.isupper() for w in words[1:]):
            continue  # a synopsis line, not a command
        parser.parse_args(words[1:])
