"""API keys, roles, access decisions and the access trail, on SQLite and PostgreSQL.

Keys are created, verified, listed and revoked; the secret is never stored (the
whole database is searched for it); ``decide`` answers every role, permission
and project; the trail numbers entries gap-free, carries leaf hashes the RFC 8785
reference encoder reproduces, and the database refuses to change it; every key
created or revoked appends exactly one trail entry, in the same transaction. The
``keys`` and ``access-trail`` commands are run in-process through ``registry.cli.main``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import registry
from registry import auth
from registry.auth import (
    PERMISSIONS,
    ROLES,
    ApiKey,
    create_key,
    decide,
    list_keys,
    read_trail,
    record_access,
    revoke_key,
    verify_token,
)
from registry.cli import main
from registry.errors import LedgerError, NotFound
from registry.ledger import Ledger
from registry.store import Store, open_store
from registry.store.base import SCHEMA_HEAD
from tests.support.events import access_entry as entry
from tests.support.events import at_revision
from tests.support.helpers import assert_one_error_line

ADMIN = "alice@ops"
TOKEN = re.compile(r"^mll_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
#: What each role may do, written out here rather than read from ROLES.
EXPECTED_ROLES = {
    "viewer": {"read"},
    "writer": {"read", "write"},
    "auditor": {"read", "audit"},
    "dpo": {"read", "personal"},
    "admin": {"read", "write", "audit", "personal", "admin"},
}
CLOSED_PORT_URL = "postgresql://nobody@127.0.0.1:1/x"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The migrated store at ``store_url``, disposed after the test."""
    opened = open_store(store_url)
    yield opened
    opened.dispose()


def trail(store: Store, **kw: Any) -> list[dict[str, Any]]:
    return read_trail(store, **kw)


def assert_one_entry(
    before: list[dict[str, Any]], after: list[dict[str, Any]], **expected: Any
) -> dict[str, Any]:
    """``after`` is ``before`` plus exactly one entry, which has the ``expected`` fields."""
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1, after[len(before) :]
    entry = after[-1]
    assert entry["seq"] == len(before)
    assert {k: entry[k] for k in expected} == expected
    return entry


def assert_key_entry(
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    action: str,
    key_id: str,
    **expected: Any,
) -> dict[str, Any]:
    """``after`` is ``before`` plus one entry: ADMIN's allowed ``action`` (``keys.create``
    or ``keys.revoke``) on key ``key_id`` of project ``p``, with the ``expected`` fields."""
    fields = {"actor": ADMIN, "outcome": "allow", "project": "p", **expected}
    return assert_one_entry(before, after, action=action, resource=f"key:{key_id}", **fields)


def reference_leaf(row: dict[str, Any]) -> str:
    """The leaf hash of a trail row, recomputed with the RFC 8785 reference encoder."""
    fields = {k: v for k, v in row.items() if k != "leaf_hash"}
    return hashlib.sha256(b"\x00" + rfc8785.dumps(fields)).hexdigest()


# --- keys -------------------------------------------------------------------------------------


def test_create_verify_list_and_revoke(store: Store) -> None:
    """A created key verifies from its token, is listed, and once revoked verifies as revoked."""
    key, token = create_key(store, project="p", role="writer", name="ci", created_by=ADMIN)
    match = TOKEN.match(token)
    assert match is not None, token
    assert match.group(1) == key.key_id
    assert (key.project, key.role, key.name, key.created_by) == ("p", "writer", "ci", ADMIN)
    assert (key.revoked_at, key.revoked_by) == (None, None)
    assert key.permissions == {"read", "write"}
    created = assert_key_entry(
        [], trail(store), "keys.create", key.key_id, source="cli", status=201
    )
    assert created["at"] == key.created_at

    assert verify_token(store, token) == key
    other, _ = create_key(store, project="q", role="viewer", created_by=ADMIN)
    assert list_keys(store) == [key, other]
    assert list_keys(store, project="p") == [key]
    assert list_keys(store, project="nobody") == []

    before = trail(store)
    revoked = revoke_key(store, key_id=key.key_id, revoked_by=ADMIN)
    assert revoked.revoked_by == ADMIN and revoked.revoked_at is not None
    assert (revoked.key_id, revoked.project, revoked.role) == (key.key_id, "p", "writer")
    entry_ = assert_key_entry(before, trail(store), "keys.revoke", key.key_id)
    assert entry_["at"] == revoked.revoked_at
    assert verify_token(store, token) == revoked  # still found, so the caller can say why
    assert list_keys(store, include_revoked=False) == [other]
    assert list_keys(store) == [revoked, other]


