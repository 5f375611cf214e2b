"""docs/audit.md agrees with the code: every finding kind the verifier reports is in
its table (and no other), the bundle shown has the fields bundles have, the sample
checkpoint is a real signed note, and the commands shown exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from audit.note import Checkpoint, open_note
from audit.proofs import FORMAT
from registry.commands import audit as audit_cli

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "audit.md"


def test_the_findings_table_lists_every_kind_the_verifier_reports() -> None:
    source = (REPO / "audit" / "verify.py").read_text()
    reported = set(re.findall(r'(?:report|findings)\.add\(\s*"([a-z-]+)"', source))
    text = PAGE.read_text()
    documented = set()
    for row in re.findall(r"^\| (`[a-z-]+`(?:, `[a-z-]+`)*) \|", text, re.MULTILINE):
        documented |= set(re.findall(r"`([a-z-]+)`", row))
    assert reported == documented


def test_the_bundle_shown_has_the_fields_of_a_bundle() -> None:
    text = PAGE.read_text()
    block = re.search(r'```json\n(\{\n  "format".*?)\n```', text, re.DOTALL)
    assert block is not None
    shown = json.loads(block.group(1))
    assert shown["format"] == FORMAT
    assert set(shown) == {
        "format",
        "tree",
        "index",
        "entry",
        "leaf_hash",
        "tree_size",
        "inclusion_proof",
        "checkpoint",
        "consistency",
    }


def test_the_sample_checkpoint_parses() -> None:
    text = PAGE.read_text()
    block = re.search(r"```text\n(.*?)```", text, re.DOTALL)
    assert block is not None
    body, signatures = open_note(block.group(1))
    checkpoint = Checkpoint.parse(body)
    assert checkpoint.size == 21 and len(checkpoint.root) == 32
    assert [name for name, _, _ in signatures] == [checkpoint.origin]


def test_the_commands_shown_exist() -> None:
    text = PAGE.read_text()
    used = set(re.findall(r"mlledger audit ([a-z-]+)", text))
    assert used <= set(audit_cli.COMMANDS), used - set(audit_cli.COMMANDS)
    assert used == set(audit_cli.COMMANDS)
