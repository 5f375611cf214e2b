"""The HTTP API: an app factory over one ledger.

Routers stay thin: they parse, call the services (``registry.services``,
``registry.writes``, ``registry.erasures``) and answer with typed models; errors
become RFC 9457 problem details (``registry.api.problems``). Every route but
``/api/v1/health`` and the OpenAPI document (``/openapi.json``, ``/docs``,
``/redoc``) needs an API key (``registry.auth``), checked by the gate
(``registry.api.gate``) before the request's body is read.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from audit.checkpoints import Checkpointer, load_signing_key
from lineage import queries
from lineage.neo4j import Follower, attached
from registry import auth, tracing
from registry.api import problems
from registry.api.gate import FailureLimiter, Gate, redact_access_log
from registry.api.routers import (
    audit,
    erasures,
    events,
    grants,
    jobs,
    keys,
    marquez,
    openlineage,
    questions,
    reports,
    writes,
)
from registry.api.shortcut import IngestShortcut
from registry.assembly import open_ledger
from registry.ledger import Ledger
from registry.settings import Settings

API_VERSION = "1"
#: The routers under ``/api/v1``, in the order they are mounted: a request is matched
#: against each route in turn, so the routes producers call most come first.
ROUTERS = tuple(
    module.router
    for module in (
        openlineage,
        events,
        writes,
        questions,
        jobs,
        erasures,
        reports,
        audit,
        keys,
        grants,
        marquez,
    )
)


def create_app(
    db: str | None = None, *, ledger: Ledger | None = None, checkpoints: bool | None = None
) -> FastAPI:
    """The FastAPI app on the store at ``db`` (``MLLEDGER_DB`` or the default file), or
    on ``ledger`` when given (the caller then owns it). The store is opened when the
    app starts, not when it is built (building it for its OpenAPI spec opens nothing).

    With ``checkpoints`` (the default when the app opens its own store), a background
    thread signs checkpoints every ``MLLEDGER_CHECKPOINT_EVERY`` events or
    ``MLLEDGER_CHECKPOINT_SECONDS`` seconds (``MLLEDGER_CHECKPOINT_EVERY=0``: never),
    with the signing key created on first use."""
    tracing.configure()
    if checkpoints is None:
        checkpoints = ledger is None
    settings = Settings()
    app = _new_app(_lifespan(db, ledger, settings, checkpoints=checkpoints))
    app.state.settings = settings
    problems.install(app)
    api = APIRouter(prefix="/api/v1")

    @api.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: answers without a key."""
        return {"status": "ok"}

    for router in ROUTERS:
        api.include_router(router)
    app.include_router(api)
    # The last added runs first: the span covers the gate's refusals too.
    # Each worker process counts alone: its share (rounded down, at least one) keeps
    # the server's totals within the setting while there are no more workers than it.
    failures = max(1, settings.auth_failures_per_minute // settings.serve_workers)
    # Kept in the state: the web interface's sign-in counts its failures in the same
    # bounds (registry.web).
    app.state.failures = FailureLimiter(per_address=failures, total=10 * failures)
    # Added first, so it runs after the gate: it sees only requests the gate admitted.
    app.add_middleware(IngestShortcut)
    app.add_middleware(
        Gate,
        routers=[(api.prefix, router) for router in ROUTERS],
        body_limit=settings.max_body_bytes,
        limiter=app.state.failures,
    )
    app.add_middleware(tracing.TraceMiddleware)
    redact_access_log()
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

#: The interpreter's switch interval in a serving process. Request threads mostly wait
#: on the database and need the interpreter back for a few hundred microseconds at a
#: time; at the default 5 ms they queue behind each other and tail latency grows
#: tenfold under load.
SWITCH_INTERVAL_S = 0.0005


def _lifespan(
    db: str | None, ledger: Ledger | None, settings: Settings, *, checkpoints: bool
) -> Lifespan:
    """Open the ledger (unless given) with ``settings``, the access trail and, with
    ``checkpoints``, the checkpointer when the app starts; close them when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # In the process that serves: uvicorn starts each of several workers afresh.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        app.state.ledger = ledger if ledger is not None else open_ledger(db, settings=settings)
        app.state.trail = auth.TrailRecorder(app.state.ledger.store)
        checkpointer = _checkpointer(app.state.ledger, settings) if checkpoints else None
        app.state.checkpointer = checkpointer
        if checkpointer is not None:
            checkpointer.start()
        graph = attached(app.state.ledger)
        # The Neo4j graph is kept up to date beside the API, so that a question finds it
        # caught up (each question still catches it up to the writes made before it).
        follower = Follower(app.state.ledger, graph) if graph is not None else None
        if follower is not None:
            follower.start()
        try:
            # Before the first connection is accepted: loaded on a first question
            # instead, the graph and filters of a large ledger keep the requests behind
            # it waiting. Only a saving: a failure leaves them to the first question.
            try:
                await asyncio.to_thread(queries.warm, app.state.ledger)
            except Exception as exc:
                logging.getLogger("mlledger.api").warning(
                    "could not load the lineage graph and prediction filters ahead of "
                    "the first question: %s", exc,
                )  # fmt: skip
            # What start-up loaded (modules, the lineage graph) lives as long as the
            # app: kept out of the collector's full passes, which would otherwise walk
            # it every few large requests (150 ms and more at a large ledger); given
            # back to the collector when the app stops. (No collection first: a full
            # pass costs every app's start, tests' included, more than the start-up
            # garbage it would free.)
            gc.freeze()
            yield
        finally:
            gc.unfreeze()
            if follower is not None:
                follower.stop()
            if checkpointer is not None:
                checkpointer.stop()
            app.state.trail.close()  # folds what the trail journal still holds
            if ledger is None:
                app.state.ledger.close()

    return lifespan


def _new_app(lifespan: Lifespan) -> FastAPI:
    """The bare app: its description, and its OpenAPI document completed once."""
    app = FastAPI(
        # One span per request, ours (``tracing.TraceMiddleware``): the framework's own
        # would be a second root span, holding the query string and validation errors.
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
            "auto_configure": False,
        },
        title="mlledger",
        version=f"{API_VERSION}.0",
        summary="Metadata, lineage and audit registry for machine learning.",
        description=(
            "Writes append events to a tamper-evident log; questions read its projections. "
            "Errors are RFC 9457 problem details. Authenticate with "
            "`Authorization: Bearer <key>` (see docs/security.md)."
        ),
        lifespan=lifespan,
    )
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI builds the document once and keeps it; it is completed then.
        if app.openapi_schema is None:
            app.openapi_schema = problems.complete(generated(), schemas=openlineage.SCHEMAS)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _checkpointer(ledger: Ledger, settings: Settings) -> Checkpointer | None:
    """The automatic checkpoints of the settings, or None when they are off."""
    if settings.checkpoint_every == 0:
        return None
    key, path, created = load_signing_key(ledger.store.url, settings.signing_key, create=True)
    if created:
        logging.getLogger("mlledger.checkpoints").warning(
            "created signing key %s at %s; public key: %s",
            key.name,
            path,
            key.verifier().to_string(),
        )
    return Checkpointer(
        ledger.store, key, every=settings.checkpoint_every, seconds=settings.checkpoint_seconds
    )