def test_keys_are_created_with_every_role_and_fresh_ids(store: Store) -> None:
    """Each role gives its permissions; ids and secrets differ from key to key."""
    made = [create_key(store, project="p", role=role, created_by=ADMIN) for role in ROLES]
    assert {k.role: set(k.permissions) for k, _ in made} == EXPECTED_ROLES
    assert len({k.key_id for k, _ in made}) == len({t for _, t in made}) == len(ROLES)
    assert [e["action"] for e in trail(store)] == ["keys.create"] * len(ROLES)
    assert [e["resource"] for e in trail(store)] == [f"key:{k.key_id}" for k, _ in made]


def test_the_secret_is_never_stored(store_url: str, store: Store) -> None:
    """Neither the token nor its secret is anywhere in the database; only the secret's hash."""
    key, token = create_key(store, project="p", role="admin", name="svc", created_by=ADMIN)
    secret = TOKEN.match(token).group(2)  # type: ignore[union-attr]
    revoke_key(store, key_id=key.key_id, revoked_by=ADMIN)
    with store.read() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT * FROM api_keys"))]
        stored_hash = conn.execute(text("SELECT secret_hash FROM api_keys")).scalar()
        if store.dialect == "postgresql":
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            dump = b"\n".join(
                "\n".join(conn.execute(text(f'SELECT t::text FROM "{t}" AS t')).scalars()).encode()
                for t in tables
            )
    assert len(rows) == 1
    assert not any(secret in str(value) for value in rows[0])
    assert stored_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert [e["action"] for e in trail(store)] == ["keys.create", "keys.revoke"]

    if store.dialect == "sqlite":
        store.dispose()  # and read every file the database is made of (WAL included)
        directory = Path(store_url[len("sqlite:///") :]).parent
        files = [p for p in directory.rglob("*") if p.is_file()]
        assert any(p.name == "ledger.db" for p in files)
        dump = b"".join(p.read_bytes() for p in files)
    assert key.key_id.encode() in dump  # the search does see what the database holds
    for needle in (secret, token):
        assert needle.encode() not in dump
        assert needle.encode("utf-16-le") not in dump


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: t[:5] + ("0" if t[5] != "0" else "1") + t[6:],  # unknown key id
        lambda t: t.upper(),
        lambda t: t[4:],
        lambda t: "Bearer " + t,
        lambda t: t + "x" * 200,
        lambda t: t.replace("_", "-", 1),
        lambda t: "",
        lambda t: None,
    ],
    ids=[
        "wrong-secret",
        "unknown-id",
        "upper",
        "no-prefix",
        "bearer",
        "too-long",
        "separator",
        "empty",
        "none",
    ],
)
def test_a_bad_token_verifies_to_nothing(store: Store, mangle: Any) -> None:
    """Wrong secret, unknown id or malformed token: None, and decide answers 401."""
    key, token = create_key(store, project="p", role="admin", created_by=ADMIN)
    bad = mangle(token)
    assert bad != token
    assert verify_token(store, bad) is None
    decision = decide(None, project="p", permission="read", had_token=bad is not None)
    assert (decision.allowed, decision.status) == (False, 401)
    assert verify_token(store, token) == key


