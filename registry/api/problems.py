"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API returns has ``type`` (a ``urn:mlledger:problem:<slug>``
URI naming the kind of problem), ``title``, ``status``, ``detail`` and
``instance`` (the request path); errors about input add ``field`` (the dotted
path of the offending field) and, for batches, ``index`` and ``event_id``.
The kinds are ``registry.errors``'s error classes (each names its slug, status and
title) and the few the API alone answers (``API_KINDS``); ``registry.client`` turns
a problem back into the class its kind names.

``document_problems`` writes them into the OpenAPI document: every operation lists each
problem status it can answer, with the ``type`` values that status carries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from registry.canonical import MAX_DEPTH, printable
from registry.errors import EventRejected, InvalidInput, LedgerError, kinds

MEDIA_TYPE = "application/problem+json"
PREFIX = "urn:mlledger:problem:"
log = logging.getLogger("mlledger.api")

#: Problem kinds of the HTTP API alone (slug -> (status, title)); the ledger's own kinds
#: come from the error classes (``registry.errors.kinds``).
API_KINDS: dict[str, tuple[int, str]] = {
    "invalid-request": (422, "The request does not match the API's schema"),
    "method-not-allowed": (405, "Method not allowed"),
    "payload-too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "too-many-requests": (429, "Too many failed authentications from this address"),
    "internal": (500, "Internal error"),
}
#: Every problem kind the API answers: slug -> (status, title).
KINDS: dict[str, tuple[int, str]] = {
    **{slug: (cls.status, cls.title) for slug, cls in kinds().items()},
    **API_KINDS,
}


#: Problems every operation can answer: a URL the gate refuses (a control character, a
#: credential in the query string) and a body over the limit, declared or sent.
EVERY_OPERATION = ("invalid-input", "payload-too-large")
#: Problems of every operation that needs a key.
EVERY_GATED_OPERATION = ("unauthenticated", "forbidden", "too-many-requests")
#: Headers a problem's status always carries.
HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`: send `Authorization: Bearer <key>`.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}
#: ``components/schemas/Problem`` of the OpenAPI document.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; members beyond these are extensions.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "description": "`urn:mlledger:problem:<slug>`: the kind."},
        "title": {"type": "string", "description": "The kind's title."},
        "status": {"type": "integer", "description": "The HTTP status."},
        "detail": {"type": "string", "description": "What was wrong, and what was expected."},
        "instance": {"type": "string", "description": "The request's path."},
        "field": {"type": "string", "description": "Dotted path of the offending field."},
        "errors": {
            "type": "array",
            "description": "Every schema error (`invalid-request`).",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "expected": {"type": "string"},
                },
                "required": ["field", "message"],
            },
        },
        "index": {"type": "integer", "description": "The refused event's place in the batch."},
        "event_id": {"type": "string", "description": "The refused event's id."},
        "event_type": {"type": "string", "description": "The refused event's type."},
        "reason": {"type": "string", "description": "What was wrong with the refused event."},
    },
    "required": ["type", "title", "status", "detail", "instance"],
}
_PROBLEM_REF = "#/components/schemas/Problem"
_RESPONSES = "#/components/responses/"


class Problem(Exception):
    """An error to answer with a problem-details body."""

    def __init__(self, slug: str, detail: str, **extensions: Any):
        super().__init__(detail)
        self.slug = slug
        self.status = KINDS[slug][0]
        self.detail = detail
        self.extensions = {k: v for k, v in extensions.items() if v is not None}


def problem_response(
    request: Request, problem: Problem, headers: dict[str, str] | None = None
) -> JSONResponse:
    status, title = KINDS[problem.slug]
    body = {
        "type": PREFIX + problem.slug,
        "title": title,
        "status": status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extensions,
    }
    return JSONResponse(
        _encodable(body), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def responses(*slugs: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that can answer these problems, besides those
    ``document_problems`` gives every operation."""
    by_status: dict[int, list[str]] = {}
    for slug in slugs:
        by_status.setdefault(KINDS[slug][0], []).append(slug)
    return {status: _response(status, found) for status, found in by_status.items()}


def answering(model: Any, *slugs: str) -> dict[str, Any]:
    """The options of a route answering ``model``, or one of the problems ``slugs``."""
    return {"response_model": model, "responses": responses(*slugs)}


def _response(status: int, slugs: list[str]) -> dict[str, Any]:
    """An OpenAPI response: problem details whose ``type`` is one of ``slugs``."""
    slugs = sorted(set(slugs))
    response: dict[str, Any] = {
        "description": "; ".join(f"`{slug}`: {KINDS[slug][1]}" for slug in slugs) + ".",
        "content": {
            MEDIA_TYPE: {
                "schema": {
                    "allOf": [
                        {"$ref": _PROBLEM_REF},
                        {
                            "properties": {
                                "type": {"enum": [PREFIX + slug for slug in slugs]},
                                "status": {"const": status},
                            }
                        },
                    ]
                }
            }
        },
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _slugs(response: dict[str, Any], shared: dict[str, Any]) -> list[str]:
    """The problem slugs a response built by ``_response`` declares, itself or as a
    reference into ``shared`` (none for another response)."""
    ref = str(response.get("$ref", ""))
    if ref.startswith(_RESPONSES):
        response = shared.get(ref.removeprefix(_RESPONSES), {})
    try:
        schema = response["content"][MEDIA_TYPE]["schema"]["allOf"][1]
        return [str(t).removeprefix(PREFIX) for t in schema["properties"]["type"]["enum"]]
    except (KeyError, IndexError, TypeError):
        return []


def complete(
    document: dict[str, Any], schemas: Mapping[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``document`` (FastAPI's) with ``schemas`` added to its components (schemas the
    routes refer to that no model generates) and the problems of every operation
    declared."""
    found = document.setdefault("components", {}).setdefault("schemas", {})
    found.update(schemas or {})
    document["components"]["schemas"] = dict(sorted(found.items()))
    return document_problems(document)


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` (an OpenAPI document) with every problem an operation can answer declared,
    as ``application/problem+json`` with the ``Problem`` schema; FastAPI's own validation
    error schemas, which this API never sends, are dropped."""
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    shared: dict[str, Any] = components.setdefault("responses", {})
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            slugs = list(EVERY_OPERATION)
            if operation.get("security"):
                slugs.extend(EVERY_GATED_OPERATION)
            if operation.get("parameters") or operation.get("requestBody"):
                slugs.append("invalid-request")
            if operation.get("requestBody"):
                slugs.append("unsupported-media-type")  # a Content-Encoding not decoded
            for key in [k for k in answers if k.isdigit() and int(k) >= 400]:
                slugs.extend(_slugs(answers.pop(key), shared))
            by_status: dict[int, set[str]] = {}
            for slug in slugs:
                by_status.setdefault(KINDS[slug][0], set()).add(slug)
            for status, found in sorted(by_status.items()):
                # One shared response per set of problems: named by its slugs.
                name = ".".join(sorted(found))
                shared[name] = _response(status, sorted(found))
                answers[str(status)] = {"$ref": _RESPONSES + name}
    components["responses"] = dict(sorted(shared.items()))
    return spec


#: Methods a route may take, in the order an ``Allow`` header lists them.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed(request: Request) -> str:
    """The ``Allow`` header of a 405 answer: every method some route takes at the path."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def _encodable(value: Any) -> Any:
    """``value`` with every string made UTF-8 encodable: a message may quote what was
    refused, lone surrogates included, and the answer must still be sent."""
    if isinstance(value, str):
        return value if value.isascii() else value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(v) for v in value]
    return value


