"""API keys with per-project roles, access decisions, and the append-only access trail.

A key belongs to one project and has one role; a role is a set of permissions.
The token handed to a client, ``mll_<key_id>_<secret>``, is shown once: the
store keeps only the SHA-256 of the secret. Every decision the API makes (and
every key created or revoked) can be written to the access trail, a table the
database refuses to UPDATE or DELETE, whose rows carry RFC 6962 leaf hashes so
that a Merkle tree can cover the trail later.

The trail never holds personal data: a resource is a node id or a pseudonym,
never a record key or subject id as the client typed it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from audit.tree import TRAIL, StoredTree
from registry.canonical import canonical_text, leaf_hash
from registry.errors import LedgerError, NotFound
from registry.ids import check_name
from registry.store.raw import Raw
from registry.timeutil import now, to_timestamp

if TYPE_CHECKING:
    from registry.store import Store

PERMISSIONS = ("read", "write", "audit", "personal", "admin")
ROLES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "writer": frozenset({"read", "write"}),
    "auditor": frozenset({"read", "audit"}),
    "dpo": frozenset({"read", "personal"}),
    "admin": frozenset(PERMISSIONS),
}
OUTCOMES = ("allow", "deny")
TOKEN_PREFIX = "mll_"
# token_urlsafe(32) gives 43 characters; the bound keeps a hostile header from being
# hashed at any length.
_TOKEN_RE = re.compile(r"^mll_([0-9a-f]{16})_([A-Za-z0-9_-]{1,128})$")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")

#: The fields of a trail row covered by its leaf hash, in the order they are read back.
TRAIL_FIELDS = (
    "seq",
    "at",
    "actor",
    "project",
    "action",
    "resource",
    "source",
    "outcome",
    "status",
    "reason",
    "trace_id",
)
_KEY_COLUMNS = "key_id, project, role, name, created_at, created_by, revoked_at, revoked_by"
_TRAIL_COLUMNS = ", ".join(TRAIL_FIELDS)
_INSERT_TRAIL = (
    f"INSERT INTO access_trail ({_TRAIL_COLUMNS}, leaf_hash) "
    f"VALUES ({', '.join('?' * (len(TRAIL_FIELDS) + 1))})"
)
# Column widths of the schema, checked here so that SQLite (which does not enforce
# them) and PostgreSQL (which does) refuse the same entries, with a message that helps.
_ACTOR_MAX = 300
_PROJECT_MAX = 128
_ACTION_MAX = 64
_SOURCE_MAX = 300
_TRACE_MAX = 64
_NAME_MAX = 300


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored, without its secret or the secret's hash."""

    key_id: str
    project: str
    role: str
    name: str | None
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None

    @property
    def permissions(self) -> frozenset[str]:
        """What the key's role allows."""
        return ROLES[self.role]

    def as_dict(self) -> dict[str, Any]:
        """The key's fields and its permissions (in ``PERMISSIONS`` order), for JSON."""
        data = asdict(self)
        data["permissions"] = [p for p in PERMISSIONS if p in self.permissions]
        return data


def _hash_secret(secret: str) -> str:
    # A fast hash is right here: the secret is 256 random bits, so there is nothing to
    # guess and no dictionary to slow down; a password hash would only make every
    # request slower.
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise LedgerError(f"role {role!r} is not a role: expected one of {', '.join(ROLES)}")
    return role


def _check_text(value: Any, what: str, longest: int | None = None, *, empty: bool = False) -> str:
    """``value`` if it is a string of at most ``longest`` characters (non-empty unless
    ``empty``), else a LedgerError saying so."""
    if not isinstance(value, str):
        raise LedgerError(f"{what}: expected a string, got {type(value).__name__}")
    if not value and not empty:
        raise LedgerError(f"{what} is empty: expected some text")
    if longest is not None and len(value) > longest:
        raise LedgerError(f"{what} is {len(value)} characters long: expected at most {longest}")
    return value


def _key(row: Sequence[Any]) -> ApiKey:
    """An ApiKey from a row of ``_KEY_COLUMNS``."""
    return ApiKey(*row)