def test_create_key_refuses_bad_input_and_writes_nothing(store: Store) -> None:
    """A bad role or project is a LedgerError naming what is allowed; no key, no entry."""
    with pytest.raises(
        LedgerError,
        match="role 'root' is not a role: expected one of viewer, writer, auditor, dpo, admin",
    ):
        create_key(store, project="p", role="root", created_by=ADMIN)
    with pytest.raises(LedgerError, match="project 'no/slash' is not valid"):
        create_key(store, project="no/slash", role="viewer", created_by=ADMIN)
    with pytest.raises(LedgerError, match="created_by is empty"):
        create_key(store, project="p", role="viewer", created_by="")
    assert list_keys(store) == []
    assert trail(store) == []


def test_a_key_and_its_trail_entry_commit_together(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the trail entry cannot be written, the key is not created either."""

    def broken(conn: Any, entries: Any) -> list[int]:
        raise RuntimeError("the trail is unavailable")

    monkeypatch.setattr(auth, "insert_access", broken)
    with pytest.raises(RuntimeError, match="unavailable"):
        create_key(store, project="p", role="viewer", created_by=ADMIN)
    assert list_keys(store) == []
    monkeypatch.undo()

    key, _ = create_key(store, project="p", role="viewer", created_by=ADMIN)
    monkeypatch.setattr(auth, "insert_access", broken)
    with pytest.raises(RuntimeError, match="unavailable"):
        revoke_key(store, key_id=key.key_id, revoked_by=ADMIN)
    assert list_keys(store) == [key]  # still active
    assert [e["action"] for e in trail(store)] == ["keys.create"]


def test_revoking_twice_changes_nothing_the_second_time(store: Store) -> None:
    """The second revocation returns the key as it was and appends no entry."""
    key, _ = create_key(store, project="p", role="dpo", created_by=ADMIN)
    first = revoke_key(store, key_id=key.key_id, revoked_by=ADMIN)
    before = trail(store)
    assert [(e["action"], e["actor"]) for e in before] == [
        ("keys.create", ADMIN),
        ("keys.revoke", ADMIN),
    ]
    again = revoke_key(store, key_id=key.key_id, revoked_by="bob@ops", source="10.0.0.9")
    assert again == first
    assert again.revoked_by == ADMIN
    assert trail(store) == before


def test_revoking_an_unknown_key_is_not_found(store: Store) -> None:
    """Unknown, malformed, or (with ``project``) another project's key: NotFound, no entry."""
    key, _ = create_key(store, project="p", role="viewer", created_by=ADMIN)
    before = trail(store)
    with pytest.raises(NotFound, match="no API key 0123456789abcdef: see 'mlledger keys list'"):
        revoke_key(store, key_id="0123456789abcdef", revoked_by=ADMIN)
    with pytest.raises(NotFound, match="malformed: expected the 16 lowercase hex digits"):
        revoke_key(store, key_id="KEY", revoked_by=ADMIN)
    with pytest.raises(NotFound, match=f"no API key {key.key_id} in project 'q'"):
        revoke_key(store, key_id=key.key_id, revoked_by=ADMIN, project="q")
    assert list_keys(store) == [key]
    assert trail(store) == before

    revoked = revoke_key(store, key_id=key.key_id, revoked_by=ADMIN, project="p", source="10.1.2.3")
    assert revoked.revoked_at is not None
    assert_one_entry(before, trail(store), action="keys.revoke", actor=ADMIN, source="10.1.2.3")


# --- decisions --------------------------------------------------------------------------------


def make_key(role: str, project: str = "p", revoked_at: str | None = None) -> ApiKey:
    return ApiKey(
        "00112233aabbccdd",
        project,
        role,
        None,
        "2024-01-01T00:00:00.000000Z",
        ADMIN,
        revoked_at,
        ADMIN if revoked_at else None,
    )


@pytest.mark.parametrize("role", list(EXPECTED_ROLES))
@pytest.mark.parametrize("permission", list(PERMISSIONS))
@pytest.mark.parametrize("project", ["p", "q"])
def test_decide_every_role_permission_and_project(role: str, permission: str, project: str) -> None:
    """Allowed (200) exactly when the key is the project's and its role has the permission;
    else 403 saying which of the two failed."""
    decision = decide(make_key(role), project=project, permission=permission, had_token=True)
    if project != "p":
        expected = (False, 403, f"key 00112233aabbccdd is for project 'p', not '{project}'")
    elif permission in EXPECTED_ROLES[role]:
        expected = (True, 200, f"role {role} allows {permission}")
    else:
        able = ", ".join(r for r, perms in EXPECTED_ROLES.items() if permission in perms)
        expected = (
            False,
            403,
            f"role '{role}' does not allow '{permission}'; roles that do: {able}",
        )
    assert (decision.allowed, decision.status, decision.reason) == expected


def test_decide_without_a_valid_key() -> None:
    """No token, an unknown token and a revoked key are 401s, each with its own reason."""
    assert decide(None, project="p", permission="read", had_token=False) == auth.Decision(
        False, 401, "no API key: send 'Authorization: Bearer <key>'"
    )
    assert decide(None, project="p", permission="read", had_token=True) == auth.Decision(
        False, 401, "unknown or malformed API key"
    )
    revoked = make_key("admin", revoked_at="2024-02-01T00:00:00.000000Z")
    decision = decide(revoked, project="p", permission="read", had_token=True)
    assert decision == auth.Decision(
        False, 401, "API key 00112233aabbccdd was revoked at 2024-02-01T00:00:00.000000Z"
    )
    assert decide(make_key("viewer"), project="p", permission="write", had_token=True).reason == (
        "role 'viewer' does not allow 'write'; roles that do: writer, admin"
    )
    with pytest.raises(LedgerError, match="permission 'delete' is not a permission"):
        decide(make_key("admin"), project="p", permission="delete", had_token=True)


def test_a_revoked_key_is_refused_with_401(store: Store) -> None:
    """Revocation takes effect at once: the next verification decides 401 'revoked'."""
    key, token = create_key(store, project="p", role="admin", created_by=ADMIN)
    assert decide(
        verify_token(store, token), project="p", permission="admin", had_token=True
    ).allowed
    revoked = revoke_key(store, key_id=key.key_id, revoked_by=ADMIN)
    assert [e["action"] for e in trail(store)] == ["keys.create", "keys.revoke"]
    decision = decide(verify_token(store, token), project="p", permission="read", had_token=True)
    assert (decision.allowed, decision.status) == (False, 401)
    assert decision.reason == f"API key {key.key_id} was revoked at {revoked.revoked_at}"


# --- the access trail -------------------------------------------------------------------------


def test_record_access_numbers_entries_gap_free_with_leaf_hashes(store: Store) -> None:
    """Sequence numbers run 0, 1, 2, ... across calls; every leaf hash is reproducible."""
    assert record_access(store, []) == []
    assert record_access(
        store, [entry(0), entry(1, outcome="deny", status=403, reason="denied", trace_id="ab" * 16)]
    ) == [0, 1]
    assert record_access(
        store,
        [
            entry(2, project=None, actor="anonymous", status=401),
            entry(3, project="q", at="2024-01-01T12:00:00+01:00"),
        ],
    ) == [2, 3]
    rows = trail(store)
    assert [r["seq"] for r in rows] == [0, 1, 2, 3]
    assert [(r["project"], r["outcome"], r["status"], r["actor"]) for r in rows] == [
        ("p", "allow", 200, "0123456789abcdef"),
        ("p", "deny", 403, "0123456789abcdef"),
        (None, "allow", 401, "anonymous"),
        ("q", "allow", 200, "0123456789abcdef"),
    ]
    assert rows[1]["trace_id"] == "ab" * 16 and rows[0]["trace_id"] is None
    assert rows[3]["at"] == "2024-01-01T11:00:00.000000Z"  # normalised to the canonical form
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r["at"]) for r in rows)
    assert [r["leaf_hash"] for r in rows] == [reference_leaf(r) for r in rows]
    assert len({r["leaf_hash"] for r in rows}) == 4
    assert [r["leaf_hash"] for r in rows] == [auth.trail_leaf_hash(r).hex() for r in rows]

    assert [r["seq"] for r in trail(store, project="p")] == [0, 1]
    assert [r["seq"] for r in trail(store, since=2)] == [2, 3]
    assert [r["seq"] for r in trail(store, since=1, limit=2)] == [1, 2]
    assert trail(store, since=4) == []


