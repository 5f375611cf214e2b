"""API keys with per-project roles, access decisions, and the append-only access trail.

A key belongs to one project and has one role; a role is a set of permissions.
The token handed to a client, ``mll_<key_id>_<secret>``, is shown once: the
store keeps only the SHA-256 of the secret. Every decision the API makes (and
every key created or revoked) is written to the access trail (``audit.trail``,
whose names this module also offers), a table the database refuses to UPDATE or
DELETE, whose rows carry RFC 6962 leaf hashes under a Merkle tree of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from audit.trail import (
    ACTOR_MAX,
    OUTCOMES,
    TRAIL_FIELDS,
    AccessEntry,
    TrailRecorder,
    insert_access,
    read_trail,
    record_access,
    trail_leaf_hash,
)
from audit.trail import check_text as _check_text
from registry.errors import FieldError, NotFound
from registry.ids import check_name
from registry.roles import PERMISSIONS, ROLES
from registry.store.raw import Raw
from registry.timeutil import now

__all__ = [
    "OUTCOMES",
    "PERMISSIONS",
    "ROLES",
    "TRAIL_FIELDS",
    "AccessEntry",
    "ApiKey",
    "Decision",
    "TrailRecorder",
    "claimed_key_id",
    "create_key",
    "decide",
    "insert_access",
    "list_keys",
    "read_trail",
    "record_access",
    "revoke_key",
    "trail_leaf_hash",
    "verify_token",
]

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from registry.store import Store

TOKEN_PREFIX = "mll_"
# token_urlsafe(32) gives 43 characters; the bound keeps a hostile header from being
# hashed at any length.
_TOKEN_RE = re.compile(r"^mll_([0-9a-f]{16})_([A-Za-z0-9_-]{1,128})$")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")

_KEY_COLUMNS = "key_id, project, role, name, created_at, created_by, revoked_at, revoked_by"
# Column widths of the schema, checked here so that SQLite (which does not enforce
# them) and PostgreSQL (which does) refuse the same entries, with a message that helps.
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


def check_role(role: str) -> str:
    """``role`` if it is one of ``ROLES``; else LedgerError naming the roles."""
    if role not in ROLES:
        raise FieldError("role", f"role {role!r} is not a role: expected one of {', '.join(ROLES)}")
    return role


def _key(row: Sequence[Any]) -> ApiKey:
    """An ApiKey from a row of ``_KEY_COLUMNS``."""
    return ApiKey(*row)


def _record_key_change(
    conn: Connection,
    key: ApiKey,
    change: str,
    actor: str,
    source: str,
    status: int,
    what: str,
    at: str | None,
) -> None:
    """The access-trail entry of a key created or revoked (``keys.<change>``)."""
    insert_access(
        conn,
        [
            AccessEntry(
                actor=actor,
                project=key.project,
                action=f"keys.{change}",
                resource=f"key:{key.key_id}",
                source=source,
                outcome="allow",
                status=status,
                reason=f"{what} for project '{key.project}'",
                at=at,
            )
        ],
    )


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
    check_role(role)
    if name is not None:
        _check_text(name, "key name", _NAME_MAX)
    _check_text(created_by, "created_by", ACTOR_MAX)
    # 64 random bits: a collision is negligible, and the primary key would refuse one.
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(key_id, project, role, name, now(), created_by, None, None)
    with store.append_transaction() as conn:
        Raw(conn).run(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}, secret_hash) VALUES (?,?,?,?,?,?,?,?,?)",
            [*_key_values(key), _hash_secret(secret)],
        )
        _record_key_change(
            conn, key, "create", created_by, source, 201, f"created a {role} key", key.created_at
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
    _check_text(revoked_by, "revoked_by", ACTOR_MAX)
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
        _record_key_change(
            conn,
            key,
            "revoke",
            revoked_by,
            source,
            200,
            f"revoked a {key.role} key",
            revoked.revoked_at,
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
        raise FieldError(
            "permission",
            f"permission {permission!r} is not a permission: expected one of "
            f"{', '.join(PERMISSIONS)}",
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