def create_key(
    store: Store,
    *,
    project: str,
    role: str,
    name: str | None = None,
    created_by: str,
    source: str = "cli",
) -> tuple[ApiKey, str]:
    """Create a key for ``project`` with ``role``; return it and its token.

    The token is returned only here: the store keeps the SHA-256 of its secret.
    The key and its ``keys.create`` trail entry are written in one transaction.
    """
    check_name(project, "project")
    _check_role(role)
    if name is not None:
        _check_text(name, "key name", _NAME_MAX)
    _check_text(created_by, "created_by", _ACTOR_MAX)
    # 64 random bits: a collision is negligible, and the primary key would refuse one.
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(key_id, project, role, name, now(), created_by, None, None)
    with store.append_transaction() as conn:
        Raw(conn).run(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}, secret_hash) VALUES (?,?,?,?,?,?,?,?,?)",
            [*_key_values(key), _hash_secret(secret)],
        )
        insert_access(
            conn,
            [
                AccessEntry(
                    actor=created_by,
                    project=project,
                    action="keys.create",
                    resource=f"key:{key_id}",
                    source=source,
                    outcome="allow",
                    status=201,
                    reason=f"created a {role} key for project '{project}'",
                    at=key.created_at,
                )
            ],
        )
    return key, f"{TOKEN_PREFIX}{key_id}_{secret}"


def _key_values(key: ApiKey) -> list[Any]:
    return [
        key.key_id,
        key.project,
        key.role,
        key.name,
        key.created_at,
        key.created_by,
        key.revoked_at,
        key.revoked_by,
    ]


def revoke_key(
    store: Store,
    *,
    key_id: str,
    revoked_by: str,
    source: str = "cli",
    project: str | None = None,
) -> ApiKey:
    """Revoke a key from now on; return it as revoked.

    Revoking a revoked key changes nothing and appends nothing. With ``project``,
    a key of another project is reported as not found (an admin of one project
    learns nothing about another's keys).
    """
    _check_text(revoked_by, "revoked_by", _ACTOR_MAX)
    if not isinstance(key_id, str) or not _KEY_ID_RE.match(key_id):
        raise NotFound(
            f"API key id {key_id!r} is malformed: expected the 16 lowercase hex digits "
            "that 'mlledger keys list' shows"
        )
    with store.append_transaction() as conn:
        raw = Raw(conn)
        row = raw.one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", [key_id])
        key = None if row is None else _key(row)
        if key is None or (project is not None and key.project != project):
            where = "" if project is None else f" in project {project!r}"
            raise NotFound(f"no API key {key_id}{where}: see 'mlledger keys list'")
        if key.revoked_at is not None:
            return key
        revoked = replace(key, revoked_at=now(), revoked_by=revoked_by)
        raw.run(
            "UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE key_id = ?",
            [revoked.revoked_at, revoked_by, key_id],
        )
        insert_access(
            conn,
            [
                AccessEntry(
                    actor=revoked_by,
                    project=key.project,
                    action="keys.revoke",
                    resource=f"key:{key_id}",
                    source=source,
                    outcome="allow",
                    status=200,
                    reason=f"revoked a {key.role} key for project '{key.project}'",
                    at=revoked.revoked_at,
                )
            ],
        )
    return revoked


def list_keys(
    store: Store, *, project: str | None = None, include_revoked: bool = True
) -> list[ApiKey]:
    """Keys (of ``project``, or of every project), oldest first; never secrets or hashes."""
    sql = f"SELECT {_KEY_COLUMNS} FROM api_keys"
    clauses, params = [], []
    if project is not None:
        clauses.append("project = ?")
        params.append(check_name(project, "project"))
    if not include_revoked:
        clauses.append("revoked_at IS NULL")
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY created_at, key_id"
    with store.read() as conn:
        return [_key(row) for row in Raw(conn).all(sql, params)]


def claimed_key_id(token: str | None) -> str | None:
    """The key id a well-formed token names, unverified (for the trail's actor); else None."""
    parsed = _parse(token)
    return None if parsed is None else parsed[0]


