"""``mlledger audit``: keygen, checkpoint, verify, prove and verify-proof as a user
runs them, on a SQLite file (the store-level behaviour on both backends is in
``test_audit.py``)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import registry
from registry.cli import main
from registry.store import open_store
from tests.support.events import bypass
from tests.support.helpers import mlledger_process
from tests.support.helpers import run_cli as run
from tests.support.worlds import build_world


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with registry.connect(url, project="test", actor="tester") as reg:
        build_world(reg)
    return url


def as_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_keygen_writes_a_private_key_file_and_prints_the_public_key(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    path = tmp_path / "keys" / "signing.key"
    created = as_json(capsys, "audit", "keygen", "--db", db, "--name", "example.com/ml")
    assert created["path"] == str(path) and created["name"] == "example.com/ml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("PRIVATE+KEY+example.com/ml+")
    assert created["public_key"].startswith("example.com/ml+")
    assert "PRIVATE" not in created["public_key"]

    code, out, _ = run(capsys, "audit", "public-key", "--db", db, "--out", str(tmp_path / "k.pub"))
    assert code == 0 and out.strip() == created["public_key"]
    assert (tmp_path / "k.pub").read_text().strip() == created["public_key"]

    code, _, err = run(capsys, "audit", "keygen", "--db", db)
    assert code == 2 and "already exists" in err and "must not be replaced" in err
    assert path.read_text().startswith("PRIVATE+KEY+example.com/ml+")


def test_checkpoint_creates_the_key_on_first_use_and_verify_passes(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    code, out, err = run(capsys, "audit", "checkpoint", "--db", db)
    assert code == 0, err
    assert "created signing key" in err
    assert "events: signed checkpoint #0 at size 23" in out
    assert "access: signed checkpoint #0 at size 0" in out
    again = as_json(capsys, "audit", "checkpoint", "--db", db, "--tree", "events")
    assert again[0]["written"] is False and again[0]["seq"] == 0
    listed = as_json(capsys, "audit", "checkpoints", "--db", db)
    assert [(c["seq"], c["tree_size"]) for c in listed] == [(0, 23)]

    report = as_json(capsys, "audit", "verify", "--db", db)
    assert report["ok"] is True
    assert report["events"]["size"] == 23 and report["events"]["checkpoints"] == 1
    assert report["signatures"].startswith("checked with ")
    code, out, _ = run(capsys, "audit", "verify", "--db", db)
    assert code == 0 and "OK: the log and the access trail verify" in out


def test_verify_exits_3_and_names_the_first_bad_position(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    assert run(capsys, "audit", "checkpoint", "--db", db)[0] == 0
    store = open_store(db)
    try:
        with bypass(store) as conn:
            conn.execute(text("UPDATE events SET actor = 'mallory' WHERE position = 9"))
    finally:
        store.dispose()
    code, out, _ = run(capsys, "audit", "verify", "--db", db)
    assert code == 3
    assert "leaf-mismatch at 9" in out and "FAILED: first bad position 9" in out
    code, out, _ = run(capsys, "audit", "verify", "--db", db, "--json")
    assert code == 3 and json.loads(out)["first_bad_position"] == 9
    code, _, _err = run(capsys, "audit", "checkpoint", "--db", db)
    assert code == 0  # nothing new since the checkpoint: nothing to sign, nothing refused


def test_prove_and_verify_proof_offline(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    assert run(capsys, "audit", "checkpoint", "--db", db)[0] == 0
    pub = tmp_path / "log.pub"
    assert run(capsys, "audit", "public-key", "--db", db, "--out", str(pub))[0] == 0
    bundle = tmp_path / "proof.json"
    code, out, _ = run(capsys, "audit", "prove", "6", "--db", db, "--out", str(bundle))
    assert code == 0 and "at size 23" in out

    checked = as_json(capsys, "audit", "verify-proof", str(bundle), "--public-key", str(pub))
    assert checked["ok"] and checked["index"] == 6 and checked["entry"]["position"] == 6
    code, out, _ = run(capsys, "audit", "verify-proof", str(bundle), "--public-key", str(pub))
    assert code == 0 and out.startswith("OK: position 6 is in the log")

    forged = json.loads(bundle.read_text())
    forged["entry"] = forged["entry"].replace('"actor":"tester"', '"actor":"mallory"')
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    code, out, _ = run(
        capsys, "audit", "verify-proof", str(tmp_path / "forged.json"), "--public-key", str(pub)
    )
    assert code == 3 and "FAILED: the entry does not hash to leaf_hash" in out

    # A verifier that kept the first checkpoint accepts a later, consistent one.
    trusted = tmp_path / "trusted.note"
    trusted.write_text(json.loads(bundle.read_text())["checkpoint"])
    with registry.connect(db, project="test", actor="tester") as reg:
        reg.register_dataset("late", "1", uri="s3://late", digest="sha256:ff")
    assert run(capsys, "audit", "checkpoint", "--db", db)[0] == 0
    later = tmp_path / "later.json"
    assert (
        run(capsys, "audit", "prove", "6", "--db", db, "--since", "23", "--out", str(later))[0] == 0
    )
    checked = as_json(
        capsys,
        "audit",
        "verify-proof",
        str(later),
        "--public-key",
        str(pub),
        "--trusted",
        str(trusted),
    )
    assert checked["tree_size"] == 24 and checked["consistent_with_trusted_size"] == 23
    code, out, _ = run(capsys, "audit", "prove", "23", "--db", db, "--trail")
    assert code == 2


def test_bad_input_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    code, _, err = run(capsys, "audit", "prove", "3", "--db", db)
    assert code == 2 and "not covered by a signed checkpoint (no checkpoint yet)" in err
    code, _, err = run(capsys, "audit", "public-key", "--db", db)
    assert code == 2 and "no signing key at" in err
    code, _, err = run(
        capsys,
        "audit",
        "verify-proof",
        str(tmp_path / "none.json"),
        "--public-key",
        "x+00000000+AQ==",
    )
    assert code == 2 and "public key" in err
    assert run(capsys, "audit", "checkpoint", "--db", db)[0] == 0
    code, _, err = run(capsys, "audit", "prove", "999", "--db", db)
    assert code == 2 and "no position 999" in err
    with pytest.raises(SystemExit):
        main(["audit", "prove", "-1", "--db", db])


def test_the_console_script_runs_audit_verify(db: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLLEDGER_")}
    env["MLLEDGER_KEY_FILE"] = str(tmp_path / "keys" / "master.key")
    env["MLLEDGER_SIGNING_KEY"] = str(tmp_path / "keys" / "signing.key")
    for argv in (["checkpoint"], ["verify"]):
        done = mlledger_process("audit", *argv, "--db", db, env=env)
        assert done.returncode == 0, done.stderr
    assert "OK: the log and the access trail verify" in done.stdout
