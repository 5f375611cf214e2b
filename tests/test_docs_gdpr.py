"""``docs/gdpr.md`` as written: its remediation example runs against a real ledger and
resolves the flag an erasure put on a model; the commands it shows exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

import registry
from registry.cli import build_parser
from tests.support.worlds import personal_dataset

PAGE = Path(__file__).resolve().parents[1] / "docs" / "gdpr.md"


def test_the_remediation_example_resolves_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLLEDGER_DB", str(tmp_path / "ledger.db"))
    keys = [f"visit-{i}" for i in range(12)]
    with registry.connect(project="clinic", actor="etl") as reg:
        subjects = [f"p{i % 4}" for i in range(12)]
        data = personal_dataset(
            reg, "patients", keys, subjects, version="2024-06", uri="s3://clinic/p"
        )
        with reg.run("train", inputs=[data]) as run:
            old = run.register_model("risk", artifact_uri="s3://m/1", artifact_digest="sha256:02")
        reg.erase("p1")
    (tmp_path / "clean.parquet").write_bytes(b"the cleaned data")
    (tmp_path / "model.pkl").write_bytes(b"the retrained model")
    [block] = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)
    exec(compile(block, str(PAGE), "exec"), {"load_training_keys": lambda: keys})
    with registry.connect(project="clinic") as reg:
        [flag] = reg.remediations()
        last = reg.ledger.last_event()
        remediated = [e for e in reg.ledger.read(0) if e.type == "erasure-remediated"]
    assert flag["model"] == old.id and flag["status"] == "remediated"
    assert last is not None and last.type == "run-completed"
    assert [e.entity for e in remediated] == [flag["resolved_by"]]


def test_the_commands_shown_parse() -> None:
    parser = build_parser()
    lines = re.findall(r"^\$? ?(mlledger [^#\n]*)", PAGE.read_text(), re.MULTILINE)
    assert len(lines) >= 8
    for line in lines:
        words = [w for w in shlex.split(line.replace("…", "x")) if w not in ("[", "]")]
        if any(w.startswith("[") or w.isupper() for w in words[1:]):
            continue  # a synopsis line, not a command
        parser.parse_args(words[1:])