def test_concurrent_writers_leave_no_gaps(store_url: str, store: Store) -> None:
    """Writers in several threads (each its own store) get distinct, gap-free numbers."""
    seqs: list[int] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        own = open_store(store_url)
        try:
            for i in range(10):
                seqs.extend(record_access(own, [entry(n * 100 + i), entry(n * 100 + i)]))
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(seqs) == list(range(80))
    rows = trail(store)
    assert [r["seq"] for r in rows] == list(range(80))
    assert [r["leaf_hash"] for r in rows] == [reference_leaf(r) for r in rows]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"outcome": "maybe"}, "outcome 'maybe' is not an outcome: expected one of allow, deny"),
        ({"status": 42}, "status 42 is not an HTTP status"),
        ({"status": True}, "status True is not an HTTP status"),
        ({"action": ""}, "action is empty"),
        ({"action": "a" * 65}, "action is 65 characters long: expected at most 64"),
        ({"project": "p" * 129}, "project is 129 characters long: expected at most 128"),
        ({"trace_id": "t" * 65}, "trace_id is 65 characters long"),
        ({"at": "yesterday"}, "at 'yesterday' is not a time"),
        ({"resource": None}, "resource: expected a string"),
    ],
)
def test_a_bad_entry_writes_nothing(store: Store, fields: dict[str, Any], message: str) -> None:
    """One bad entry in a batch: a LedgerError naming the field, and no entry written."""
    record_access(store, [entry(0)])
    before = trail(store)
    with pytest.raises(LedgerError, match=re.escape(message)):
        record_access(store, [entry(1), entry(2, **fields)])
    assert trail(store) == before
    assert record_access(store, [entry(3)]) == [1]
    assert trail(store)[-1]["resource"] == entry(3).resource


