"""The signing key outside the CLI: the SDK and HTTP erasures check the log's signing key
before anything is erased, and ``mlledger audit verify`` reports a key file it may not
use as a one-line error (exit 2), not a traceback.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import registry
from audit.checkpoints import create_signing_key
from audit.erasure import pending_erasures
from audit.note import SigningKey
from registry.assembly import open_ledger
from registry.errors import ConfigError
from registry.sdk import Registry
from registry.settings import default_signing_key_file
from tests.support.apiserver import ApiServer
from tests.support.helpers import mlledger_process, signed_log


def plant(reg: Registry) -> None:
    """Two subjects' records in one dataset version: something to erase."""
    reg.register_dataset(
        "raw", "1", uri="s3://b/raw", digest="sha256:01",
        records=["r-1", "r-2", "r-3"], subjects=["ann", "bob", "ann"],
    )  # fmt: skip
    reg.store_subject_data("ann", {"email": "ann@example.com"})


def last_type(url: str) -> tuple[int, str | None]:
    """The log's head and the type of its last event."""
    ledger = open_ledger(url)
    try:
        last = ledger.last_event()
        return ledger.head(), None if last is None else last.type
    finally:
        ledger.close()


# --- the SDK ---------------------------------------------------------------------------------


def test_the_sdk_refuses_to_erase_without_the_key_that_signed_the_log(
    store_url: str, tmp_path: Path
) -> None:
    key = signed_log(store_url, plant)
    key_file = default_signing_key_file(store_url)
    aside = tmp_path / "aside.key"
    os.replace(key_file, aside)
    before = last_type(store_url)
    assert before[1] == "subject-data-stored"
    expected = f"{key.name} (key ID {key.key_id:08x})"

    with registry.connect(store_url, project="test", actor="tester") as reg:
        with pytest.raises(ConfigError) as caught:
            reg.erase("ann")
        message = str(caught.value)
        assert f"no signing key at {key_file}" in message and expected in message
        # A dry run signs nothing: it still plans.
        assert reg.erase("ann", dry_run=True)["status"] == "planned"

        # Another key at that path is refused too.
        other_file = tmp_path / "other" / "signing.key"
        create_signing_key(f"sqlite:///{tmp_path}/other/ledger.db", other_file)
        os.replace(other_file, key_file)
        with pytest.raises(ConfigError, match="refusing to sign with a key that cannot extend"):
            reg.erase("ann")

        assert last_type(store_url) == before  # no subject-erasure-requested
        assert pending_erasures(reg.ledger, "test") == []
        assert reg.footprint("ann")["records"] and reg.subject_data("ann")

        # With its key back, the same call erases and signs with it.
        os.replace(aside, key_file)
        outcome = reg.erase("ann")
    assert outcome["status"] == "erased" and key.name in outcome["checkpoint"]["note"]
    assert last_type(store_url) == (before[0] + 2, "subject-erased")


# --- HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    yield from ApiServer(tmp_path, env={"MLLEDGER_CHECKPOINT_EVERY": "0"}).serving()


def test_an_erasure_over_http_is_refused_without_the_signing_key(
    server: ApiServer, tmp_path: Path
) -> None:
    writer = server.key("test", "writer")
    with registry.connect(server.url, project="test", actor="etl", api_key=writer) as reg:
        plant(reg)
    dpo = server.key("test", "dpo", "privacy office")
    key_file = Path(server.env["MLLEDGER_SIGNING_KEY"])
    with registry.connect(server.url, project="test", api_key=dpo) as reg:
        assert reg.erase("bob")["status"] == "erased"  # makes the key, signs a checkpoint
        assert key_file.exists()
        os.replace(key_file, tmp_path / "aside.key")
        before = last_type(server.db)
        assert before[1] == "subject-erased"

        with pytest.raises(ConfigError, match=f"no signing key at {key_file}"):
            reg.erase("ann")
        assert last_type(server.db) == before
        assert reg.footprint("ann")["records"]

        os.replace(tmp_path / "aside.key", key_file)
        assert reg.erase("ann")["status"] == "erased"


# --- mlledger audit verify -------------------------------------------------------------------


def mlledger(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return mlledger_process(*argv, env=env)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_verify_reports_a_signing_key_readable_by_others_as_an_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/ledger.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLLEDGER_")}
    env["MLLEDGER_KEY_FILE"] = str(tmp_path / "master.key")
    env.pop("MLLEDGER_SIGNING_KEY", None)  # the default: signing.key beside the database
    with registry.connect(db, project="test", actor="tester") as reg:
        plant(reg)
    done = mlledger(env, "audit", "checkpoint", "--db", db)
    assert done.returncode == 0, done.stderr
    key_file = tmp_path / "signing.key"
    public = SigningKey.load(key_file).verifier().to_string()
    key_file.chmod(0o644)

    done = mlledger(env, "audit", "verify", "--db", db)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("mlledger audit verify: error: ")
    assert f"signer key file {key_file} is accessible by group or others (mode 0644)" in line
    assert f"chmod 600 {key_file}" in line and "--public-key" in line

    # The commands that sign report it the same way.
    for argv in (["audit", "checkpoint"], ["audit", "public-key"]):
        done = mlledger(env, *argv, "--db", db)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "(mode 0644)" in done.stderr

    # With the verifier key given, the local key file is not read.
    done = mlledger(env, "audit", "verify", "--db", db, "--public-key", public)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: the log and the access trail verify" in done.stdout