def from_ledger_error(exc: LedgerError) -> Problem:
    """The problem for an error the ledger raised on purpose: the kind its class names,
    with the offending ``field`` when it carries one (and, for a refused event of a
    batch, its place, id, type and reason)."""
    extensions: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extensions["field"] = exc.field
    if isinstance(exc, EventRejected):
        extensions.update(
            index=exc.index, event_id=exc.event_id, event_type=exc.event_type, reason=exc.message
        )
    return Problem(exc.slug, str(exc), **extensions)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "events", 0, "type")`` → ``events.0.type``; query and path keep their
    parameter name."""
    parts = [printable(str(p)) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_problem(exc: RequestValidationError) -> Problem:
    errors = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid"))
        ctx = err.get("ctx") if isinstance(err.get("ctx"), dict) else {}
        expected = ctx.get("expected")
        field = _field(err.get("loc", ()))
        if ctx.get("path"):  # a place inside a JSON value (registry.api.schemas)
            field = f"{field}.{ctx['path']}" if field != "body" else str(ctx["path"])
        errors.append(
            {
                "field": field,
                "message": message,
                **({"expected": str(expected)} if expected else {}),
            }
        )
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    return Problem(
        "invalid-request",
        f"field '{first['field']}': {first['message']}",
        field=first["field"],
        errors=errors,
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem details."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(request, exc, headers)

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        return problem_response(request, from_ledger_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(request, validation_problem(exc))

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        # JSON nested too deep for a check that walks it (the schemas refuse more than
        # MAX_DEPTH levels, but not every body goes through one first).
        return problem_response(
            request,
            Problem(
                "invalid-request",
                f"the request nests objects and arrays too deeply to be read; expected at "
                f"most {MAX_DEPTH} levels",
                field="body",
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {
            404: "not-found",
            405: "method-not-allowed",
            413: "payload-too-large",
            415: "unsupported-media-type",
        }.get(exc.status_code, "invalid-input")
        detail = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /openapi.json"
        if exc.status_code == 405:
            # A route answers for its own methods; the path may have others.
            headers["Allow"] = allowed(request)
            detail = (
                f"{request.method} is not a method of {request.url.path}: expected one of "
                f"{headers['Allow']}"
            )
        return problem_response(request, Problem(slug, detail), headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(
            request, Problem("internal", f"unexpected {type(exc).__name__}; see the server log")
        )
