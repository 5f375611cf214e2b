"""Key files and database files: where they are, who may read them, and the refusals
that keep a log signed by one key.

- The default key files live in the ledger's key directory (beside a SQLite file, a
  per-database directory under ``$XDG_CONFIG_HOME/mlledger`` for PostgreSQL), never
  in the working directory; a relative setting is taken inside that directory.
- A command about to sign refuses a missing key while checkpoints exist, and a key
  other than the one that signed them; ``mlledger serve`` exits instead of serving.
- Key files are created 0600 and refused when group or others may read them; a
  SQLite database, its WAL and shared-memory files are created 0600 in 0700
  directories.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import registry
from audit.checkpoints import (
    Checkpointer,
    create_signing_key,
    load_signing_key,
)
from audit.note import SigningKey
from registry.assembly import open_ledger
from registry.errors import ConfigError
from registry.sdk import Registry
from registry.settings import default_key_file, default_signing_key_file, key_directory
from registry.vault import KeyRing
from tests.support.helpers import head_of, mlledger_process, run_cli, signed_log
from tests.support.throwaway import free_port


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def default_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No key setting: the defaults apply. The PostgreSQL key directory goes under the
    test's own ``XDG_CONFIG_HOME``; returns that directory."""
    config = tmp_path / "config"
    monkeypatch.delenv("MLLEDGER_KEY_FILE", raising=False)
    monkeypatch.delenv("MLLEDGER_SIGNING_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


@pytest.fixture
def elsewhere(tmp_path: Path) -> Callable[[str], Path]:
    """A function making a fresh working directory of that name."""

    def make(name: str) -> Path:
        directory = tmp_path / "cwd" / name
        directory.mkdir(parents=True)
        return directory

    return make


def plant(reg: Registry) -> None:
    """Two subjects' records in one dataset version: something to erase."""
    reg.register_dataset(
        "raw", "1", uri="s3://b/raw", digest="sha256:01",
        records=["r-1", "r-2", "r-3"], subjects=["ann", "bob", "ann"],
    )  # fmt: skip
    last = reg.ledger.last_event()
    assert last is not None and last.type == "dataset-records-added"


# --- where the keys are ----------------------------------------------------------------------


def test_sqlite_keys_are_beside_the_database_from_any_working_directory(
    tmp_path: Path,
    default_keys: Path,
    elsewhere: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"sqlite:///{tmp_path}/data/ledger.db"
    seen = []
    for name in ("a", "b"):
        monkeypatch.chdir(elsewhere(name))
        seen.append((default_key_file(url), default_signing_key_file(url), key_directory(url)))
    assert seen[0] == seen[1]
    assert seen[0] == (
        tmp_path / "data" / "master.key",
        tmp_path / "data" / "signing.key",
        tmp_path / "data",
    )


@pytest.mark.postgres
def test_postgres_keys_have_a_directory_per_database_under_the_config_home(
    pg_server: object, default_keys: Path, elsewhere: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    first = "postgresql://ledger@db.example:6543/fraud"
    second = "postgresql+psycopg://ledger@db.example:6543/churn"
    monkeypatch.chdir(elsewhere("a"))
    directory = key_directory(first)
    assert directory == default_keys / "mlledger" / "postgresql" / "db.example-6543-fraud"
    assert key_directory(second) == default_keys / "mlledger" / "postgresql" / (
        "db.example-6543-churn"
    )
    assert key_directory("postgresql:///fraud?host=/run/postgresql") == (
        default_keys / "mlledger" / "postgresql" / "_run_postgresql-5432-fraud"
    )
    monkeypatch.chdir(elsewhere("b"))
    assert default_signing_key_file(first) == directory / "signing.key"
    assert default_key_file(first) == directory / "master.key"

    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(default_keys.parent / "home"))
    assert key_directory(first) == (
        default_keys.parent / "home" / ".config" / "mlledger" / "postgresql"
        / "db.example-6543-fraud"
    )  # fmt: skip


def test_relative_settings_are_taken_inside_the_key_directory(
    tmp_path: Path, elsewhere: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/data/ledger.db"
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", "keys/log.key")
    monkeypatch.setenv("MLLEDGER_KEY_FILE", "keys/vault.key")
    monkeypatch.chdir(elsewhere("a"))
    assert default_signing_key_file(url) == tmp_path / "data" / "keys" / "log.key"
    assert default_key_file(url) == tmp_path / "data" / "keys" / "vault.key"
    # An explicit path given to the loader follows the same rule.
    with pytest.raises(ConfigError, match=f"no signing key at {tmp_path}/data/other.key"):
        load_signing_key(url, "other.key")
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", str(tmp_path / "abs.key"))
    assert default_signing_key_file(url) == tmp_path / "abs.key"


def test_erase_and_verify_from_another_directory_use_the_same_key(
    store_url: str,
    default_keys: Path,
    elsewhere: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = elsewhere("first"), elsewhere("second")
    monkeypatch.chdir(first)
    with registry.connect(store_url, project="test", actor="tester") as reg:
        plant(reg)
    code, _, err = run_cli(capsys, "audit", "checkpoint", "--db", store_url)
    assert code == 0 and "created signing key" in err
    key_file = default_signing_key_file(store_url)
    key = SigningKey.load(key_file)

    monkeypatch.chdir(second)
    certificate = second / "ann.json"
    code, out, err = run_cli(
        capsys, "erase", "ann", "--db", store_url, "--project", "test",
        "--certificate", str(certificate), "--json",
    )  # fmt: skip
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["status"] == "erased" and outcome["certificate"] == str(certificate)
    assert key.name in outcome["checkpoint"]["note"]
    envelope = json.loads(certificate.read_text())
    assert envelope["signatures"][0]["keyid"]
    ledger = open_ledger(store_url)
    try:
        last = ledger.last_event()
        assert last is not None and last.type == "subject-erased"
    finally:
        ledger.close()

    code, out, err = run_cli(capsys, "audit", "verify", "--db", store_url, "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and report["signatures"].startswith("checked with ")
    assert SigningKey.load(key_file) == key
    # Nothing was made where the commands ran.
    assert not any(first.rglob("*.key")) and not any(second.rglob("*.key"))


# --- refusing to sign with another key ----------------------------------------------------------


def test_a_missing_key_is_not_replaced_while_checkpoints_exist(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    key = signed_log(store_url, plant)
    missing = tmp_path / "moved" / "signing.key"
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", str(missing))
    expected = f"{key.name} (key ID {key.key_id:08x})"
    before = head_of(store_url)

    with pytest.raises(ConfigError) as caught:
        load_signing_key(store_url, create=True)
    message = str(caught.value)
    assert f"no signing key at {missing}" in message and expected in message
    assert "refusing to create a new key" in message and "MLLEDGER_SIGNING_KEY" in message

    code, _, err = run_cli(capsys, "erase", "ann", "--db", store_url, "--project", "test")
    assert code == 2 and expected in err and str(missing) in err
    code, _, err = run_cli(capsys, "audit", "checkpoint", "--db", store_url)
    assert code == 2 and expected in err
    code, _, err = run_cli(capsys, "audit", "keygen", "--db", store_url)
    assert code == 2 and "refusing to create a new key" in err
    with pytest.raises(ConfigError, match="refusing to create a new key"):
        create_signing_key(store_url, tmp_path / "fresh.key")

    assert not missing.exists() and not (tmp_path / "fresh.key").exists()
    assert head_of(store_url) == before  # the erase was refused before erasing anything
    with registry.connect(store_url, project="test", actor="tester") as reg:
        assert reg.footprint("ann")["records"], "ann was erased although the key was missing"


def test_a_key_other_than_the_signer_is_refused(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    key = signed_log(store_url, plant)
    other_file = tmp_path / "other.key"
    other, _ = create_signing_key(f"sqlite:///{tmp_path}/empty/ledger.db", other_file)
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", str(other_file))
    before = head_of(store_url)

    with pytest.raises(ConfigError) as caught:
        load_signing_key(store_url, create=True)
    message = str(caught.value)
    assert f"the signing key at {other_file} is {other.name} (key ID {other.key_id:08x})" in (
        message
    )
    assert f"was signed by {key.name} (key ID {key.key_id:08x})" in message

    code, _, err = run_cli(capsys, "erase", "ann", "--db", store_url, "--project", "test")
    assert code == 2 and key.name in err and str(other_file) in err
    assert head_of(store_url) == before
    # Loading it for anything but signing (its public key) still works.
    assert load_signing_key(store_url)[0] == other


def serve(store_url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``mlledger serve`` in a process of its own; it must exit by itself."""
    return mlledger_process("serve", "--db", store_url, "--port", str(free_port()), env=env)


def test_a_server_without_the_signing_key_refuses_to_start(
    store_url: str, tmp_path: Path, isolated_env: Path
) -> None:
    key = signed_log(store_url, plant)
    missing = tmp_path / "elsewhere" / "signing.key"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLLEDGER_")}
    env["MLLEDGER_KEY_FILE"] = str(isolated_env)
    env["MLLEDGER_SIGNING_KEY"] = str(missing)

    done = serve(store_url, env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("mlledger serve: error: no signing key at")
    assert f"{key.name} (key ID {key.key_id:08x})" in done.stderr
    assert str(missing) in done.stderr and "Traceback" not in done.stderr
    assert not missing.exists()

    wrong = tmp_path / "wrong" / "signing.key"
    SigningKey.generate("wrong.example/mlledger").save(wrong)
    env["MLLEDGER_SIGNING_KEY"] = str(wrong)
    done = serve(store_url, env)
    assert done.returncode == 2, done.stderr
    assert "wrong.example/mlledger" in done.stderr and key.name in done.stderr


def test_the_app_itself_refuses_to_start_without_the_signing_key(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from registry.api.app import create_app

    key = signed_log(store_url, plant)
    monkeypatch.setenv("MLLEDGER_SIGNING_KEY", str(tmp_path / "gone.key"))
    expected = f"{key.name} \\(key ID {key.key_id:08x}\\)"
    with pytest.raises(ConfigError, match=expected), TestClient(create_app(store_url)):
        pass
    assert not (tmp_path / "gone.key").exists()


def test_a_checkpointer_says_a_lasting_failure_once(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signed_log(store_url, plant)
    wrong = SigningKey.generate("wrong.example/mlledger")
    with registry.connect(store_url, project="test", actor="tester") as reg:
        reg.register_dataset("more", "1", uri="s3://b/more", digest="sha256:02")
        last = reg.ledger.last_event()
        assert last is not None and last.type == "dataset-version-registered"
        checkpointer = Checkpointer(reg.ledger.store, wrong, every=1, seconds=0.01, poll=0.01)
        with caplog.at_level(logging.ERROR, logger="mlledger.checkpoints"):
            checkpointer.start()
            time.sleep(1.0)
            checkpointer.stop()
    failures = [r for r in caplog.records if r.getMessage().startswith("checkpoint failed")]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "does not verify with the signing key wrong.example/mlledger" in (
        failures[0].getMessage()
    )


# --- the master key -----------------------------------------------------------------------------


def test_a_master_key_readable_by_others_is_refused(tmp_path: Path, isolated_env: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with registry.connect(url, project="test", actor="tester") as reg:
        plant(reg)
    assert mode(isolated_env) == 0o600
    for loose in (0o644, 0o640, 0o604):
        isolated_env.chmod(loose)
        with pytest.raises(ConfigError) as caught:
            open_ledger(url)
        assert f"mode {loose:04o}" in str(caught.value)
        assert f"run `chmod 600 {isolated_env}`" in str(caught.value)
    isolated_env.chmod(0o600)
    assert KeyRing.load(url) is not None


def test_a_signing_key_readable_by_others_is_refused(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_log(store_url, plant)
    key_file = default_signing_key_file(store_url)
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match=f"mode 0644.*chmod 600 {key_file}"):
        load_signing_key(store_url, create=True)
    assert key_file.read_text().startswith("PRIVATE+KEY+")  # not replaced


def test_an_empty_master_key_file_is_a_clear_error(tmp_path: Path, isolated_env: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    isolated_env.parent.mkdir(mode=0o700)
    isolated_env.touch(mode=0o600)
    with pytest.raises(ConfigError, match=f"master key file {isolated_env} is empty"):
        KeyRing.load(url)


def test_a_missing_master_key_is_not_replaced_while_secrets_are_wrapped(
    store_url: str, isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registry.connect(store_url, project="test", actor="tester") as reg:
        plant(reg)
    missing = tmp_path / "moved" / "master.key"
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(missing))
    before = head_of(store_url)  # the log reads without the master key
    with registry.connect(store_url, project="test", actor="tester") as reg:
        for use in (
            lambda: reg.footprint("ann"),
            lambda: reg.register_dataset("more", "1", uri="s3://m", digest="sha256:02",
                                         records=["r-9"], subjects=["cid"]),
        ):  # fmt: skip
            with pytest.raises(ConfigError) as caught:
                use()
            message = str(caught.value)
            assert f"no master key at {missing}" in message and "1 project secret(s)" in message
            assert "refusing to create a new master key" in message
    assert not missing.exists()
    assert head_of(store_url) == before  # the refused write appended nothing
    # The key back where it is looked for: everything works again.
    monkeypatch.setenv("MLLEDGER_KEY_FILE", str(isolated_env))
    with registry.connect(store_url, project="test", actor="tester") as reg:
        assert reg.footprint("ann")["records"]


def test_key_files_are_created_private_in_private_directories(
    store_url: str, default_keys: Path
) -> None:
    with registry.connect(store_url, project="test", actor="tester") as reg:
        plant(reg)
        _, path, created = load_signing_key(store_url, create=True)
        assert created and path == default_signing_key_file(store_url)
    master = default_key_file(store_url)
    assert mode(master) == 0o600 and mode(path) == 0o600
    assert base64.b64decode(master.read_text().strip(), validate=True).__len__() == 32
    if store_url.startswith("postgresql"):
        # Every directory made for the key directory is private; the test's own is not ours.
        made = path.parent
        while made != default_keys.parent:
            assert mode(made) == 0o700, made
            made = made.parent
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files


# --- database files -------------------------------------------------------------------------------


def test_a_new_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    top = tmp_path / "new"
    db = top / "deeper" / "ledger.db"
    with registry.connect(f"sqlite:///{db}", project="test", actor="tester") as reg:
        dataset = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:00")
        last = reg.ledger.last_event()
        assert last is not None and last.type == "dataset-version-registered"
        assert last.entity == dataset.id
        assert mode(top) == 0o700 and mode(db.parent) == 0o700
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
            assert mode(db.parent / name) == 0o600, name


def test_the_default_database_directory_is_private(
    tmp_path: Path, elsewhere: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLLEDGER_KEY_FILE")
    monkeypatch.delenv("MLLEDGER_SIGNING_KEY")
    work = elsewhere("work")
    monkeypatch.chdir(work)
    with registry.connect(project="test", actor="tester") as reg:
        reg.register_dataset("d", "1", uri="s3://d", digest="sha256:00")
        assert reg.ledger.last_event().type == "dataset-version-registered"  # type: ignore[union-attr]
    home = work / ".mlledger"
    assert mode(home) == 0o700
    assert mode(home / "ledger.db") == 0o600 and mode(home / "master.key") == 0o600


def test_existing_directories_and_files_keep_their_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)
    with registry.connect(f"sqlite:///{shared}/ledger.db", project="test", actor="tester") as reg:
        reg.register_dataset("d", "1", uri="s3://d", digest="sha256:00")
        assert reg.ledger.last_event().type == "dataset-version-registered"  # type: ignore[union-attr]
    assert mode(shared) == 0o750 and mode(shared / "ledger.db") == 0o600

    loose = tmp_path / "loose.db"
    loose.touch(mode=0o640)
    loose.chmod(0o640)
    with registry.connect(f"sqlite:///{loose}", project="test", actor="tester") as reg:
        reg.register_dataset("d", "1", uri="s3://d", digest="sha256:00")
        assert reg.ledger.last_event().type == "dataset-version-registered"  # type: ignore[union-attr]
    assert mode(loose) == 0o640  # the owner's choice, not changed


def test_peek_creates_no_database(tmp_path: Path) -> None:
    from registry.store import peek

    with peek(f"sqlite:///{tmp_path}/none.db", "checkpoints") as conn:
        assert conn is None
    assert not (tmp_path / "none.db").exists()


def test_the_master_key_is_durable_before_it_is_used(
    tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The master key is fsynced, then its directory entry, before the first secret is
    wrapped with it: a crash cannot leave an empty key beside wrapped secrets."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with registry.connect(str(tmp_path / "ledger.db"), project="p", actor="t") as reg:
        reg.register_dataset("d", "1", uri="s3://d", digest="sha256:01", records=["r1"])
        event = reg.ledger.last_event()
    assert event is not None and event.type == "dataset-records-added"
    key = str(isolated_env)
    file_synced = [i for i, p in enumerate(synced) if p.startswith(f"{isolated_env.parent}/.")]
    assert file_synced, synced  # the temporary file, before it was linked as the key
    assert str(isolated_env.parent) in synced[file_synced[0] + 1 :], synced  # then the directory
    assert Path(key).read_bytes().strip(), "the key file is complete"
