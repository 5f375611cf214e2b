"""Export directories and their signed manifests (``audit.exports``).

Each format is exported for real; the manifest is checked offline with the public
key alone, through the library and the CLI, and every kind of tampering is named:
a changed, missing or extra file, a re-signed or foreign manifest, a checkpoint that
does not match. A failed export leaves nothing behind.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from audit.dsse import sign_envelope
from audit.exports import (
    FORMATS,
    MANIFEST,
    PREDICATE_TYPE,
    ExportError,
    export,
    verify_export,
)
from audit.note import SigningKey
from registry.errors import LedgerError
from registry.sdk import Registry
from tests.support.helpers import signing_key as _key
from tests.support.worlds import build_world

CLI = [sys.executable, "-m", "registry.cli"]


def _statement(directory: Path) -> dict[str, Any]:
    envelope = json.loads((directory / MANIFEST).read_text())
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def _exported(reg: Registry, out: Path, fmt: str) -> SigningKey:
    """Export ``build_world``'s log in ``fmt`` to ``out``; return the signing key."""
    build_world(reg)
    reg.flush()
    key = _key(reg)
    export(reg.ledger, fmt, out, key)
    return key


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_exports_with_a_manifest_that_verifies(
    reg: Registry, tmp_path: Path, fmt: str
) -> None:
    build_world(reg)
    reg.flush()
    key = _key(reg)
    head = reg.ledger.store.max_position
    with reg.ledger.store.read() as conn:
        size = head(conn) + 1
    done = export(reg.ledger, fmt, tmp_path / "out", key, project="test")
    out = tmp_path / "out"
    assert done.directory == out and done.checkpoint["tree_size"] == size
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert MANIFEST in names and len(names) >= 2
    statement = _statement(out)
    assert statement["predicateType"] == PREDICATE_TYPE
    predicate = statement["predicate"]
    assert predicate["format"] == fmt
    assert predicate["parameters"] == {
        "project": "test",
        "since": None,
        "until": None,
        "upto": size,
    }
    listed = {f["path"]: f for f in predicate["files"]}
    assert sorted(listed) == [n for n in names if n != MANIFEST]
    for name, entry in listed.items():
        assert entry["size"] == (out / name).stat().st_size
    assert {s["name"] for s in statement["subject"]} == set(listed)

    check = verify_export(out, key.verifier())
    assert check.ok, check.summary()
    assert check.checkpoint["tree_size"] == size and check.format == fmt
    assert check.summary().startswith("ok: ")
    # Exporting signs the checkpoint it reflects: it is stored like any other.
    with reg.ledger.store.read() as conn:
        stored = conn.exec_driver_sql(
            "SELECT note FROM checkpoints WHERE tree = 'events' ORDER BY seq DESC LIMIT 1"
        ).scalar()
    assert stored == done.checkpoint["note"]


def test_tampering_is_named_file_by_file(reg: Registry, tmp_path: Path) -> None:
    out = tmp_path / "out"
    key = _exported(reg, out, "parquet")
    files = sorted(f["path"] for f in _statement(out)["predicate"]["files"])
    changed, removed, same_size = files[0], files[1], files[2]
    with (out / changed).open("ab") as handle:
        handle.write(b"\0")
    (out / removed).unlink()
    data = bytearray((out / same_size).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / same_size).write_bytes(bytes(data))
    (out / "notes.txt").write_text("added later")
    (out / "sub").mkdir()
    (out / "sub" / "more.parquet").write_bytes(b"PAR1")

    check = verify_export(out, key.verifier())
    assert not check.ok
    assert {c["path"] for c in check.changed} == {changed, same_size}
    reasons = {c["path"]: c["reason"] for c in check.changed}
    assert reasons[changed].startswith("size ") and reasons[same_size].startswith("SHA-256")
    assert check.missing == [removed]
    assert check.extra == ["notes.txt", "sub/more.parquet"]
    summary = check.summary()
    for name in (changed, removed, same_size, "notes.txt", "sub/more.parquet"):
        assert name in summary


