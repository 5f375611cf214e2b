"""The server's app: the HTTP API with the web interface beside it.

``create_app`` builds the API's app (``registry.api.app.create_app``) and registers
the web interface on it: its pages (``registry.web.pages``, left out of the OpenAPI
document), its static assets under ``/static/``, its error pages for paths outside
the API, and its security headers (``registry.web.security.WebHeaders``). The API
answers as before under ``/api/v1``; ``mlledger serve`` serves this app.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.api import app as api
from registry.api import gate
from registry.errors import LedgerError
from registry.ledger import Ledger

# ``personal`` and ``integrity`` register their pages on ``pages.router`` (their
# permissions in ``pages.ACCESS``).
from registry.web import entities, explorer, integrity, pages, personal, security  # noqa: F401

log = logging.getLogger("mlledger.web")

#: What the error pages say for the statuses the framework raises on its own.
_MESSAGES = {
    404: "There is no page at this address.",
    405: "This page does not take that method.",
    500: "Something went wrong on the server; what happened is in the server's log.",
}


def create_app(
    db: str | None = None, *, ledger: Ledger | None = None, checkpoints: bool | None = None
) -> FastAPI:
    """The API's app (``registry.api.app.create_app``, same arguments) with the web
    interface registered on it."""
    app = api.create_app(db, ledger=ledger, checkpoints=checkpoints)
    install(app)
    return app


def install(app: FastAPI) -> None:
    """Register the web interface on the API's ``app``."""
    app.include_router(pages.router)
    app.include_router(explorer.router)
    app.include_router(entities.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIRECTORY), name="static")
    http_handler = app.exception_handlers[StarletteHTTPException]
    ledger_handler = app.exception_handlers[LedgerError]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not security.is_web_path(request.url.path):
            return await _delegate(http_handler(request, exc))
        message = _MESSAGES.get(exc.status_code, str(exc.detail))
        return await run_in_threadpool(_error, request, exc.status_code, message)

    async def ledger_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LedgerError)
        if not security.is_web_path(request.url.path):
            return await _delegate(ledger_handler(request, exc))
        return await run_in_threadpool(_error, request, exc.status, str(exc))

    unexpected_handler = app.exception_handlers[Exception]

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Answered outside the middleware (by Starlette's last resort), so the
        # security headers are set here.
        if not security.is_web_path(request.url.path) or request.url.path in _JSON_CALLS:
            return await _delegate(unexpected_handler(request, exc))
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        answer = pages.error_page(request, 500, _MESSAGES[500])
        answer.headers.update(
            {name.decode(): value.decode() for name, value in security.security_headers()}
        )
        return answer

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(LedgerError, ledger_error)
    app.add_exception_handler(Exception, unexpected)
    app.add_middleware(_UrlRefusals)
    # Outermost: the headers go on the gate's refusals of web paths too.
    app.add_middleware(security.WebHeaders)


#: The interface's JSON calls: the gate's problem document is their answer to a bad URL.
_JSON_CALLS = frozenset({"/lineage/graph", "/lineage/expand"})


class _UrlRefusals:
    """The gate's refusals of a URL itself (a control character, a path that is not
    UTF-8, a credential in the query), on a web path: the 400 page, rather than the
    API's problem document. Nothing is recorded, as the gate records nothing for them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and security.is_web_path(path) and path not in _JSON_CALLS:
            refusal = gate.url_refusal(scope)
            if refusal is not None:
                _, detail, _ = refusal
                answer = await run_in_threadpool(pages.error_page, Request(scope), 400, detail)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _delegate(answer: Response | Awaitable[Response]) -> Response:
    """The answer of an API handler (the API's handlers are coroutines)."""
    return await answer if inspect.isawaitable(answer) else answer


def _error(request: Request, status: int, message: str) -> Response:
    """An error page in the layout, with the navigation of a live session (nothing
    recorded: a path no page answers is not a page view)."""
    return pages.error_page(request, status, message, viewer=pages.viewer_of(request))
