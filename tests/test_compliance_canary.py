"""The canary, for what leaves the ledger: once a subject is erased, no report and no
export holds anything of theirs.

A canary subject is planted among a few hundred others (unique strings as their
id, record keys, vault attributes and prediction outputs; their pseudonyms are
searched for too). Before the erasure, the same exports do hold the canary's
pseudonyms (so the search can find them). After it, every export format, the
model dossier of the model trained on their data and the subject-access reports
are searched, Parquet files decoded as well as raw.
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
from registry.ledger import Ledger

SUBJECTS = 300


def _world(url: str, tag: str) -> None:
    reg = registry.connect(url, project="clinic", actor="loader")
    keys, subjects = [], []
    for i in range(SUBJECTS):
        for j in range(2):
            keys.append(f"patient-{i}-visit-{j}")
            subjects.append(f"patient-{i}")
    canary = [f"canary-record-{tag}-{j}" for j in range(3)]
    keys += canary
    subjects += [f"canary-subject-{tag}"] * 3
    raw = reg.register_dataset(
        "visits", "1", uri="s3://clinic/visits", digest="sha256:aa", records=keys, subjects=subjects
    )
    sample = reg.register_dataset(
        "sample",
        "1",
        uri="s3://clinic/sample",
        digest="sha256:bb",
        records=keys[::3] + canary[:1],
        derived_from=[raw],
    )
    with reg.run("train", inputs=[sample]) as run:
        model = run.register_model("risk", artifact_uri="s3://m/risk", artifact_digest="sha256:cc")
    reg.deploy("risk-api", endpoint="https://risk", served={model: 100})
    outputs = [
        {"risk": 0.5, "note": f"canary-output-{tag}"} if k.startswith("canary") else 0.25
        for k in keys
    ]
    reg.log_predictions("risk-api", model=model, records=keys, outputs=outputs)
    reg.store_subject_data(f"canary-subject-{tag}", {"email": f"canary-email-{tag}@example.com"})
    reg.store_subject_data("patient-7", {"email": "patient-7@example.com"})
    reg.close()


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
    _world(store_url, tag)
    subject = f"canary-subject-{tag}"
    records = [f"canary-record-{tag}-{j}" for j in range(3)]
    ledger = Ledger.open(store_url)
    key, _, _ = load_signing_key(store_url, None, create=True)
    pseudo = ledger.pseudonymizer("clinic")
    hidden = [pseudo.subject(subject), *pseudo.records(records)]
    raw = [subject, *records, f"canary-email-{tag}", f"canary-output-{tag}"]

    before = _everything(ledger, tmp_path / "before", key, [subject, "patient-7"])
    seen = {n for n in hidden + raw for content in before.values() if n.encode() in content}
    # The exports and reports carry pseudonyms and outputs: the search finds them.
    assert set(hidden) <= seen and f"canary-output-{tag}" in seen

    with registry.connect(store_url, project="clinic", actor="dpo") as reg:
        outcome = reg.erase(subject)
    assert outcome["status"] == "erased"
    last = ledger.last_event()
    assert last is not None and last.type == "subject-erased" and last.body["records"] == 3

    after = _everything(ledger, tmp_path / "after", key, [subject, "patient-7"])
    leaks = [
        (name, needle)
        for name, content in after.items()
        for needle in hidden + raw
        if needle.encode() in content
    ]
    assert leaks == []
    # The others are all still there.
    other = pseudo.subject("patient-7")
    assert any(other.encode() in content for content in after.values())
    sar = json.loads((tmp_path / "after" / f"sar-{subject}" / "report.json").read_text())
    assert sar["erased"]["erasure"] == outcome["erasure"]
    ledger.close()
