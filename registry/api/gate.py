"""The gate: every request is checked before its body is read.

A pure ASGI middleware in front of the routes. In order, for each HTTP request:

1. **URL checks** (no key needed, nothing recorded): a control character (NUL
   included) anywhere in the path or query string is refused with 400, naming the
   parameter; so is a credential in the query string (``api_key``, ``token``, ...):
   keys travel in the ``Authorization`` header only, never in URLs, logs or spans.
2. **Authentication and authorization** of the route's requirement (the
   ``allow``/``allow_own`` dependency of ``registry.api.deps``): a request without
   a valid key gets 401, a key of another project or role 403, before a byte of the
   body is read, and the decision goes to the access trail.
3. **Failed authentication is rate limited per client address**
   (``FailureLimiter``): the first failures of each address in a window get a trail
   entry of their own, the rest are answered 429 and counted, and the window ends
   with one summary entry, so an anonymous flood costs bounded durable bytes and
   still shows in the trail.
4. **Compressed bodies**: a ``POST``, ``PUT`` or ``PATCH`` body sent with
   ``Content-Encoding: gzip`` (or ``x-gzip``) or ``deflate`` (zlib-wrapped or raw) is
   decoded as it streams in, so the routes see plain JSON; any other coding gets 415
   naming it, and a body that is not what its coding says gets 400.
5. **The body limit** (``MLLEDGER_MAX_BODY_BYTES``, 16 MiB by default): a declared
   ``Content-Length`` above it gets 413 at once; a body that grows past it while
   streaming gets 413 and is not parsed. A compressed body is counted twice, as sent
   and as it decompresses, and decompression stops one byte past the limit: a small
   body that would inflate to gigabytes (a compression bomb) costs at most about
   twice the limit in memory (what was decoded so far and the piece being decoded).

Trail entries never hold a URL as sent: ``trail_resource`` normalises it
(identifiers of records and subjects replaced, secrets dropped, control and
non-ASCII characters percent-encoded, long resources cut with a hash of the whole).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_to_bytes

from fastapi import APIRouter
from fastapi.routing import APIRoute
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry import auth
from registry.api.problems import KINDS, MEDIA_TYPE, PREFIX
from registry.canonical import printable
from registry.ids import check_name, redact_people
from registry.timeutil import now
from registry.tracing import current_trace_id
from registry.wording import counted

log = logging.getLogger("mlledger.api")

DEFAULT_BODY_LIMIT = 16 * 1024 * 1024
#: Query parameters that carry credentials: refused, and dropped before any record.
SECRET_PARAMS = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "key",
        "token",
        "access_token",
        "auth",
        "authorization",
        "bearer",
        "password",
        "secret",
        "client_secret",
    }
)
#: Longest resource kept in a trail entry; a longer one is cut and ends with a hash.
RESOURCE_MAX = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"mll_[0-9A-Za-z_\-]+")
_SAFE = "/:@?&=,+;-._~!$'()*[]"
PRINCIPAL = "mlledger.principal"
#: Scope key of the matched route's path template (``registry.tracing`` names spans by it).
ROUTE = "mlledger.route"


# --- who is asking, and what a route requires -----------------------------------------------


@dataclass(frozen=True)
class Principal:
    """An allowed caller: its key, the project it acts on, and its name in the log."""

    key: auth.ApiKey
    project: str

    @property
    def actor(self) -> str:
        return f"key:{self.key.key_id}"

    def actor_for(self, declared: str | None) -> str:
        """The actor stored on events: what the client declared, with the key that sent it,
        so every change names the credential that made it."""
        if not declared or declared == self.actor:
            return self.actor
        return f"{declared[:250]} (key:{self.key.key_id})"


@dataclass(frozen=True)
class Requirement:
    """The permission a route needs, the trail action it records, and whether the project
    is the key's own (routes without ``{project}`` in their path)."""

    permission: str
    action: str
    own: bool = False


Route = tuple[re.Pattern[str], frozenset[str], Requirement | None, str]


def route_table(routers: Sequence[tuple[str, APIRouter]]) -> list[Route]:
    """(path pattern, methods, requirement, path template) of every route of
    ``routers``."""
    table = []
    for prefix, router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute):
                pattern, template, _ = compile_path(prefix + route.path)
                methods = frozenset(route.methods or ())
                table.append((pattern, methods, requirement_of(route), template))
    return table


