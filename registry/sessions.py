"""Sessions of the web interface: an API key exchanged for an opaque session token.

A browser signs in by sending an API key once; the key is checked exactly as the API
checks it (``registry.auth``) and the browser receives a session token, 32 random
bytes, in a cookie. The store keeps only the token's SHA-256 (``web_sessions``), so
a copy of the database opens no session. A session ends at the first of: sign-out,
``idle`` seconds unused, ``absolute`` seconds after sign-in, and the revocation of
its key, which is looked up on every use as the API looks a key up on every request.

The CSRF token of a session is derived from its token (HMAC-SHA-256 under the token,
with a fixed label): nothing more is stored, and only the holder of the cookie can
compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from registry.auth import ApiKey
from registry.store.raw import Raw
from registry.timeutil import FORMAT, format_time

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from registry.store import Store

#: A session token as the cookie carries it: 43 base64url characters (32 bytes).
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_COLUMNS = "token_hash, key_id, project, created_at, seen_at, expires_at"
_KEY_COLUMNS = "key_id, project, role, name, created_at, created_by, revoked_at, revoked_by"
#: ``seen_at`` is written again only when older than this: a page view is a read, and
#: idle expiry needs no finer grain.
TOUCH_EVERY = timedelta(seconds=60)
_CSRF_LABEL = b"mlledger web csrf v1"


@dataclass(frozen=True)
class Limits:
    """How long a session lasts: ``idle`` seconds unused, ``absolute`` in all."""

    idle: float
    absolute: float


@dataclass(frozen=True)
class WebSession:
    """A session as stored (never its token), with the key it acts for."""

    token_hash: str
    key: ApiKey
    created_at: str
    seen_at: str
    expires_at: str

    @property
    def project(self) -> str:
        return self.key.project


@dataclass(frozen=True)
class Checked:
    """The outcome of presenting a session token: the session, or why it was refused
    (``reason``; ``key_id`` the key it acted for, when known)."""

    session: WebSession | None
    reason: str
    key_id: str | None = None


def token_hash(token: str) -> str:
    """The SHA-256 (hex) the store keeps of a session token."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token of the session whose token is ``token``."""
    return hmac.new(token.encode("ascii"), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_matches(token: str, sent: str | None) -> bool:
    """Whether ``sent`` is the CSRF token of the session ``token`` (constant time)."""
    if not isinstance(sent, str) or len(sent) != 64:
        return False
    return hmac.compare_digest(csrf_token(token).encode("ascii"), sent.encode("ascii", "replace"))


def well_formed(token: str | None) -> bool:
    """Whether ``token`` has a session token's form (checked before any lookup)."""
    return isinstance(token, str) and _TOKEN_RE.match(token) is not None


def _stamp(moment: datetime) -> str:
    return format_time(moment)


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, FORMAT).replace(tzinfo=UTC)


@contextmanager
def _writing(store: Store) -> Iterator[Connection]:
    """A transaction that writes sessions. PostgreSQL: a plain transaction, never
    behind the log's append lock (a sign-in must not wait for a long append); SQLite
    has one writer per file, so it queues as the log's writers do."""
    if store.dialect == "postgresql":
        with store.read() as conn:
            yield conn
    else:
        with store.append_transaction() as conn:
            yield conn


def start(
    store: Store, key: ApiKey, limits: Limits, *, at: datetime | None = None
) -> tuple[WebSession, str]:
    """Open a session for ``key`` (verified and not revoked by the caller); return it
    and its token, which exists only in this answer. Sessions past their limits,
    of any key, are deleted in the same transaction, so the table holds only live
    ones."""
    moment = at or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    session = WebSession(
        token_hash=token_hash(token),
        key=key,
        created_at=_stamp(moment),
        seen_at=_stamp(moment),
        expires_at=_stamp(moment + timedelta(seconds=limits.absolute)),
    )
    with _writing(store) as conn:
        _purge(conn, moment, limits)
        Raw(conn).run(
            f"INSERT INTO web_sessions ({_COLUMNS}) VALUES (?,?,?,?,?,?)",
            [
                session.token_hash,
                key.key_id,
                key.project,
                session.created_at,
                session.seen_at,
                session.expires_at,
            ],
        )
    return session, token


