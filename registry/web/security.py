"""What every response of the web interface carries, and the checks of its forms.

- **Headers** (``WebHeaders``, an ASGI middleware): a strict Content-Security-Policy
  (scripts, styles, images and requests from this server only, no inline script or
  style, no framing, forms posting here only), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: same-origin`` (the address of a page never leaves the site;
  ``no-referrer`` would make browsers send ``Origin: null`` with this site's own
  forms, which the origin check must refuse), and ``Cache-Control: no-store`` on everything but
  the static assets, on every response outside the API (``/api/``) and its
  documents, the gate's refusals and error pages included.
- **Cookies**: the session cookie and the sign-in form's cookie are HttpOnly,
  SameSite=Strict, Path=/, and Secure when the request came over TLS.
- **Forms**: a state-changing form is taken only from this site: its ``Origin`` (or
  ``Referer``), when the browser sends one, names this host, and it carries the
  token its page was given, compared in constant time.
- **Where to go after signing in**: only a path of this site (``local_path``).
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SESSION_COOKIE = "mlledger_session"
#: The sign-in form's own token (login CSRF): set with the form, sent back with it.
SIGN_IN_COOKIE = "mlledger_sign_in"
#: Paths the web interface leaves to the API: its routes and its documents.
API_PATHS = ("/api/", "/openapi.json", "/docs", "/redoc")
STATIC = "/static/"
#: The largest form body the web interface reads (a key and two tokens fit many times).
FORM_LIMIT = 8192
_NEXT_MAX = 512
_UNSAFE_NEXT = re.compile(r"[\x00-\x20\x7f\\]")


def is_web_path(path: str) -> bool:
    """Whether ``path`` is the web interface's (not the API's or its documents')."""
    return not (path.startswith(API_PATHS) or path in ("/api", "/openapi.json"))


def security_headers(static: bool = False) -> list[tuple[bytes, bytes]]:
    """The headers every response of a web interface path carries."""
    return [
        (b"content-security-policy", CSP.encode("ascii")),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cache-control", b"no-cache" if static else b"no-store"),
    ]


class WebHeaders:
    """Adds the security headers to every response of a web interface path."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_web_path(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(STATIC)

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in _SET_HERE
                ]
                headers += security_headers(static)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, headed)


_SET_HERE = frozenset(
    {
        b"content-security-policy",
        b"x-content-type-options",
        b"referrer-policy",
        b"x-frame-options",
        b"cross-origin-opener-policy",
        b"cache-control",
    }
)


def over_tls(request: Request) -> bool:
    """Whether the request came over TLS (directly, or as a trusted proxy says:
    ``X-Forwarded-Proto`` of a proxy uvicorn believes: on 127.0.0.1, or at an address
    of ``FORWARDED_ALLOW_IPS``)."""
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """Set cookie ``name``: HttpOnly, SameSite=Strict, Path=/, Secure over TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=over_tls(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Tell the browser to forget cookie ``name``."""
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=over_tls(request)
    )


def new_form_token() -> str:
    """A random token for the sign-in form and its cookie."""
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, sent: str | None) -> bool:
    """Whether two tokens are present and equal (constant time)."""
    if not expected or not sent:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), sent.encode("utf-8"))


def foreign_origin(request: Request) -> str | None:
    """Why a form post does not come from this site (its ``Origin``, else its
    ``Referer``, names another host), or None. The host is compared, not the scheme:
    behind a proxy that terminates TLS the browser's ``https`` origin reaches the
    server as plain HTTP."""
    host = request.headers.get("host", "").lower()
    origin = request.headers.get("origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return f"the form was posted from another site ({origin[:100]!r}), not this one"
        return None
    referer = request.headers.get("referer")
    if referer is not None and urlsplit(referer).netloc.lower() != host:
        return "the form was posted from another site, not this one"
    return None


def local_path(value: str | None) -> str:
    """Where to go after signing in: ``value`` if it is a path of this site (one ``/``
    then not another, nothing a browser could read as another host), else ``/``."""
    if not value or len(value) > _NEXT_MAX or not value.startswith("/"):
        return "/"
    if value.startswith("//") or _UNSAFE_NEXT.search(value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


class FormTooLarge(Exception):
    """A form body over ``FORM_LIMIT`` bytes."""


class NotAForm(Exception):
    """A body that is not ``application/x-www-form-urlencoded`` UTF-8."""


async def read_form(
    request: Request,
    *,
    lists: frozenset[str] = frozenset(),
    max_fields: int = 20,
    limit: int = FORM_LIMIT,
) -> dict[str, str]:
    """The fields of an ``application/x-www-form-urlencoded`` body (the first of each
    name; every value of a name in ``lists``, one per line), read up to ``limit``
    bytes and ``max_fields`` fields."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise NotAForm(
            f"the body is {kind or 'untyped'}: expected application/x-www-form-urlencoded"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormTooLarge(f"the form is larger than {limit} bytes")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise NotAForm(
            f"the form is not UTF-8 form data of at most {max_fields} fields: expected "
            "name=value pairs"
        ) from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in lists and name in fields:
            fields[name] += "\n" + value
        else:
            fields.setdefault(name, value)
    return fields
