"""``mlledger erase`` from the command line, on SQLite and PostgreSQL: one subject with
its certificate (checked by ``mlledger audit verify-certificate``), a batch from a
file, and erasures killed by SIGKILL in the middle of their transaction, resumed."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from audit import erasure
from audit.verify import verify
from registry.assembly import open_ledger
from tests.support.shop import CLI, SUBJECTS, mlledger, populate


def state(url: str) -> dict[str, Any]:
    ledger = open_ledger(url)
    try:
        with ledger.store.read() as conn:
            counts = {
                t: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar()
                for t in ("vault_entries", "redactions", "erasure_requests", "record_index")
            }
        types = [e.type for e in ledger.read(0, 10_000)]
        return {
            "counts": counts,
            "types": types,
            "ok": verify(ledger.store).ok,
            "pending": erasure.pending_erasures(ledger, "shop"),
        }
    finally:
        ledger.close()


def test_erase_one_subject_with_a_certificate_checked_offline(
    store_url: str, tmp_path: Path
) -> None:
    populate(store_url)
    planned = mlledger(store_url, "erase", "person-1", "--dry-run", "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["plan"]["records"]["count"] == 10
    text = mlledger(store_url, "erase", "person-1", "--dry-run")
    assert "plan for subject:shop/" in text.stdout and "10 records" in text.stdout

    certificate = tmp_path / "certificate.json"
    done = mlledger(
        store_url,
        "erase",
        "person-1",
        "--certificate",
        str(certificate),
        "--retain",
        "churn@1",
        "--justification",
        "contract",
        "--approver",
        "cfo",
    )
    assert done.returncode == 0, done.stderr
    assert "erased: subject:shop/" in done.stdout
    assert "churn@1: retained-with-justification (contract; approved by cfo)" in done.stdout
    last = state(store_url)
    assert last["types"][-2:] == ["subject-erasure-requested", "subject-erased"]

    key = _public_key(store_url, tmp_path)
    checked = _check_certificate(certificate, key)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("OK: erasure ")
    assert "not a proof that no copy exists elsewhere" in checked.stdout

    envelope = json.loads(certificate.read_text())
    envelope["signatures"][0]["sig"] = envelope["signatures"][0]["sig"][::-1]
    certificate.write_text(json.dumps(envelope))
    tampered = _check_certificate(certificate, key)
    assert tampered.returncode == 3 and tampered.stdout.startswith("FAILED:")

    again = mlledger(store_url, "erase", "person-1")
    assert again.returncode == 0 and "already erased" in again.stdout
    assert state(store_url)["types"] == last["types"]


def _predicate(certificate: Path) -> dict[str, Any]:
    envelope = json.loads(certificate.read_text())
    return dict(json.loads(base64.b64decode(envelope["payload"]))["predicate"])


def _public_key(url: str, tmp_path: Path) -> Path:
    """The log's public key, exported once into ``tmp_path`` with ``mlledger audit
    public-key``."""
    key = tmp_path / "public.key"
    if not key.exists():
        exported = subprocess.run(
            [*CLI, "audit", "public-key", "--out", str(key)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "MLLEDGER_DB": url},
        )
        assert exported.returncode == 0, exported.stderr
    return key


def _check_certificate(
    certificate: Path, key: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """``mlledger audit verify-certificate`` of ``certificate`` with the public key file."""
    command = ["audit", "verify-certificate", str(certificate), "--public-key", str(key)]
    return subprocess.run(
        [*CLI, *command, *options], capture_output=True, text=True, timeout=60, check=False
    )


def _verify_certificate(url: str, certificate: Path, tmp_path: Path) -> tuple[int, Any]:
    """``mlledger audit verify-certificate --json`` with the log's public key: exit code
    and the JSON it printed."""
    checked = _check_certificate(certificate, _public_key(url, tmp_path), "--json")
    return checked.returncode, json.loads(checked.stdout)


def test_the_certificate_records_the_purge_the_command_ran(store_url: str, tmp_path: Path) -> None:
    populate(store_url)
    certificate = tmp_path / "certificate.json"
    done = mlledger(store_url, "erase", "person-3", "--certificate", str(certificate), "--json")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "erased" and outcome["certificate"] == str(certificate)
    ledger = open_ledger(store_url)
    try:
        erased = ledger.last_event()
    finally:
        ledger.close()
    assert erased is not None and erased.type == "subject-erased"
    assert erased.body["erasure"] == outcome["erasure"]

    printed = outcome["purge"]
    purge = _predicate(certificate)["purge"]
    assert purge == {name: printed[name] for name in ("method", "finished_at", "seconds", "tables")}
    assert purge["method"].startswith(("sqlite: ", "postgresql: ")) and purge["tables"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", purge["finished_at"])
    assert purge["finished_at"] >= erased.recorded_at  # the purge ran after the erasure
    code, verified = _verify_certificate(store_url, certificate, tmp_path)
    assert code == 0 and verified["ok"] and verified["purge"] == purge

    # The purge is signed with the rest: changing it breaks the signature.
    envelope = json.loads(certificate.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["purge"]["finished_at"] = "2000-01-01T00:00:00.000000Z"
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    envelope["payload"] = base64.b64encode(payload).decode()
    certificate.write_text(json.dumps(envelope))
    code, failed = _verify_certificate(store_url, certificate, tmp_path)
    assert code == 3 and failed["ok"] is False
    assert "the payload or the signature was altered" in failed["error"]


def test_a_certificate_of_an_erasure_not_purged_records_no_purge(
    store_url: str, tmp_path: Path
) -> None:
    populate(store_url)
    certificate = tmp_path / "certificate.json"
    done = mlledger(
        store_url, "erase", "person-4", "--no-purge", "--certificate", str(certificate), "--json"
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "erased" and outcome["purge"] is None
    assert state(store_url)["types"][-2:] == ["subject-erasure-requested", "subject-erased"]
    assert _predicate(certificate)["purge"] is None
    code, verified = _verify_certificate(store_url, certificate, tmp_path)
    assert code == 0 and verified["purge"] is None


def test_a_purge_skipped_is_said_and_run_later_with_erase_purge(
    store_url: str, tmp_path: Path
) -> None:
    """Text says what --json says about the purge: none after --no-purge (in the erase's
    text and the certificate's verification), then ``erase --purge`` runs it and signs."""
    populate(store_url)
    certificate = tmp_path / "certificate.json"
    done = mlledger(store_url, "erase", "person-5", "--no-purge", "--certificate", str(certificate))
    assert done.returncode == 0, done.stderr
    assert "purge: none recorded" in done.stdout
    key = _public_key(store_url, tmp_path)
    checked = subprocess.run(
        [*CLI, "audit", "verify-certificate", str(certificate), "--public-key", str(key)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "purge: none recorded" in checked.stdout, checked.stdout
    head = len(state(store_url)["types"])
    purged = mlledger(store_url, "erase", "--purge", "--json")
    assert purged.returncode == 0, purged.stderr
    report = json.loads(purged.stdout)
    assert report["purge"]["method"].startswith(("sqlite: ", "postgresql: "))
    assert report["checkpoint"]["size"] == head  # a checkpoint signs the whole log
    assert len(state(store_url)["types"]) == head  # a purge appends no event
    text = mlledger(store_url, "erase", "--purge")
    assert text.returncode == 0 and text.stdout.startswith("purged ("), text.stdout


def test_usage_errors_are_clear(store_url: str) -> None:
    populate(store_url)
    for args, message in (
        (("erase",), "give one of: SUBJECT, --from-file FILE, --resume or --purge"),
        (("erase", "--purge", "--dry-run"), "--purge goes alone"),
        (("erase", "person-1", "--retain", "churn@1"), "--retain needs --justification"),
        (("erase", "nobody"), "no data subject with that id"),
    ):
        done = mlledger(store_url, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, done.stderr


def test_a_killed_erasure_leaves_a_request_that_resume_completes(store_url: str) -> None:
    populate(store_url)
    before = state(store_url)
    killed = mlledger(store_url, "erase", "person-2", crash_at=1)
    assert killed.returncode == -9, killed.stderr
    after = state(store_url)
    # The request is durable; nothing of the erasure itself was written.
    assert after["types"] == [*before["types"], "subject-erasure-requested"]
    assert after["counts"] == {**before["counts"], "erasure_requests": 1}
    assert len(after["pending"]) == 1 and after["ok"]

    resumed = mlledger(store_url, "erase", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    [outcome] = json.loads(resumed.stdout)
    assert (outcome["status"], outcome["erasure"]) == ("resumed", after["pending"][0])
    final = state(store_url)
    assert final["types"][-1] == "subject-erased" and final["pending"] == [] and final["ok"]
    assert final["counts"]["vault_entries"] == before["counts"]["vault_entries"] - 1


def test_a_batch_from_a_file_resumes_where_it_was_killed(store_url: str, tmp_path: Path) -> None:
    populate(store_url)
    subjects = tmp_path / "subjects.txt"
    subjects.write_text(
        "# erasure requests of the week\n" + "\n".join(SUBJECTS[:4]) + "\nunknown-person\n\n"
    )
    killed = mlledger(store_url, "erase", "--from-file", str(subjects), crash_at=3)
    assert killed.returncode == -9
    half = state(store_url)
    assert half["types"].count("subject-erased") == 2 and len(half["pending"]) == 1

    certificates = tmp_path / "certificates"
    certificates.mkdir()
    done = mlledger(
        store_url,
        "erase",
        "--from-file",
        str(subjects),
        "--json",
        "--certificate",
        str(certificates),
    )
    assert done.returncode == 0, done.stderr
    assert "erasing" in done.stderr  # the progress bar
    summary = json.loads(done.stdout)
    statuses = [o["status"] for o in summary["outcomes"]]
    assert statuses == ["already-erased", "already-erased", "resumed", "erased", "not-found"]
    assert summary["finish"]["purge"]["method"]
    assert len(list(certificates.glob("*.json"))) == 4
    # Every certificate records the batch's one purge, which ran after all its erasures.
    purge = summary["finish"]["purge"]
    attested = {name: purge[name] for name in ("method", "finished_at", "seconds", "tables")}
    assert [_predicate(c)["purge"] for c in certificates.glob("*.json")] == [attested] * 4
    final = state(store_url)
    assert final["types"].count("subject-erased") == 4 and final["pending"] == []
    assert final["ok"]
    again = mlledger(store_url, "erase", "--from-file", str(subjects))
    assert again.returncode == 0 and "4 already-erased, 1 not-found" in again.stdout
