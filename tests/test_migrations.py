"""Alembic migrations and the table definitions agree, on SQLite and PostgreSQL.

The migrations own the real schema; ``registry/store/schema.py`` describes it
for queries. Autogenerate's comparison must find nothing between a freshly
migrated database and those definitions; the head revision must be the one
the store expects; migrating twice, or from the ``alembic`` command line, must
work; and the triggers that make the log append-only must be in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

import registry
from registry.events import StoredEvent
from registry.ledger import Ledger
from registry.sdk import Registry
from registry.settings import normalise_url
from registry.store import open_store
from registry.store.base import MIGRATIONS, SCHEMA_HEAD
from registry.store.schema import LOG_TABLES, metadata

REPO = Path(__file__).resolve().parents[1]
ALEMBIC_INI = REPO / "migrations" / "alembic.ini"
#: The triggers 0001_core (the log), 0002_access (the access trail), 0003_integrity
#: (checkpoints) and 0004_erasure (redactions) create on each backend, by table.
TRIGGERS = {
    "sqlite": {
        ("events", "events_no_update"),
        ("events", "events_no_delete"),
        ("event_payloads", "event_payloads_no_update"),
        ("event_payloads", "event_payloads_no_delete"),
        ("access_trail", "access_trail_no_update"),
        ("access_trail", "access_trail_no_delete"),
        ("checkpoints", "checkpoints_no_update"),
        ("checkpoints", "checkpoints_no_delete"),
        ("redactions", "redactions_no_update"),
        ("redactions", "redactions_no_delete"),
    },
    "postgresql": {
        ("events", "events_append_only"),
        ("events", "events_no_truncate"),
        ("event_payloads", "event_payloads_append_only"),
        ("event_payloads", "event_payloads_no_truncate"),
        ("access_trail", "access_trail_append_only"),
        ("access_trail", "access_trail_no_truncate"),
        ("checkpoints", "checkpoints_append_only"),
        ("checkpoints", "checkpoints_no_truncate"),
        ("redactions", "redactions_append_only"),
        ("redactions", "redactions_no_truncate"),
    },
}

#: SHA-256 of the refusing SQL (:func:`refusing_sql`) each revision leaves, on each
#: backend, as the revisions first wrote it. A revision builds the same schema forever:
#: neither it nor a helper of ``migrations/ops.py`` it calls may change what it writes.
REFUSING_SQL = {
    ("sqlite", "0001"): "53b4249a4f5ce188f7963e027f339957c155d8c3fd9953bff511762b5ad0e09b",
    ("sqlite", "0002"): "531e2b899a338d8c9bebec4f44039a9da05f994c174730faa05aec872c82a4cf",
    ("sqlite", "0003"): "b67caf76909de6219a1cf58977477649976edfffde10123b38e2a2f6e80cd029",
    ("sqlite", "0004"): "6e5542bff4f2595c38a1fa41b5f53f94113ac50a4a18ce98e85bb6281cf48d87",
    ("sqlite", "0005"): "6e5542bff4f2595c38a1fa41b5f53f94113ac50a4a18ce98e85bb6281cf48d87",
    ("sqlite", "0006"): "6e5542bff4f2595c38a1fa41b5f53f94113ac50a4a18ce98e85bb6281cf48d87",
    ("sqlite", "0007"): "6e5542bff4f2595c38a1fa41b5f53f94113ac50a4a18ce98e85bb6281cf48d87",
    ("sqlite", "0008"): "6e5542bff4f2595c38a1fa41b5f53f94113ac50a4a18ce98e85bb6281cf48d87",
    ("sqlite", "0009"): "6e5542bff4f2595c38a1fa41b5f53f94113ac50a4a18ce98e85bb6281cf48d87",
    ("sqlite", "0010"): "6e5542bff4f2595c38a1fa41b5f53f94113ac50a4a18ce98e85bb6281cf48d87",
    ("postgresql", "0001"): "9470cb36965de96137ea1bd11e79bac52497e1e97bbd1cc7c7119388785a3e8f",
    ("postgresql", "0002"): "78e1623f4a8c733b97bd930cdc288d1a1fac2da8030ead3e309372eab4adfccc",
    ("postgresql", "0003"): "50cc87be74654b0410fc7c1b16227aec4e18a09122544449c3d874ac3600e2d2",
    ("postgresql", "0004"): "df19fec927efe0d35b294b413a1438a6873f4d621fc329172b7a38d616232063",
    ("postgresql", "0005"): "df19fec927efe0d35b294b413a1438a6873f4d621fc329172b7a38d616232063",
    ("postgresql", "0006"): "df19fec927efe0d35b294b413a1438a6873f4d621fc329172b7a38d616232063",
    ("postgresql", "0007"): "df19fec927efe0d35b294b413a1438a6873f4d621fc329172b7a38d616232063",
    ("postgresql", "0008"): "df19fec927efe0d35b294b413a1438a6873f4d621fc329172b7a38d616232063",
    ("postgresql", "0009"): "df19fec927efe0d35b294b413a1438a6873f4d621fc329172b7a38d616232063",
    ("postgresql", "0010"): "df19fec927efe0d35b294b413a1438a6873f4d621fc329172b7a38d616232063",
}

LastEvent = Callable[[], StoredEvent]


def differences(conn: Connection) -> list[Any]:
    """What autogenerate would change to bring the database to ``schema.metadata``."""
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return compare_metadata(context, metadata)


def schema_version(url: str) -> list[str]:
    """Every row of ``alembic_version`` at ``url``."""
    store = open_store(url)
    try:
        with store.read() as conn:
            return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        store.dispose()


def triggers(conn: Connection) -> set[tuple[str, str]]:
    """(table, trigger) of every user-defined trigger in the database."""
    if conn.dialect.name == "sqlite":
        sql = "SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = (
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal"
        )
    return {(table, name) for table, name in conn.execute(text(sql))}


def refusing_sql(conn: Connection) -> dict[str, str]:
    """The SQL that refuses changes, by name, to the letter: each trigger's text on SQLite,
    each function's body on PostgreSQL (both keep what the migration sent)."""
    if conn.dialect.name == "sqlite":
        sql = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = (
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace WHERE n.nspname = current_schema()"
        )
    return {name: text_ for name, text_ in conn.execute(text(sql))}