def test_the_database_refuses_to_change_the_trail(store: Store) -> None:
    """UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the trail are refused by the database."""
    record_access(store, [entry(0), entry(1, outcome="deny", status=403)])
    before = trail(store)
    assert [(r["seq"], r["outcome"]) for r in before] == [(0, "allow"), (1, "deny")]
    statements = [
        "UPDATE access_trail SET outcome = 'allow' WHERE seq = 1",
        "UPDATE access_trail SET actor = 'mallory'",
        "UPDATE access_trail SET leaf_hash = leaf_hash",
        "DELETE FROM access_trail WHERE seq = 1",
        "DELETE FROM access_trail",
    ]
    if store.dialect == "postgresql":
        statements += ["TRUNCATE access_trail", "TRUNCATE TABLE access_trail CASCADE"]
    for statement in statements:
        with (
            pytest.raises(DBAPIError, match="access trail is append-only"),
            store.engine.begin() as conn,
        ):
            conn.execute(text(statement))
        assert trail(store) == before, statement
    assert record_access(store, [entry(2)]) == [2]  # and appends still work


# --- schema -----------------------------------------------------------------------------------


def test_a_0001_store_upgrades_and_keeps_its_events(store_url: str) -> None:
    """A store at revision 0001 holding events migrates to head on open, events intact."""
    with at_revision(store_url, "0001") as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    with registry.connect(store_url, project="test", actor="tester") as reg:
        reg.register_dataset("d", "1", uri="file:///d.csv", digest="sha256:" + "e" * 64)
        events = reg.ledger.read()
        key, token = create_key(reg.ledger.store, project="test", role="viewer", created_by=ADMIN)
        assert verify_token(reg.ledger.store, token) == key
        assert [e["action"] for e in trail(reg.ledger.store)] == ["keys.create"]
    assert [(e.position, e.entity) for e in events] == [(0, "dataset:test/d@1")]
    store = open_store(store_url)
    try:
        with store.read() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        store.dispose()
    assert version == SCHEMA_HEAD == "0010"