def requirement_of(route: Any) -> Requirement | None:
    """The requirement of a FastAPI route's gate dependency, or None (an open route)."""
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        current = stack.pop()
        found = getattr(current.call, "requirement", None)
        if isinstance(found, Requirement):
            return found
        stack.extend(current.dependencies)
    return None


# --- trail resources ---------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with record and subject ids and API tokens replaced (for logs and trail)."""
    return _TOKEN.sub("mll_[redacted]", redact_people(text))


def trail_resource(path: str, query: str) -> str:
    """What the trail keeps of a request's URL: the path and the query without secrets,
    identifiers of people replaced, percent-encoded so any store can hold it, at most
    ``RESOURCE_MAX`` characters (a longer one is cut and ends with ``#sha256=`` of the
    whole normalised text)."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in
             SECRET_PARAMS]  # fmt: skip
    text = redact(unquote(path))
    if pairs:
        text += "?" + "&".join(f"{k}={v}" for k, v in ((redact(k), redact(v)) for k, v in pairs))
    text = quote(text, safe=_SAFE)
    if len(text) <= RESOURCE_MAX:
        return text
    digest = hashlib.sha256(text.encode("ascii")).hexdigest()
    return f"{text[: RESOURCE_MAX - 80]}...#sha256={digest}"


def safe_project(value: Any) -> str | None:
    """A project name from a path, if it is one (else None: the trail keeps no junk)."""
    try:
        return check_name(value, "project") if isinstance(value, str) else None
    except ValueError:
        return None


class _RedactedAccessLog(logging.Filter):
    """Rewrites uvicorn's access log lines: the path with secrets dropped and the
    identifiers of people replaced, as the trail keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            record.args = (*args[:2], trail_resource(path, query), *args[3:])
        return True


