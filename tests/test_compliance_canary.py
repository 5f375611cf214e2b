"""The canary, for what leaves the ledger: once a subject is erased, no report and no
export holds anything of theirs.

The erasure canary's world (``tests.support.worlds.canary_world``) plants a canary
subject among a few hundred others: unique strings as their id, record keys,
vault attributes and prediction outputs; their pseudonyms are searched for too.
Before the erasure, the same exports do hold the canary's pseudonyms (so the
search can find them). After it, every export format, the model dossier of the
model trained on their data and the subject-access reports are searched, Parquet
files decoded as well as raw.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pyarrow.parquet as pq

import registry
from audit.checkpoints import load_signing_key
from audit.exports import FORMATS, export
from audit.note import SigningKey
from audit.reports import build_model_dossier
from audit.reports.subject import write_subject_report
from registry.assembly import open_ledger
from registry.ledger import Ledger
from tests.support.worlds import canary_world

SUBJECTS = 300


def _contents(directory: Path) -> dict[str, bytes]:
    """Every file's bytes, and for Parquet files their decoded rows as JSON too
    (compressed pages would hide a string from a byte search)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        found[str(path)] = path.read_bytes()
        if path.suffix == ".parquet":
            rows = pq.read_table(path).to_pylist()
            found[f"{path} (decoded)"] = json.dumps(rows, default=str).encode()
    return found


def _everything(
    ledger: Ledger, out: Path, key: SigningKey, subjects: list[str]
) -> dict[str, bytes]:
    out.mkdir()
    for fmt in FORMATS:
        export(ledger, fmt, out / fmt, key)
    build_model_dossier(ledger, "clinic", "risk@1", key).write(out / "dossier")
    with registry.connect(ledger.store.url, project="clinic") as reg:
        for subject in subjects:
            write_subject_report(reg.subject_report(subject), out / f"sar-{subject}")
    return _contents(out)


def test_no_report_or_export_holds_an_erased_subject(
    store_url: str, tmp_path: Path, isolated_env: Path
) -> None:
    tag = uuid.uuid4().hex
    records, planted = canary_world(store_url, tag, SUBJECTS)
    subject = f"canary-subject-{tag}"
    ledger = open_ledger(store_url)
    key, _, _ = load_signing_key(store_url, None, create=True)
    pseudo = ledger.pseudonymizer("clinic")
    hidden = [pseudo.subject(subject), *pseudo.records(records)]
    raw = [subject, *records, *planted, f"canary-output-{tag}"]

    before = _everything(ledger, tmp_path / "before", key, [subject, "patient-50"])
    seen = {n for n in hidden + raw for content in before.values() if n.encode() in content}
    # The exports and reports carry pseudonyms and outputs: the search finds them.
    assert set(hidden) <= seen and f"canary-output-{tag}" in seen

    with registry.connect(store_url, project="clinic", actor="dpo") as reg:
        outcome = reg.erase(subject)
    assert outcome["status"] == "erased"
    last = ledger.last_event()
    assert last is not None and last.type == "subject-erased" and last.body["records"] == 3

    after = _everything(ledger, tmp_path / "after", key, [subject, "patient-50"])
    leaks = [
        (name, needle)
        for name, content in after.items()
        for needle in hidden + raw
        if needle.encode() in content
    ]
    assert leaks == []
    # The others are all still there.
    other = pseudo.subject("patient-50")
    assert any(other.encode() in content for content in after.values())
    sar = json.loads((tmp_path / "after" / f"sar-{subject}" / "report.json").read_text())
    assert sar["erased"]["erasure"] == outcome["erasure"]
    ledger.close()
