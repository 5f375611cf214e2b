"""A database that holds no ledger is created only by the commands meant to create one.

A mistyped ``--db`` used to create directories, an empty database and a new master
key, and then answer from that empty ledger ("the deployment does not exist").
Commands that read refuse instead, saying the database does not exist, and leave no
trace; ``mlledger init``, ``demo`` and first writes (``keys create``, ``grants add``)
create it, and ``serve`` creates it saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

import registry
from registry.errors import NoLedger
from tests.support.apiserver import ApiServer
from tests.support.pgserver import PostgresServer

CLI = [sys.executable, "-m", "registry.cli"]

# Every command that only reads (or changes what exists), with its arguments.
READERS = [
    ["history", "credit-api"],
    ["scored", "r1"],
    ["trained-on", "m@1"],
    ["downstream", "d@1"],
    ["lineage", "dataset:default/d@1"],
    ["footprint", "s1"],
    ["aliases", "m"],
    ["log"],
    ["rebuild"],
    ["access-trail"],
    ["erase", "s1", "--dry-run"],
    ["keys", "list"],
    ["keys", "revoke", "k1", "--project", "p"],
    ["grants", "list", "--project", "p"],
    ["grants", "revoke", "other", "--project", "p"],
    ["audit", "verify"],
    ["audit", "checkpoint"],
    ["report", "model", "m@1", "--out", "report"],
    ["export", "--format", "parquet", "--out", "export"],
]


def mlledger(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLLEDGER_")}
    env["XDG_CONFIG_HOME"] = str(cwd / "config")
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120, check=False
    )


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c[:2]))
def test_a_reader_on_a_missing_database_says_so_and_creates_nothing(
    command: list[str], tmp_path: Path
) -> None:
    before = tree(tmp_path)
    missing = tmp_path / "typo" / "ledger.db"
    done = mlledger(tmp_path, *command, "--db", str(missing))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"the database file {missing} does not exist" in lines[0]
    assert "mlledger init" in lines[0]
    assert tree(tmp_path) == before  # no directory, database or key file


def test_init_creates_once_and_readers_then_work(tmp_path: Path) -> None:
    db = tmp_path / "new" / "ledger.db"
    made = mlledger(tmp_path, "init", "--db", str(db))
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"created a new, empty ledger at {db}")
    assert db.exists()
    again = mlledger(tmp_path, "init", "--db", str(db), "--json")
    assert again.returncode == 0, again.stderr
    assert '"created": false' in again.stdout and '"events": 0' in again.stdout
    listed = mlledger(tmp_path, "log", "--db", str(db))
    assert (listed.returncode, listed.stdout.strip()) == (0, "(no events)")
    # init writes no event: an empty ledger stays empty.
    with registry.connect(str(db), project="p", actor="t", create=False) as reg:
        assert reg.ledger.head() == -1


def test_a_directory_is_not_taken_for_a_database(tmp_path: Path) -> None:
    for command in (["log"], ["init"]):
        done = mlledger(tmp_path, *command, "--db", str(tmp_path))
        assert done.returncode == 2, done.stderr
        assert f"the database {tmp_path} is a directory; expected a SQLite file" in done.stderr


def test_an_empty_file_is_not_taken_for_a_ledger(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    done = mlledger(tmp_path, "log", "--db", str(empty))
    assert done.returncode == 2
    assert f"the database file {empty} holds no ledger" in done.stderr
    assert empty.stat().st_size == 0


def test_first_writes_create_the_ledger(tmp_path: Path) -> None:
    keys = tmp_path / "keys.db"
    wrong = mlledger(tmp_path, "keys", "create", "--project", "p", "--role", "reader", "--db",
                     str(keys))  # fmt: skip
    assert wrong.returncode == 2 and "role 'reader' is not a role" in wrong.stderr
    assert not keys.exists()  # refused before anything was created
    made = mlledger(tmp_path, "keys", "create", "--project", "p", "--role", "viewer", "--db",
                    str(keys))  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert keys.exists()
    grants = tmp_path / "grants.db"
    granted = mlledger(tmp_path, "grants", "add", "other", "--project", "p", "--db", str(grants))
    assert granted.returncode == 0, granted.stderr
    with registry.connect(str(grants), project="p", actor="t", create=False) as reg:
        event = reg.ledger.last_event()
    assert event is not None and event.type == "project-access-granted"
    assert (event.project, event.entity, event.body["grantee"]) == ("p", "project:p", "other")


def test_the_sdk_creates_unless_told_not_to(tmp_path: Path, isolated_env: Path) -> None:
    db = tmp_path / "sdk" / "ledger.db"
    with pytest.raises(NoLedger, match="does not exist"):
        registry.connect(str(db), project="p", create=False)
    assert not db.parent.exists()
    with registry.connect(str(db), project="p", actor="t") as reg:
        data = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:01")
        event = reg.ledger.last_event()
    assert event is not None and (event.type, event.entity) == (
        "dataset-version-registered",
        data.id,
    )


@pytest.mark.postgres
def test_a_postgresql_database_without_the_log_is_not_migrated_by_a_reader(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    url = pg_server.create_database()
    try:
        done = mlledger(tmp_path, "history", "credit-api", "--db", url)
        assert done.returncode == 2, done.stderr
        assert "holds no ledger" in done.stderr
        assert "password" not in done.stderr.lower() or ":***@" in done.stderr
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            with engine.connect() as conn:
                assert inspect(conn).get_table_names() == []
        finally:
            engine.dispose()
        made = mlledger(tmp_path, "init", "--db", url)
        assert made.returncode == 0, made.stderr
        assert "created a new, empty ledger" in made.stdout
        assert mlledger(tmp_path, "history", "credit-api", "--db", url).returncode == 2
    finally:
        pg_server.drop_database(url.rsplit("/", 1)[1])


def test_serve_creates_a_ledger_saying_so_and_only_once(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "served").start()
    try:
        said = server.log.read_text()
        assert "mlledger serve: no ledger was at " in said and "created a new, empty one" in said
        # said before the signing key was made beside it
        assert said.index("created a new, empty one") < said.index("created signing key")
    finally:
        server.stop()
    again = ApiServer(tmp_path / "served", db=server.db).start()
    try:
        assert again.log.read_text().count("created a new, empty one") == 1
    finally:
        again.stop()