def _parse(token: str | None) -> tuple[str, str] | None:
    if not isinstance(token, str):
        return None
    match = _TOKEN_RE.match(token)
    return None if match is None else (match.group(1), match.group(2))


def verify_token(store: Store, token: str | None) -> ApiKey | None:
    """The key a token belongs to, or None (missing, malformed, unknown, wrong secret).

    A revoked key is returned, with ``revoked_at`` set, so the caller can say so.
    One read by primary key.
    """
    parsed = _parse(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    with store.read() as conn:
        row = Raw(conn).one(
            f"SELECT {_KEY_COLUMNS}, secret_hash FROM api_keys WHERE key_id = ?", [key_id]
        )
    if row is None or not hmac.compare_digest(row[-1], _hash_secret(secret)):
        return None
    return _key(row[:-1])


# --- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Whether a request may go on, the HTTP status to answer, and why."""

    allowed: bool
    status: int
    reason: str


def decide(key: ApiKey | None, *, project: str, permission: str, had_token: bool) -> Decision:
    """Decide whether ``key`` may use ``permission`` on ``project``.

    ``had_token`` tells "no key sent" (401) from "a key that verified to nothing" (401,
    another reason). A revoked key is refused with 401; a key of another project, or
    whose role lacks the permission, with 403.
    """
    if permission not in PERMISSIONS:
        raise LedgerError(
            f"permission {permission!r} is not a permission: expected one of "
            f"{', '.join(PERMISSIONS)}"
        )
    if key is None:
        if not had_token:
            return Decision(False, 401, "no API key: send 'Authorization: Bearer <key>'")
        return Decision(False, 401, "unknown or malformed API key")
    if key.revoked_at is not None:
        return Decision(False, 401, f"API key {key.key_id} was revoked at {key.revoked_at}")
    if key.project != project:
        return Decision(
            False, 403, f"key {key.key_id} is for project '{key.project}', not '{project}'"
        )
    if permission not in key.permissions:
        able = ", ".join(role for role, allowed in ROLES.items() if permission in allowed)
        return Decision(
            False,
            403,
            f"role '{key.role}' does not allow '{permission}'; roles that do: {able}",
        )
    return Decision(True, 200, f"role {key.role} allows {permission}")


# --- the access trail -------------------------------------------------------------------------


@dataclass
class AccessEntry:
    """One access decision, for the trail.

    ``actor`` is a key id, ``"anonymous"`` or a local user name; ``resource`` names
    what was asked about and must never carry personal data: callers pass node ids
    or pseudonyms, never a record key or subject id as the client sent it (the trail
    cannot be erased). ``at`` defaults to the time of recording.
    """

    actor: str
    project: str | None
    action: str
    resource: str
    source: str
    outcome: str  # "allow" or "deny" (OUTCOMES), checked when recorded
    status: int
    reason: str
    trace_id: str | None = None
    at: str | None = None


def _trail_fields(seq: int, entry: AccessEntry) -> dict[str, Any]:
    """The hashed fields of ``entry`` at ``seq``, checked and normalised."""
    if entry.project is not None:
        _check_text(entry.project, "project", _PROJECT_MAX)
    if entry.outcome not in OUTCOMES:
        raise LedgerError(
            f"outcome {entry.outcome!r} is not an outcome: expected one of {', '.join(OUTCOMES)}"
        )
    status = entry.status
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise LedgerError(f"status {status!r} is not an HTTP status: expected 100 to 599")
    if entry.trace_id is not None:
        _check_text(entry.trace_id, "trace_id", _TRACE_MAX)
    return {
        "seq": seq,
        "at": now() if entry.at is None else to_timestamp(entry.at, "at"),
        "actor": _check_text(entry.actor, "actor", _ACTOR_MAX),
        "project": entry.project,
        "action": _check_text(entry.action, "action", _ACTION_MAX),
        "resource": _check_text(entry.resource, "resource", empty=True),
        "source": _check_text(entry.source, "source", _SOURCE_MAX, empty=True),
        "outcome": entry.outcome,
        "status": status,
        "reason": _check_text(entry.reason, "reason", empty=True),
        "trace_id": entry.trace_id,
    }


def trail_leaf_hash(fields: Mapping[str, Any]) -> bytes:
    """RFC 6962 leaf hash of a trail row: SHA-256(0x00 || RFC 8785 JSON of its fields)."""
    text, _ = canonical_text({name: fields[name] for name in TRAIL_FIELDS})
    return leaf_hash(text.encode("utf-8"))


def insert_access(conn: Connection, entries: Sequence[AccessEntry]) -> list[int]:
    """Append ``entries`` to the trail on ``conn``; return their sequence numbers.

    ``conn`` must be an append transaction (``Store.append_transaction``): the lock is
    what keeps the numbers gap-free and committed in order.
    """
    if not entries:
        return []
    raw = Raw(conn)
    last = raw.scalar("SELECT MAX(seq) FROM access_trail")
    first = 0 if last is None else int(last) + 1
    rows = []
    for offset, entry in enumerate(entries):
        fields = _trail_fields(first + offset, entry)
        rows.append([*(fields[name] for name in TRAIL_FIELDS), trail_leaf_hash(fields)])
    raw.many(_INSERT_TRAIL, rows)
    # The trail's own Merkle tree grows in the same transaction.
    StoredTree(conn, TRAIL).append(first, [row[-1] for row in rows])
    return [first + offset for offset in range(len(rows))]


def record_access(store: Store, entries: Sequence[AccessEntry]) -> list[int]:
    """Append ``entries`` to the trail in one transaction; return their sequence numbers
    (0-based, gap-free, in the order given)."""
    if not entries:
        return []
    with store.append_transaction() as conn:
        return insert_access(conn, entries)


class TrailRecorder:
    """Group commit for a server's trail entries: concurrent requests share one
    transaction (one fsync) instead of queueing for the write lock one by one.

    ``record`` returns only once its entry is committed, so an answered request
    always has its trail entry: the first caller to find no write in progress
    writes everything pending, the others wait for it.
    """

    def __init__(self, store: Store):
        self.store = store
        self._cond = threading.Condition()
        self._pending: list[tuple[int, AccessEntry]] = []
        self._next_ticket = 0
        self._done = 0  # tickets below this are settled
        self._writing = False
        self._failed: dict[int, BaseException] = {}
        self._seqs: dict[int, int] = {}

    def record(self, entry: AccessEntry) -> int:
        """Append one entry (with whatever else is pending); return its sequence number."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._pending.append((ticket, entry))
            while self._done <= ticket and self._writing:
                self._cond.wait()
            if self._done > ticket:
                return self._settled(ticket)
            self._writing = True
            batch, self._pending = self._pending, []
        error: BaseException | None = None
        seqs: list[int] = []
        try:
            seqs = record_access(self.store, [e for _, e in batch])
        except BaseException as exc:  # every waiter of this batch must hear of it
            error = exc
        with self._cond:
            for index, (t, _) in enumerate(batch):
                if error is not None:
                    self._failed[t] = error
                else:
                    self._seqs[t] = seqs[index]
            self._done = batch[-1][0] + 1
            self._writing = False
            self._cond.notify_all()
            return self._settled(ticket)

    def _settled(self, ticket: int) -> int:
        error = self._failed.pop(ticket, None)
        if error is not None:
            raise error
        return self._seqs.pop(ticket)


def read_trail(
    store: Store, *, project: str | None = None, since: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """Trail rows with ``seq >= since`` (of ``project``, or all), in order, at most
    ``limit``; each a dict of ``TRAIL_FIELDS`` and ``leaf_hash`` in hex."""
    for value, what in ((since, "since"), (limit, "limit")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise LedgerError(f"{what} {value!r} is not a whole number of 0 or more")
    sql = f"SELECT {_TRAIL_COLUMNS}, leaf_hash FROM access_trail WHERE seq >= ?"
    params: list[Any] = [since]
    if project is not None:
        sql += " AND project = ?"
        params.append(project)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    with store.read() as conn:
        rows = Raw(conn).all(sql, params)
    return [
        {**dict(zip(TRAIL_FIELDS, row[:-1], strict=True)), "leaf_hash": bytes(row[-1]).hex()}
        for row in rows
    ]