def test_a_manifest_that_cannot_be_believed_is_refused(reg: Registry, tmp_path: Path) -> None:
    out = tmp_path / "out"
    key = _exported(reg, out, "prov")
    envelope = json.loads((out / MANIFEST).read_text())
    statement = _statement(out)

    other = SigningKey.generate("other.example/mlledger")
    with pytest.raises(ExportError, match="signature does not verify"):
        verify_export(out, other.verifier())

    # A file changed and the manifest's digest edited to match: the signature breaks.
    statement["predicate"]["files"][0]["size"] += 1
    forged = dict(envelope, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    (out / MANIFEST).write_text(json.dumps(forged))
    with pytest.raises(ExportError, match="signature does not verify"):
        verify_export(out, key.verifier())

    # Signed by the right key, but the checkpoint is not the size the export claims.
    statement = _statement_of(envelope)
    statement["predicate"]["parameters"]["upto"] += 1
    (out / MANIFEST).write_text(json.dumps(sign_envelope(key, statement)))
    with pytest.raises(ExportError, match="checkpoint is at size"):
        verify_export(out, key.verifier())

    # Subjects and files must agree.
    statement = _statement_of(envelope)
    statement["subject"] = statement["subject"][1:]
    (out / MANIFEST).write_text(json.dumps(sign_envelope(key, statement)))
    with pytest.raises(ExportError, match=r"subjects and predicate\.files disagree"):
        verify_export(out, key.verifier())

    statement = _statement_of(envelope)
    statement["predicate"]["files"][0]["path"] = "../escape"
    (out / MANIFEST).write_text(json.dumps(sign_envelope(key, statement)))
    with pytest.raises(ExportError, match="not a relative path"):
        verify_export(out, key.verifier())

    (out / MANIFEST).unlink()
    with pytest.raises(ExportError, match="missing: not an export directory"):
        verify_export(out, key.verifier())


def _statement_of(envelope: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def test_bad_requests_and_failed_exports_leave_nothing(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_world(reg)
    reg.flush()
    key = _key(reg)
    base = tmp_path / "exports"
    busy = base / "busy"
    busy.mkdir(parents=True)
    (busy / "x").write_text("x")

    def checkpoints() -> int:
        with reg.ledger.store.read() as conn:
            return int(conn.exec_driver_sql("SELECT COUNT(*) FROM checkpoints").scalar() or 0)

    signed = checkpoints()
    with pytest.raises(LedgerError, match="not empty"):
        export(reg.ledger, "parquet", busy, key)
    with pytest.raises(LedgerError, match="is a file"):
        export(reg.ledger, "parquet", busy / "x", key)
    with pytest.raises(LedgerError, match="not known: expected one of parquet"):
        export(reg.ledger, "csv", base / "csv", key)
    with pytest.raises(LedgerError, match="not a time"):
        export(reg.ledger, "parquet", base / "t", key, since="yesterday")
    with pytest.raises(LedgerError, match="not after --since"):
        export(reg.ledger, "parquet", base / "t", key, since="2026-02-01", until="2026-01-01")
    with pytest.raises(LedgerError, match="project"):
        export(reg.ledger, "parquet", base / "t", key, project="no/such")
    assert checkpoints() == signed  # refused before anything was signed

    from audit.exports import parquet

    real = parquet.write

    def failing(store: Any, out: Path, scope: Any, progress: Any = None) -> Any:
        real(store, out, scope, progress)
        raise OSError("disk full")

    monkeypatch.setattr(parquet, "write", failing)
    with pytest.raises(OSError, match="disk full"):
        export(reg.ledger, "parquet", base / "half", key)
    assert sorted(p.name for p in base.iterdir()) == ["busy"]


def test_cli_exports_and_verifies_offline(reg: Registry, tmp_path: Path, store_url: str) -> None:
    build_world(reg)
    reg.close()
    env = {**os.environ, "MLLEDGER_DB": store_url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args], capture_output=True, text=True, env=env, timeout=300, check=False
        )

    out = tmp_path / "export"
    done = cli("export", "--format", "parquet", "--out", str(out), "--project", "test", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["format"] == "parquet" and summary["rows"] > 0
    assert "exporting" in done.stderr  # the progress bar
    key = tmp_path / "log.pub"
    assert cli("audit", "public-key", "--out", str(key)).returncode == 0

    ok = cli("export", "verify", str(out), "--public-key", str(key))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: parquet export")

    (out / "events.parquet").write_bytes(b"PAR1 not the same")
    (out / "extra.csv").write_text("a,b\n")
    (out / "runs.parquet").unlink()
    bad = cli("export", "verify", str(out), "--public-key", str(key), "--json")
    assert bad.returncode == 3, bad.stderr
    found = json.loads(bad.stdout)
    assert found["ok"] is False
    assert [c["path"] for c in found["changed"]] == ["events.parquet"]
    assert found["missing"] == ["runs.parquet"] and found["extra"] == ["extra.csv"]

    usage = cli("export", "--format", "parquet")
    assert usage.returncode == 2 and "--out DIR" in usage.stderr
    usage = cli("export", "verify", str(out))
    assert usage.returncode == 2 and "--public-key" in usage.stderr
    usage = cli("export", "check", str(out))
    assert usage.returncode == 2 and "expected `export verify DIR`" in usage.stderr
    usage = cli("export", "--format", "parquet", "--out", str(out))
    assert usage.returncode == 2 and "not empty" in usage.stderr