def alembic(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``alembic`` command line of this environment from the repository root."""
    script = Path(sys.executable).with_name("alembic")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "alembic"]
    return subprocess.run(
        [*program, "-c", str(ALEMBIC_INI.relative_to(REPO)), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "MLLEDGER_DB"},
    )


def test_a_migrated_database_matches_the_table_definitions(store_url: str) -> None:
    """Autogenerate finds no difference between a fresh store and ``schema.metadata``."""
    store = open_store(store_url)
    try:
        with store.engine.connect() as conn:
            # No differences are expected and none are ignored: not even type variants
            # (prediction_index.id is INTEGER on SQLite in both the migration and the model).
            assert differences(conn) == []
            assert set(inspect(conn).get_table_names()) == {*metadata.tables, "alembic_version"}
    finally:
        store.dispose()


def test_the_store_expects_the_head_revision() -> None:
    """``SCHEMA_HEAD`` is the single head of the migration scripts the store runs."""
    config = Config(str(ALEMBIC_INI))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [SCHEMA_HEAD]
    assert Path(script.dir).resolve() == MIGRATIONS.resolve()
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None  # one linear history back to the base


def test_opening_a_store_twice_keeps_it_at_head(store_url: str) -> None:
    """A second open finds the schema at head, migrates nothing and changes nothing."""
    first = open_store(store_url)
    try:
        with first.engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    finally:
        first.dispose()
    assert schema_version(store_url) == [SCHEMA_HEAD]
    assert schema_version(store_url) == [SCHEMA_HEAD]
    second = open_store(store_url)
    try:
        with second.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == tables
            assert differences(conn) == []
    finally:
        second.dispose()


def test_a_store_holding_events_reopens_without_migrating(store_url: str) -> None:
    """Reopening a store that has events keeps them and still takes appends."""
    with registry.connect(store_url, project="test", actor="tester") as reg:
        reg.register_dataset("before", "1", uri="file:///before.csv", digest="sha256:" + "1" * 64)
    with registry.connect(store_url, project="test", actor="tester") as reg:
        reg.register_dataset("after", "1", uri="file:///after.csv", digest="sha256:" + "2" * 64)
        events = reg.ledger.read()
    assert [(e.position, e.type, e.entity, e.body["name"]) for e in events] == [
        (0, "dataset-version-registered", "dataset:test/before@1", "before"),
        (1, "dataset-version-registered", "dataset:test/after@1", "after"),
    ]
    assert schema_version(store_url) == [SCHEMA_HEAD]


def test_migrations_run_from_the_alembic_command_line(store_url: str) -> None:
    """``alembic -c migrations/alembic.ini -x db=URL upgrade head`` builds a usable ledger."""
    done = alembic("-x", f"db={store_url}", "upgrade", "head")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr

    current = alembic("-x", f"db={store_url}", "current")
    assert current.returncode == 0, current.stderr
    assert current.stdout.split() == [SCHEMA_HEAD, "(head)"]

    store = open_store(store_url)  # finds the schema at head and leaves it
    try:
        with store.engine.connect() as conn:
            assert "events" in inspect(conn).get_table_names()
            assert differences(conn) == []
            assert triggers(conn) == TRIGGERS[conn.dialect.name]
    finally:
        store.dispose()

    with registry.connect(store_url, project="test", actor="tester") as reg:
        reg.register_dataset("cli", "1", uri="file:///cli.csv", digest="sha256:" + "c" * 64)
        newest = reg.ledger.last_event()
    assert newest is not None
    assert (newest.position, newest.type, newest.entity) == (
        0,
        "dataset-version-registered",
        "dataset:test/cli@1",
    )
    assert newest.body["digest"] == "sha256:" + "c" * 64


def test_the_command_line_refuses_to_downgrade(tmp_path: Path) -> None:
    """The log cannot be downgraded: ``alembic downgrade base`` fails and changes nothing."""
    url = f"sqlite:///{tmp_path}/x.db"
    assert alembic("-x", f"db={url}", "upgrade", "head").returncode == 0
    done = alembic("-x", f"db={url}", "downgrade", "base")
    assert done.returncode != 0
    assert "cannot be downgraded" in done.stderr
    assert schema_version(url) == [SCHEMA_HEAD]


def test_the_log_tables_have_append_only_triggers(
    store_url: str, reg: Registry, ledger: Ledger, last_event: LastEvent
) -> None:
    """Both log tables carry the refusing triggers, and an UPDATE of either raises."""
    model = reg.register_model(
        "clf", "1", artifact_uri="file:///clf.pkl", artifact_digest="sha256:" + "d" * 64
    )
    reg.deploy("api", endpoint="https://api.example", served={model: 100})
    reg.log_predictions("api", records=["r-1"], outputs=[0.5], model=model)
    newest = last_event()
    assert (newest.type, newest.entity) == ("predictions-logged", "deployment:test/api")
    assert (newest.body["count"], newest.body["models"]) == (1, [model.id])
    assert newest.payload is not None

    with ledger.store.read() as conn:
        assert triggers(conn) == TRIGGERS[ledger.store.dialect]
        rows = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in LOG_TABLES}
    assert rows == {"events": newest.position + 1, "event_payloads": 1}

    for statement in (
        "UPDATE events SET actor = 'mallory'",
        "UPDATE event_payloads SET position = position + 1",
    ):
        with pytest.raises(DBAPIError, match="append-only"), ledger.store.engine.begin() as conn:
            conn.execute(text(statement))
    assert last_event() == newest


def test_a_store_opened_during_another_migration_waits_for_it(tmp_path: Path) -> None:
    """Opening a new SQLite file while another process migrates it waits, then finds head."""
    path = tmp_path / "race.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")  # the other process holds the write lock, migrating
    outcome: dict[str, BaseException | None] = {}

    def opener() -> None:
        try:
            open_store(normalise_url(str(path))).dispose()
            outcome["error"] = None
        except BaseException as exc:  # reported to the test thread below
            outcome["error"] = exc

    thread = threading.Thread(target=opener)
    thread.start()
    time.sleep(1.0)  # let the opener read the empty schema and wait for the lock
    other.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    other.execute("INSERT INTO alembic_version VALUES (?)", (SCHEMA_HEAD,))
    other.execute("COMMIT")
    other.close()
    thread.join(timeout=90)
    assert not thread.is_alive()
    assert outcome["error"] is None, outcome["error"]


def test_0005_keeps_the_log_and_scopes_event_ids_by_project(store_url: str) -> None:
    """A ledger written at 0004 upgrades to 0005 with every event, payload, vault entry,
    index and trigger intact; afterwards an event id is unique per project only."""
    assert alembic("-x", f"db={store_url}", "upgrade", "0004").returncode == 0
    engine = create_engine(normalise_url(store_url))
    row = {
        "event_id": "0190a1c2-0000-7000-8000-000000000001",
        "type": "run-started",
        "schema_version": 1,
        "project": "alpha",
        "entity": "run:0190a1c2-0000-7000-8000-0000000000aa",
        "actor": "tester",
        "occurred_at": "2026-12-01T00:00:00.000000Z",
        "recorded_at": "2026-12-01T00:00:00.000000Z",
        "body": '{"job":"train"}',
        "personal_refs": "[]",
        "leaf_hash": b"\x01" * 32,
    }
    columns = ", ".join(["position", *row])
    values = ", ".join([":position", *(f":{c}" for c in row)])
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO events ({columns}) VALUES ({values})"), {**row, "position": 0}
        )
        conn.execute(
            text(
                "INSERT INTO vault_entries (entry, project, subject, nonce, ciphertext, "
                "created_at) VALUES ('e-1', 'alpha', :s, :n, :c, '2026-12-01T00:00:00.000000Z')"
            ),
            {"s": "a" * 32, "n": b"n" * 12, "c": b"c" * 16},
        )
    engine.dispose()

    assert alembic("-x", f"db={store_url}", "upgrade", "head").returncode == 0
    assert schema_version(store_url) == [SCHEMA_HEAD]
    engine = create_engine(normalise_url(store_url))
    try:
        with engine.begin() as conn:
            kept = conn.execute(text("SELECT event_id, project, body FROM events")).all()
            assert [tuple(r) for r in kept] == [(row["event_id"], "alpha", row["body"])]
            assert triggers(conn) >= {t for t in TRIGGERS[conn.dialect.name] if t[0] == "events"}
            assert not differences(conn)
            # The same id in another project is a new event; in the same project it is not.
            conn.execute(
                text(f"INSERT INTO events ({columns}) VALUES ({values})"),
                {**row, "position": 1, "project": "beta"},
            )
            conn.execute(
                text(
                    "INSERT INTO vault_entries (entry, project, subject, nonce, ciphertext, "
                    "created_at) VALUES ('e-1', 'beta', :s, :n, :c, "
                    "'2026-12-01T00:00:00.000000Z')"
                ),
                {"s": "b" * 32, "n": b"n" * 12, "c": b"c" * 16},
            )
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(
                text(f"INSERT INTO events ({columns}) VALUES ({values})"),
                {**row, "position": 2},
            )
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE events SET actor = 'mallory'"))
    finally:
        engine.dispose()


def test_0010_counts_the_indexed_predictions_per_day(store_url: str) -> None:
    """A ledger written at 0009 upgrades to 0010 with the predictions its index holds
    counted per deployment, model version and day."""
    assert alembic("-x", f"db={store_url}", "upgrade", "0009").returncode == 0
    engine = create_engine(normalise_url(store_url))
    rows = [
        (1, "model:p/m@1", "2026-12-01T23:59:59.999999Z"),
        (2, "model:p/m@1", "2026-12-01T00:00:00.000000Z"),
        (3, "model:p/m@1", "2026-12-02T00:00:00.000000Z"),
        (4, "model:p/m@2", "2026-12-02T10:00:00.000000Z"),
    ]
    with engine.begin() as conn:
        for ident, model, at in rows:
            conn.execute(
                text(
                    "INSERT INTO prediction_index (id, position, seq, epoch, project, record, "
                    "deployment, model, at, output) VALUES (:id, 7, :id, 0, 'p', :r, "
                    "'deployment:p/api', :m, :at, '1')"
                ),
                {"id": ident, "r": f"{ident:032x}", "m": model, "at": at},
            )
    engine.dispose()
    assert alembic("-x", f"db={store_url}", "upgrade", "head").returncode == 0
    engine = create_engine(normalise_url(store_url))
    try:
        with engine.begin() as conn:
            days = conn.execute(
                text("SELECT model, day, n FROM prediction_days ORDER BY model, day")
            ).all()
            assert not differences(conn)
    finally:
        engine.dispose()
    assert [tuple(d) for d in days] == [
        ("model:p/m@1", "2026-12-01", 2),
        ("model:p/m@1", "2026-12-02", 1),
        ("model:p/m@2", "2026-12-02", 1),
    ]


def test_0003_builds_the_tree_of_the_trail_recorded_before_it(store_url: str) -> None:
    """A trail written at 0002 gets, at 0003, the stored tree the application's own
    rebuild makes of it: every perfect subtree, and the root of its leaf hashes."""
    from audit import merkle
    from audit.tree import TRAIL, StoredTree, rebuild_nodes

    assert alembic("-x", f"db={store_url}", "upgrade", "0002").returncode == 0
    leaves = [bytes([i]) * 32 for i in range(13)]
    engine = create_engine(normalise_url(store_url))
    with engine.begin() as conn:
        for seq, leaf in enumerate(leaves):
            conn.execute(
                text(
                    "INSERT INTO access_trail (seq, at, actor, project, action, resource, "
                    "source, outcome, status, reason, trace_id, leaf_hash) VALUES (:seq, "
                    "'2026-12-01T00:00:00.000000Z', 'k', 'alpha', 'read', '/x', 'test', "
                    "'allow', 200, 'ok', NULL, :leaf)"
                ),
                {"seq": seq, "leaf": leaf},
            )
    engine.dispose()
    assert alembic("-x", f"db={store_url}", "upgrade", "0003").returncode == 0
    engine = create_engine(normalise_url(store_url))
    query = text("SELECT level, idx, hash FROM trail_merkle_nodes ORDER BY level, idx")
    try:
        with engine.connect() as conn:
            migrated = [(int(a), int(b), bytes(h)) for a, b, h in conn.execute(query)]
            assert StoredTree(conn, TRAIL).root(len(leaves)) == merkle.root_hash(leaves)
            assert rebuild_nodes(conn, TRAIL) == len(leaves)
            rebuilt = [(int(a), int(b), bytes(h)) for a, b, h in conn.execute(query)]
            conn.rollback()
    finally:
        engine.dispose()
    assert migrated == rebuilt
    assert len(migrated) == 13 + 6 + 3 + 1


def test_each_revision_writes_the_refusing_sql_it_first_wrote(store_url: str) -> None:
    """Upgrading one revision at a time, each leaves the append-only triggers of the tables
    there so far, and refusing SQL identical to what it first wrote."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(normalise_url(store_url))
    try:
        for dialect, revision in REFUSING_SQL:
            if dialect != engine.dialect.name:
                continue
            with engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                tables = set(inspect(conn).get_table_names())
                texts = refusing_sql(conn)
                assert triggers(conn) == {t for t in TRIGGERS[dialect] if t[0] in tables}
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert version == revision
            digest = hashlib.sha256(json.dumps(sorted(texts.items())).encode()).hexdigest()
            assert digest == REFUSING_SQL[dialect, revision], (revision, texts)
    finally:
        engine.dispose()