def redact_access_log() -> None:
    """Install the access-log filter on uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _RedactedAccessLog) for f in logger.filters):
        logger.addFilter(_RedactedAccessLog())


# --- rate limiting of failed authentication ----------------------------------------------


@dataclass
class _Window:
    started: float
    started_at: str
    recorded: int = 0
    per_address: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    others: int = 0  # suppressed from addresses beyond the table's bound


class FailureLimiter:
    """Bounds the trail entries failed authentication can cause.

    In each window of ``window`` seconds, each client address gets at most
    ``per_address`` entries of its own and all addresses together at most
    ``total``; failures beyond are answered 429 and counted (for at most
    ``addresses`` addresses, the rest in one count). When the window ends, one
    ``auth.suppressed`` entry says how many were suppressed, from how many
    addresses, and the ten busiest.
    """

    def __init__(
        self,
        *,
        window: float = 60.0,
        per_address: int = 20,
        total: int = 200,
        addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.window = window
        self.per_address = per_address
        self.total = total
        self.addresses = addresses
        self.clock = clock
        self._lock = threading.Lock()
        self._current = _Window(clock(), now())

    def admit(self, source: str) -> tuple[bool, auth.AccessEntry | None]:
        """Count a failed authentication from ``source``: whether it gets a trail entry of
        its own, and the summary of a window that just ended (to record), if any."""
        with self._lock:
            summary = self._roll()
            window = self._current
            mine = window.per_address.get(source, 0)
            room = source in window.per_address or len(window.per_address) < self.addresses
            if mine < self.per_address and window.recorded < self.total and room:
                window.per_address[source] = mine + 1
                window.recorded += 1
                return True, summary
            if source in window.suppressed or len(window.suppressed) < self.addresses:
                window.suppressed[source] = window.suppressed.get(source, 0) + 1
            else:
                window.others += 1
            return False, summary

    def due(self) -> auth.AccessEntry | None:
        """The summary of a window that has ended, if any (to record now)."""
        with self._lock:
            return self._roll()

    def flush(self) -> auth.AccessEntry | None:
        """End the current window now; its summary, if anything was suppressed."""
        with self._lock:
            ended, self._current = self._current, _Window(self.clock(), now())
            return _summary(ended)

    def _roll(self) -> auth.AccessEntry | None:
        if self.clock() - self._current.started < self.window:
            return None
        ended, self._current = self._current, _Window(self.clock(), now())
        return _summary(ended)


def _summary(window: _Window) -> auth.AccessEntry | None:
    count = sum(window.suppressed.values()) + window.others
    if not count:
        return None
    busiest = sorted(window.suppressed.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    listed = ", ".join(f"{address} ({n})" for address, n in busiest)
    addresses = len(window.suppressed) + (1 if window.others else 0)
    return auth.AccessEntry(
        actor="anonymous",
        project=None,
        action="auth.suppressed",
        resource="",
        source="gate",
        outcome="deny",
        status=429,
        reason=(
            f"{counted(count, 'failed authentication')} from "
            f"{counted(addresses, 'address', 'addresses')} answered 429 "
            f"without an entry each, from {window.started_at} to {now()}; busiest: {listed}"
        ),
    )


# --- the middleware ----------------------------------------------------------------------


class _TooLarge(HTTPException):
    """Raised by the body reader: FastAPI passes an HTTPException on (any other error
    while reading a body becomes its own 400), and the problem handlers answer 413."""

    def __init__(self, limit: int):
        super().__init__(413, _too_large_detail(limit))


def _too_large_detail(limit: int) -> str:
    return (
        f"the request body is larger than {limit} bytes (MLLEDGER_MAX_BODY_BYTES): "
        "send smaller batches"
    )


class Gate:
    """The ASGI middleware described in the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routers: Sequence[tuple[str, APIRouter]],
        body_limit: int = DEFAULT_BODY_LIMIT,
        limiter: FailureLimiter | None = None,
    ):
        """``routers``: each router the app includes, with the prefix it is included
        under; their routes' requirements are what the gate enforces."""
        self.app = app
        self.body_limit = body_limit
        self.limiter = limiter or FailureLimiter()
        self._table = route_table(routers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        _keep_encoded_segments(scope)
        requirement, path_params = self._match(scope)
        refusal = url_refusal(scope)
        if refusal is not None:
            await _problem(send, scope, *refusal)
            return
        if requirement is not None:
            try:
                answer = await run_in_threadpool(self._admit, scope, requirement, path_params)
            except SQLAlchemyError:
                # Outside the app's own error handlers: answer as they would.
                log.exception("the gate could not use the store")
                answer = ("unavailable", "the store cannot be used; see the server log", {})
            if isinstance(answer, tuple):
                await _problem(send, scope, *answer)
                return
            scope[PRINCIPAL] = answer
        coding = None
        if scope.get("method") in BODY_METHODS:
            found = _coding(scope)
            if isinstance(found, tuple):
                await _problem(send, scope, *found)
                return
            coding = found
        length = _content_length(scope)
        if length is not None and length > self.body_limit:
            await _problem(send, scope, *self._too_large())
            return
        if length is None and scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        if coding is not None:
            # The routes see the decoded body: without its coding and its length.
            scope = dict(scope)
            scope["headers"] = [
                (name, value)
                for name, value in scope.get("headers", ())
                if name.lower() not in (b"content-encoding", b"content-length")
            ]
        await self._limited(scope, receive, send, coding)

    # --- routing ------------------------------------------------------------------------

    def _match(self, scope: Scope) -> tuple[Requirement | None, dict[str, Any]]:
        """The requirement of the route a request is for, with its path parameters (None
        for an open route, or a path or method no route takes: the app answers those).
        The route's template goes into the scope (``ROUTE``) for the request's span."""
        path = str(scope.get("path", ""))
        method = str(scope.get("method", "GET"))
        for pattern, methods, need, template in self._table:
            found = pattern.match(path)
            if found is not None and (method in methods or (method == "HEAD" and "GET" in methods)):
                scope[ROUTE] = template
                return need, found.groupdict()
        return None, {}

    # --- deciding -----------------------------------------------------------------------

    def _admit(self, scope: Scope, need: Requirement, path_params: dict[str, Any]) -> Any:
        """The Principal, or ``(slug, detail, headers)`` of the refusal; records the
        decision in the trail (failed authentication within the limiter's bounds)."""
        app = scope["app"]
        ledger = app.state.ledger
        recorder: auth.TrailRecorder = app.state.trail
        token = _bearer(scope)
        key = auth.verify_token(ledger.store, token) if token else None
        raw_project = key.project if (need.own and key) else path_params.get("project")
        project = safe_project(raw_project)
        shown = project if project is not None else trail_resource(str(raw_project or ""), "")
        decision = auth.decide(
            key, project=shown, permission=need.permission, had_token=token is not None
        )
        source = _source(scope)
        entry = auth.AccessEntry(
            actor=key.key_id if key is not None else "anonymous",
            project=project,
            action=need.action,
            resource=trail_resource(str(scope.get("path", "")), _query(scope)),
            source=source,
            outcome="allow" if decision.allowed else "deny",
            status=decision.status,
            reason=decision.reason[:500],
            trace_id=current_trace_id(),
        )
        if decision.status == 401:
            record, summary = self.limiter.admit(source)
            if summary is not None:
                recorder.record(summary)
            if not record:
                return (
                    "too-many-requests",
                    "too many failed authentications from this address: wait, then send "
                    "'Authorization: Bearer <key>' with a valid key",
                    {"Retry-After": str(int(self.limiter.window))},
                )
        else:
            summary = self.limiter.due()
            if summary is not None:
                recorder.record(summary)
        recorder.record(entry)
        if not decision.allowed or key is None or project is None:
            slug = "unauthenticated" if decision.status == 401 else "forbidden"
            headers = {"WWW-Authenticate": "Bearer"} if decision.status == 401 else {}
            return slug, decision.reason, headers
        return Principal(key, project)

    def _too_large(self) -> tuple[str, str, dict[str, str]]:
        return "payload-too-large", _too_large_detail(self.body_limit), {}

    # --- the body ------------------------------------------------------------------------

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, coding: str | None = None
    ) -> None:
        received = sent = 0
        started = False
        decoder = None if coding is None else _Decoder(coding, self.body_limit)

        async def counted() -> Message:
            nonlocal received, sent
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if decoder is not None:
                    # The bytes as sent count too: a stream of empty compressed
                    # blocks must not run on without end.
                    sent += len(body)
                    if sent > self.body_limit:
                        raise _TooLarge(self.body_limit)
                    body = decoder.feed(body, final=not message.get("more_body", False))
                    message = {**message, "body": body}
                received += len(body)
                if received > self.body_limit:
                    raise _TooLarge(self.body_limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await _problem(send, scope, *self._too_large())
        except _Undecodable as exc:
            if started:
                raise
            await _problem(send, scope, "invalid-input", str(exc.detail), {})


#: Methods whose routes read a request body (the only ones whose coding matters).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: The content codings a request body may arrive in, and the names they go by.
CODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


def _coding(scope: Scope) -> str | tuple[str, str, dict[str, str]] | None:
    """The coding to decode a request body from (None: as sent), or the 415 refusal of
    a coding the gate does not decode."""
    lines = [
        v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"content-encoding"
    ]
    if not lines:
        return None
    # Repeated lines are one list (RFC 9110 5.3).
    value = ", ".join(lines)
    codings = [c.strip().lower() for c in value.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    unknown = [c for c in codings if c not in CODINGS]
    if unknown or len(codings) > 1:
        named = repr(printable(unknown[0] if unknown else value)[:64])
        return (
            "unsupported-media-type",
            f"Content-Encoding {named} is not decoded here: send the body as is, or "
            "compressed once with gzip or deflate",
            {"Accept-Encoding": "gzip, deflate"},
        )
    return CODINGS[codings[0]]


class _Undecodable(HTTPException):
    """A request body that is not what its ``Content-Encoding`` says: 400."""

    def __init__(self, coding: str, why: str):
        super().__init__(
            400,
            f"the request body is not valid {coding} data ({why}): expected the body "
            f"compressed as its Content-Encoding says, or sent without one",
        )


class _Decoder:
    """A body's coding undone as its chunks arrive, never making more than one byte past
    ``limit`` (the caller then answers 413). gzip may hold several members one after
    another (RFC 1952); deflate is the zlib format (RFC 1950) or, as some clients send
    it, raw deflate (RFC 1951)."""

    def __init__(self, coding: str, limit: int):
        self.coding, self.limit = coding, limit
        self.made = 0
        self._stream: Any = None
        self._held = b""  # the first byte of a deflate body, until its header is known

    def feed(self, data: bytes, *, final: bool) -> bytes:
        if self._held:
            data, self._held = self._held + data, b""
        out: list[bytes] = []
        try:
            while data:
                if self._stream is None or self._stream.eof:
                    if self._stream is not None and self.coding != "gzip":
                        raise _Undecodable(self.coding, "bytes after the end of the stream")
                    if self.coding == "deflate" and len(data) < 2 and not final:
                        self._held = data
                        break
                    self._stream = zlib.decompressobj(self._wbits(data))
                room = self.limit - self.made + 1
                chunk = self._stream.decompress(data, room)
                self.made += len(chunk)
                if self.made > self.limit:
                    raise _TooLarge(self.limit)
                out.append(chunk)
                # Not at its end, the stream took every byte (it stopped short of ``room``).
                data = self._stream.unused_data if self._stream.eof else b""
        except zlib.error as exc:
            raise _Undecodable(self.coding, str(exc)) from None
        if final and self.made == 0 and self._stream is None:
            return b""  # an empty body stays empty
        if final and (self._stream is None or not self._stream.eof):
            raise _Undecodable(self.coding, "it ends before its compressed stream does")
        return b"".join(out)

    def _wbits(self, start: bytes) -> int:
        if self.coding == "gzip":
            return 16 + zlib.MAX_WBITS
        header = int.from_bytes(start[:2], "big")
        zlib_wrapped = len(start) >= 2 and start[0] & 0x0F == 8 and header % 31 == 0
        return zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS


#: Paths whose segments may hold an encoded ``/`` (Marquez's namespaces and names, such
#: as ``s3:%2F%2Fbucket``): routed on the segments as sent.
MARQUEZ_PREFIXES = ("/api/v1/namespaces/",)


def _keep_encoded_segments(scope: Scope) -> None:
    """For a request under ``MARQUEZ_PREFIXES``, rewrite the scope's path (in place: the
    middleware around the gate reads the route it finds there) with each segment
    decoded but for ``%`` and ``/`` (as ``%25`` and ``%2F``), so that a name holding
    ``/`` stays one segment; the routes decode them (``unquote``). Other paths, and a
    path that is not UTF-8 (refused by ``url_refusal``), are left alone."""
    path = str(scope.get("path", ""))
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes) or not path.startswith(MARQUEZ_PREFIXES):
        return
    sent = raw.decode("latin-1")
    try:
        if unquote(sent, errors="strict") != path:
            return  # not the path routed (a prefix was taken off): leave it be
        segments = [
            unquote(segment, errors="strict").replace("%", "%25").replace("/", "%2F")
            for segment in sent.split("/")
        ]
    except UnicodeDecodeError:
        return
    scope["path"] = "/".join(segments)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _bearer(scope: Scope) -> str | None:
    value = _headers(scope).get("authorization")
    if value is None:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return ""  # a header was sent: "unknown or malformed", not "no key"
    return credentials.strip()


def _query(scope: Scope) -> str:
    return bytes(scope.get("query_string", b"")).decode("latin-1")


def _source(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0])[:300] if client else "unknown"