def test_rebuild_leaves_keys_and_the_trail_alone(ledger: Ledger) -> None:
    """Keys and the trail are not projections: a rebuild neither drops nor digests them."""
    digest = ledger.projection_digest()
    key, token = create_key(ledger.store, project="p", role="auditor", created_by=ADMIN)
    record_access(ledger.store, [entry(0)])
    before = trail(ledger.store)
    assert [(e["action"], e["actor"]) for e in before] == [
        ("keys.create", ADMIN),
        ("questions.scored", entry().actor),
    ]
    assert ledger.projection_digest() == digest
    result = ledger.rebuild()
    assert result["digest"] == digest
    assert verify_token(ledger.store, token) == key
    assert trail(ledger.store) == before


# --- command line -----------------------------------------------------------------------------


@pytest.fixture
def cli(store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``mlledger ARGS --db URL`` in-process as actor ADMIN; return (status, out, err)."""
    monkeypatch.setenv("MLLEDGER_ACTOR", ADMIN)

    def run(*args: str, db: str | None = None) -> tuple[int, str, str]:
        status = main([*args, "--db", db or store_url])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def cli_trail(cli_json: Any) -> list[dict[str, Any]]:
    return list(cli_json("access-trail"))


def test_cli_keys_create_prints_the_token_once(cli: Any, cli_json: Any, store_url: str) -> None:
    """Text output: the token on its own line and a warning that it cannot be shown again."""
    status, out, err = cli("keys", "create", "--project", "p", "--role", "writer", "--name", "ci")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3
    match = TOKEN.match(lines[1])
    assert match is not None, out
    key_id = match.group(1)
    assert lines[0] == f"created writer key {key_id} for project p"
    assert "cannot be shown again" in lines[2]
    assert_key_entry([], cli_trail(cli_json), "keys.create", key_id, source="cli")

    store = open_store(store_url)
    try:
        key = verify_token(store, lines[1])
    finally:
        store.dispose()
    assert key is not None
    assert (key.key_id, key.role, key.name, key.created_by) == (key_id, "writer", "ci", ADMIN)

    listed = cli_json("keys", "list")
    assert listed == [key.as_dict()]
    assert "token" not in listed[0] and "secret_hash" not in listed[0]


def test_cli_keys_create_json(cli_json: Any) -> None:
    """JSON output: every key field, the permissions and the token."""
    data = cli_json("keys", "create", "--project", "p", "--role", "auditor")
    assert set(data) == {
        "key_id",
        "project",
        "role",
        "name",
        "created_at",
        "created_by",
        "revoked_at",
        "revoked_by",
        "permissions",
        "token",
    }
    assert (data["project"], data["role"], data["name"], data["created_by"]) == (
        "p",
        "auditor",
        None,
        ADMIN,
    )
    assert data["permissions"] == ["read", "audit"]
    assert TOKEN.match(data["token"]).group(1) == data["key_id"]  # type: ignore[union-attr]
    assert_key_entry([], cli_trail(cli_json), "keys.create", data["key_id"])


def test_cli_keys_list_and_revoke(cli: Any, cli_json: Any) -> None:
    """``keys list`` shows every key (``--project`` filters); ``keys revoke`` marks one revoked."""
    a = cli_json("keys", "create", "--project", "p", "--role", "viewer", "--name", "dash")
    b = cli_json("keys", "create", "--project", "q", "--role", "admin")
    assert [k["key_id"] for k in cli_json("keys", "list")] == [a["key_id"], b["key_id"]]
    assert [k["key_id"] for k in cli_json("keys", "list", "--project", "q")] == [b["key_id"]]
    status, out, err = cli("keys", "list")
    assert (status, err) == (0, "")
    assert [line.split()[:4] for line in out.splitlines()] == [
        [a["key_id"], "p", "viewer", "active"],
        [b["key_id"], "q", "admin", "active"],
    ]
    assert "'dash'" in out and a["token"] not in out

    before = cli_trail(cli_json)
    status, out, err = cli("keys", "revoke", a["key_id"])
    assert (status, err) == (0, "")
    assert out.startswith(f"key {a['key_id']} revoked at ") and out.rstrip().endswith(ADMIN)
    assert_key_entry(before, cli_trail(cli_json), "keys.revoke", a["key_id"])
    listed = cli_json("keys", "list")
    assert listed[0]["revoked_by"] == ADMIN and listed[0]["revoked_at"] is not None
    assert listed[1]["revoked_at"] is None
    status, out, _ = cli("keys", "list", "--project", "p")
    assert out.split()[3] == "revoked"

    before = cli_trail(cli_json)
    again = cli_json("keys", "revoke", a["key_id"])  # a no-op: same key, no new entry
    assert again == listed[0]
    assert cli_trail(cli_json) == before


def test_cli_bad_input_is_one_error_line_and_status_2(cli: Any, cli_json: Any) -> None:
    """A bad role, project or key id: exit 2 with one line naming it; nothing written."""
    status, out, err = cli("keys", "create", "--project", "p", "--role", "root")
    assert (status, out) == (2, "")
    assert_one_error_line(err, "keys create", "'root'", "viewer, writer, auditor, dpo, admin")
    status, out, err = cli("keys", "create", "--project", "a b", "--role", "viewer")
    assert (status, out) == (2, "")
    assert_one_error_line(err, "keys create", "project 'a b' is not valid")
    status, out, err = cli("keys", "revoke", "0123456789abcdef")
    assert (status, out) == (2, "")
    assert_one_error_line(err, "keys revoke", "no API key 0123456789abcdef")
    assert cli_json("keys", "list") == []
    assert cli_trail(cli_json) == []


def test_cli_keys_create_needs_project_and_role(cli: Any) -> None:
    """Without ``--project`` or ``--role``, argparse refuses (exit status 2)."""
    for args in (["--role", "viewer"], ["--project", "p"]):
        with pytest.raises(SystemExit) as exited:
            cli("keys", "create", *args)
        assert exited.value.code == 2


def test_cli_access_trail(cli: Any, cli_json: Any, store_url: str) -> None:
    """``access-trail`` prints entries in order; ``--project``, ``--since``, ``--limit`` filter."""
    a = cli_json("keys", "create", "--project", "p", "--role", "viewer")
    store = open_store(store_url)
    try:
        record_access(
            store,
            [
                entry(0, actor=a["key_id"]),
                entry(
                    1,
                    project="q",
                    outcome="deny",
                    status=403,
                    reason=f"key {a['key_id']} is for project 'p', not 'q'",
                ),
            ],
        )
    finally:
        store.dispose()
    rows = cli_json("access-trail")
    assert [(r["seq"], r["action"], r["project"], r["outcome"]) for r in rows] == [
        (0, "keys.create", "p", "allow"),
        (1, "questions.scored", "p", "allow"),
        (2, "questions.scored", "q", "deny"),
    ]
    assert [r["leaf_hash"] for r in rows] == [reference_leaf(r) for r in rows]
    assert [r["seq"] for r in cli_json("access-trail", "--project", "q")] == [2]
    assert [r["seq"] for r in cli_json("access-trail", "--since", "1", "--limit", "1")] == [1]

    status, out, err = cli("access-trail")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[2].split()[:5] == ["2", rows[2]["at"], "deny", "403", "questions.scored"]
    assert f"by {a['key_id']} from 10.0.0.1" in lines[1]
    status, out, _ = cli("access-trail", "--since", "9")
    assert (status, out) == (0, "(no entries)\n")


def test_cli_unreachable_database_is_status_1(cli: Any) -> None:
    """A server that cannot be reached: one 'cannot use the database' line, status 1."""
    for args in (["keys", "list"], ["access-trail"]):
        status, out, err = cli(*args, db=CLOSED_PORT_URL)
        assert (status, out) == (1, "")
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err
        assert lines[0].startswith(f"mlledger {' '.join(args)}: cannot use the database: ")
