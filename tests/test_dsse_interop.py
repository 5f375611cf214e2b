"""Certificates and export manifests verify with an independent DSSE implementation.

``securesystemslib`` (the Python DSSE library) checks a real erasure certificate and a
real export manifest with nothing but the log's verifier key, through the example of
``docs/audit.md`` (run as written); a changed payload is rejected; and the key id the
envelopes carry is the one the page documents, which a verifier must be told: with the
library's default key id no signature is even tried.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from audit import erasure
from audit.erasure import schema as certificates
from audit.exports import MANIFEST, export
from audit.exports import PREDICATE_TYPE as EXPORT_TYPE
from registry.sdk import Registry
from tests.support.helpers import signing_key as _key
from tests.support.worlds import personal_dataset

PAGE = Path(__file__).resolve().parents[1] / "docs" / "audit.md"


def _example() -> str:
    """The python block of docs/audit.md that verifies an envelope with securesystemslib."""
    blocks = re.findall(r"^```python\n(.*?)^```$", PAGE.read_text(), re.MULTILINE | re.DOTALL)
    [block] = [b for b in blocks if "securesystemslib" in b]
    return str(block)


@pytest.fixture
def signed(reg: Registry, tmp_path: Path) -> Path:
    """A directory holding a real certificate (erasure.json), a real export (export/)
    and the log's verifier key as ``mlledger audit public-key --out`` writes it."""
    personal_dataset(reg, "patients", ["p-1", "p-2"], ["ann", "bob"])
    reg.store_subject_data("ann", {"email": "ann@example.com"})
    outcome = reg.erase("ann")
    erased = reg.ledger.last_event()
    assert erased is not None and erased.type == "subject-erased"
    assert erased.body["erasure"] == outcome["erasure"]
    envelope = erasure.certify(reg.ledger, "test", outcome["erasure"], purge=outcome["purge"])
    (tmp_path / "erasure.json").write_text(json.dumps(envelope, indent=2, sort_keys=True))
    export(reg.ledger, "parquet", tmp_path / "export", _key(reg))
    (tmp_path / "log.pub").write_text(_key(reg).verifier().to_string() + "\n")
    return tmp_path


def _run_example(directory: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(directory)
    namespace: dict[str, Any] = {"__name__": "docs_audit_example"}
    exec(compile(_example(), "docs/audit.md (securesystemslib block)", "exec"), namespace)
    return namespace


def test_the_documented_example_verifies_a_certificate_and_a_manifest(
    signed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace = _run_example(signed, monkeypatch)
    assert namespace["statement"]["predicateType"] == certificates.PREDICATE_TYPE
    assert capsys.readouterr().out == certificates.PREDICATE_TYPE + "\n"
    verify_dsse: Callable[[str, str], dict[str, Any]] = namespace["verify_dsse"]
    manifest = verify_dsse(str(signed / "export" / MANIFEST), "log.pub")
    assert manifest["predicateType"] == EXPORT_TYPE
    assert {s["name"] for s in manifest["subject"]} >= {"events.parquet", "runs.parquet"}
    statement = verify_dsse("erasure.json", "log.pub")
    assert statement["predicate"]["purge"]["method"]


@pytest.mark.parametrize("name", ["erasure.json", f"export/{MANIFEST}"])
def test_a_changed_payload_is_rejected(
    signed: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    verify_dsse = _run_example(signed, monkeypatch)["verify_dsse"]
    path = signed / name
    envelope = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    envelope["payload"] = base64.b64encode(payload).decode()
    path.write_text(json.dumps(envelope))
    with pytest.raises(VerificationError, match="Found: 0, Expected 1"):
        verify_dsse(str(path), "log.pub")


def test_the_keyid_is_the_documented_one_and_a_verifier_needs_it(
    signed: Path, reg: Registry
) -> None:
    verifier = _key(reg).verifier()
    name, key_id, _ = (signed / "log.pub").read_text().strip().split("+", 2)
    for path in (signed / "erasure.json", signed / "export" / MANIFEST):
        envelope = json.loads(path.read_text())
        [keyid] = [signature["keyid"] for signature in envelope["signatures"]]
        assert keyid == f"{name}+{key_id}" == f"{verifier.name}+{verifier.key_id:08x}"
        assert re.fullmatch(r"[^+\s]+\+[0-9a-f]{8}", keyid)
        # The library's default key id (SHA-256 of the key's JSON form) names no signature.
        default = SSlibKey.from_crypto(verifier.public_key)
        assert default.keyid != keyid
        with pytest.raises(VerificationError, match="Found: 0, Expected 1"):
            Envelope.from_dict(json.loads(path.read_text())).verify([default], 1)
        told = SSlibKey(keyid, default.keytype, default.scheme, default.keyval)
        assert told.keyval == {"public": verifier.public_bytes.hex()}
        assert list(Envelope.from_dict(json.loads(path.read_text())).verify([told], 1)) == [keyid]