def _content_length(scope: Scope) -> int | None:
    value = _headers(scope).get("content-length")
    if value is None:
        return None
    try:
        return max(int(value), 0)
    except ValueError:
        return None


def _may_have_body(scope: Scope) -> bool:
    headers = _headers(scope)
    return "transfer-encoding" in headers or (_content_length(scope) or 0) > 0


def url_refusal(scope: Scope) -> tuple[str, str, dict[str, str]] | None:
    """Why the URL itself is refused (control characters, credentials), or None."""
    path = str(scope.get("path", ""))
    raw = scope.get("raw_path")
    if isinstance(raw, bytes):
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return (
                "invalid-input",
                "the path is not UTF-8 once percent-decoded: expected UTF-8 text",
                {},
            )
    if _CONTROL.search(path):
        return (
            "invalid-input",
            "the path holds a control character (such as NUL): expected printable text",
            {},
        )
    query = _query(scope)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return "invalid-input", "the query string is not UTF-8: expected UTF-8 text", {}
    for name, value in pairs:
        if name.lower() in SECRET_PARAMS:
            return (
                "invalid-input",
                f"query parameter {name!r} would carry a credential in the URL, where proxies, "
                "logs and browser histories keep it: send 'Authorization: Bearer <key>' "
                "instead (the request was not processed)",
                {},
            )
        if _CONTROL.search(name) or _CONTROL.search(value):
            return (
                "invalid-input",
                f"query parameter {redact(name)[:64]!r} holds a control character (such as "
                "NUL): expected printable text",
                {},
            )
    return None


async def _problem(
    send: Send, scope: Scope, slug: str, detail: str, headers: dict[str, str]
) -> None:
    status, title = KINDS[slug]
    body = json.dumps(
        {
            "type": PREFIX + slug,
            "title": title,
            "status": status,
            "detail": detail,
            "instance": trail_resource(str(scope.get("path", "")), ""),
        }
    ).encode("utf-8")
    raw_headers = [
        (b"content-type", MEDIA_TYPE.encode("ascii")),
        (b"content-length", str(len(body)).encode("ascii")),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    if _may_have_body(scope):
        # The body was not read: the connection cannot be reused for another request.
        raw_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