def _purge(conn: Connection, moment: datetime, limits: Limits) -> None:
    idle_since = _stamp(moment - timedelta(seconds=limits.idle))
    Raw(conn).run(
        "DELETE FROM web_sessions WHERE expires_at <= ? OR seen_at <= ?",
        [_stamp(moment), idle_since],
    )


def check(
    store: Store,
    token: str | None,
    limits: Limits,
    *,
    at: datetime | None = None,
    renew: bool = True,
) -> Checked:
    """The live session of ``token``, its key looked up now, ``seen_at`` renewed (at
    most once per ``TOUCH_EVERY``; never with ``renew`` false: a page's own polling is
    not use, or an open tab would keep its session for good); or why there is none. A
    session found expired, or whose key was revoked, is deleted."""
    if not well_formed(token):
        return Checked(None, "malformed session token")
    assert token is not None
    moment = at or datetime.now(UTC)
    digest = token_hash(token)
    with store.read() as conn:
        row = Raw(conn).one(
            f"SELECT s.token_hash, s.key_id, s.project, s.created_at, s.seen_at, s.expires_at, "
            f"{', '.join('k.' + c for c in _KEY_COLUMNS.split(', '))} "
            "FROM web_sessions s JOIN api_keys k ON k.key_id = s.key_id WHERE s.token_hash = ?",
            [digest],
        )
    if row is None:
        return Checked(None, "unknown or ended session: sign in again")
    key = ApiKey(*row[6:])
    session = WebSession(row[0], key, row[3], row[4], row[5])
    reason = None
    if key.revoked_at is not None:
        reason = f"API key {key.key_id} was revoked at {key.revoked_at}: sign in with another key"
    elif _parse(session.expires_at) <= moment:
        reason = f"the session reached its limit of {_hours(limits.absolute)}: sign in again"
    elif _parse(session.seen_at) + timedelta(seconds=limits.idle) <= moment:
        reason = f"the session was unused for {_hours(limits.idle)}: sign in again"
    if reason is not None:
        end(store, token)
        return Checked(None, reason, key.key_id)
    if renew and _parse(session.seen_at) + TOUCH_EVERY <= moment:
        seen = _stamp(moment)
        with _writing(store) as conn:
            Raw(conn).run(
                "UPDATE web_sessions SET seen_at = ? WHERE token_hash = ?", [seen, digest]
            )
        session = WebSession(session.token_hash, key, session.created_at, seen, session.expires_at)
    return Checked(session, f"role {key.role} signed in")


def _hours(seconds: float) -> str:
    if seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour" + ("" if hours == 1 else "s")
    return f"{seconds:g} seconds"


def end(store: Store, token: str) -> bool:
    """End the session of ``token``; whether there was one."""
    if not well_formed(token):
        return False
    with _writing(store) as conn:
        result = Raw(conn).run("DELETE FROM web_sessions WHERE token_hash = ?", [token_hash(token)])
    return bool(getattr(result, "rowcount", 0))


def live(store: Store, *, key_id: str | None = None) -> list[WebSession]:
    """The sessions stored (of ``key_id``), oldest first: for tests and operators."""
    sql = (
        f"SELECT s.token_hash, s.created_at, s.seen_at, s.expires_at, "
        f"{', '.join('k.' + c for c in _KEY_COLUMNS.split(', '))} "
        "FROM web_sessions s JOIN api_keys k ON k.key_id = s.key_id"
    )
    params: list[str] = []
    if key_id is not None:
        sql += " WHERE s.key_id = ?"
        params.append(key_id)
    sql += " ORDER BY s.created_at, s.token_hash"
    with store.read() as conn:
        rows = Raw(conn).all(sql, params)
    return [WebSession(r[0], ApiKey(*r[4:]), r[1], r[2], r[3]) for r in rows]
