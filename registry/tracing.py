"""OpenTelemetry tracing, configured only through the standard ``OTEL_*`` variables.

``configure()`` installs an SDK tracer provider when the environment asks for
tracing (``OTEL_TRACES_EXPORTER`` other than ``none``, or an OTLP endpoint) and
leaves alone one the application installed itself: a training job with its own
tracing gets mlledger's spans inside its traces. Without a provider ``span()``
hands back one shared, inert context manager: tracing that is off costs about
what entering a ``contextlib.nullcontext()`` does.

Each appended event stores the trace id of the span current when it was
appended (``current_trace_id()``), also when that span is only a remote parent
taken from an incoming ``traceparent`` header with tracing off here.
``inject()`` adds ``traceparent`` to outgoing requests and ``TraceMiddleware``
takes it from incoming ones. Span attributes hold node ids, counts and names,
never a record key, a subject id, a personal attribute, nor the pseudonym of a
record or subject (``record:<project>/[redacted]``: spans leave the ledger, where
an erasure cannot follow them).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from registry.errors import ConfigError
from registry.ids import redact_people
from registry.lazy import lazy_import

if TYPE_CHECKING:
    from opentelemetry import propagate
else:
    # Loaded by the first inject or extract: it reads the propagators' entry points from
    # the installed metadata, which a command that sends no request would pay for.
    propagate = lazy_import("opentelemetry.propagate")

__all__ = [
    "EXPORTERS",
    "TraceMiddleware",
    "annotate",
    "configure",
    "current_trace_id",
    "enabled",
    "extract",
    "inject",
    "span",
    "traced",
    "tracer",
    "use_provider",
]

#: Values ``OTEL_TRACES_EXPORTER`` may list (comma-separated).
EXPORTERS = ("otlp", "console", "none")
SERVICE_NAME = "mlledger"
INSTRUMENTATION = "mlledger"

P = ParamSpec("P")
R = TypeVar("R")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Providers that record nothing: with one of these as the global provider, tracing is off.
_INERT = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_override: trace.TracerProvider | None = None
_override_tracer: trace.Tracer | None = None
_global_on = False
_configured = False
# Whether an unset ``trace._TRACER_PROVIDER`` means "no provider": true unless this API
# version lacks the attribute or OTEL_PYTHON_TRACER_PROVIDER names a provider to load.
_FAST_CHECK = hasattr(trace, "_TRACER_PROVIDER") and (
    "OTEL_PYTHON_TRACER_PROVIDER" not in os.environ
)


# --- configuration ---------------------------------------------------------------------------


def _exporter_names() -> list[str]:
    """The exporters the environment asks for (empty: tracing not asked for)."""
    value = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={value!r}: unknown exporter {unknown[0]!r}; expected a "
            f"comma-separated list of {', '.join(EXPORTERS)}"
        )
    if not names and (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    ):
        return ["otlp"]
    return [n for n in names if n != "none"]


def configure() -> bool:
    """Set tracing up from the ``OTEL_*`` environment; return whether it is on.

    Idempotent. A provider the application already installed is kept and used.
    Otherwise an SDK provider (resource from ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES``, service name ``mlledger`` by default, sampler
    from ``OTEL_TRACES_SAMPLER``) with a batch span processor per exporter is
    installed as the global one, only when ``OTEL_TRACES_EXPORTER`` names
    ``otlp`` or ``console``, or ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`` is set.
    ``OTEL_SDK_DISABLED=true`` turns tracing off. Raises ``ConfigError`` for an
    exporter name it does not know.
    """
    global _configured
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if not _configured:
        if isinstance(trace.get_tracer_provider(), _INERT):
            names = _exporter_names()
            if names:
                _install(names)
        _configured = True
    return not isinstance(trace.get_tracer_provider(), _INERT)


def _install(exporters: list[str]) -> None:
    """Install the global SDK provider exporting to ``exporters`` (otlp, console)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for name in dict.fromkeys(exporters):
        exporter: SpanExporter
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def use_provider(provider: trace.TracerProvider | None) -> trace.TracerProvider | None:
    """Send mlledger's spans to ``provider`` instead of the global one (None: the global
    one again); return the provider used before. For tests, and for applications that
    keep a provider of their own without installing it globally."""
    global _override, _override_tracer
    previous = _override
    _override = provider
    _override_tracer = None if provider is None else provider.get_tracer(INSTRUMENTATION)
    return previous


def enabled() -> bool:
    """Whether spans are recorded: a provider was given to ``use_provider`` or the global
    provider is a real one (``configure()``'s, or the application's)."""
    global _global_on
    if _override is not None or _global_on:
        return True
    # Read the API's global directly while it is unset: ``get_tracer_provider()`` looks
    # the environment up on every call, which costs more than the rest of a disabled
    # span. It is asked whenever that shortcut cannot answer.
    if _FAST_CHECK and getattr(trace, "_TRACER_PROVIDER", None) is None:
        return False
    if isinstance(trace.get_tracer_provider(), _INERT):
        return False
    _global_on = True  # the global provider can be set only once: it stays set
    return True


# --- spans -----------------------------------------------------------------------------------


class _Tracer(trace.Tracer):
    """The ``mlledger`` tracer of the provider in use (see ``use_provider``)."""

    def __init__(self) -> None:
        self._global = trace.get_tracer(INSTRUMENTATION)

    def _current(self) -> trace.Tracer:
        return self._global if _override_tracer is None else _override_tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._current().start_as_current_span(*args, **kwargs)


tracer: trace.Tracer = _Tracer()


class _Off:
    """What ``span()`` returns with tracing off: enters to the invalid span, does nothing."""

    __slots__ = ()

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_OFF = _Off()


def span(name: str, **attributes: Any) -> Any:
    """A context manager around an internal span ``name`` made current, entering to the
    span; with tracing off, a shared one that does nothing. Attributes whose value is
    None are left out. Never pass personal data: node ids only (a record's or
    subject's pseudonym is replaced by ``[redacted]``)."""
    if not enabled():
        return _OFF
    return tracer.start_as_current_span(
        name, attributes={k: _attribute(v) for k, v in attributes.items() if v is not None}
    )


def traced(name: str, *params: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function to run in a span ``name`` whose attributes ``mlledger.<param>``
    are the values of the named parameters (when not None). Name only parameters
    that hold no personal data."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if not enabled():
                return function(*args, **kwargs)
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            attributes = {
                f"mlledger.{p}": _attribute(bound.arguments[p])
                for p in params
                if bound.arguments.get(p) is not None
            }
            with span(name, **attributes):
                return function(*args, **kwargs)

        return call

    return wrap


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span when it records (never personal data)."""
    if not enabled():
        return
    current = trace.get_current_span()
    if current.is_recording():
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(key, _attribute(value))


def _attribute(value: Any) -> Any:
    """A span attribute value: record and subject ids lose their pseudonym (spans are
    exported where an erasure cannot reach them)."""
    if isinstance(value, bool | int | float):
        return value
    return redact_people(value if isinstance(value, str) else str(value))


def current_trace_id() -> str | None:
    """The 32-hex trace id of the current span context (a remote parent included), or
    None when there is none."""
    context = trace.get_current_span().get_span_context()
    return trace.format_trace_id(context.trace_id) if context.is_valid else None


# --- propagation -----------------------------------------------------------------------------


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current context to outgoing HTTP ``headers`` (W3C ``traceparent``, and
    ``tracestate`` / ``baggage`` when set, per ``OTEL_PROPAGATORS``); return them."""
    propagate.inject(headers)
    return headers


def extract(headers: MutableMapping[str, str] | dict[str, str]) -> otel_context.Context:
    """The context carried by incoming HTTP ``headers`` (names in lower case)."""
    return propagate.extract(headers)


_adopted: set[str] = set()


def adopt_traceparent(value: str | None) -> bool:
    """Make the W3C ``traceparent`` ``value`` (a job's ``TRACEPARENT``) the remote
    parent of the calling thread's context, once per value and only when that context
    has no trace of its own; whether it did. Events appended afterwards carry its trace
    id, so a job's records join the trace of its submission."""
    if not value or value in _adopted or current_trace_id() is not None:
        return False
    context = extract({"traceparent": value})
    if not trace.get_current_span(context).get_span_context().is_valid:
        return False  # malformed: ignored, as an incoming header would be
    otel_context.attach(context)
    _adopted.add(value)
    return True


class TraceMiddleware:
    """Pure ASGI middleware: a SERVER span per HTTP request, child of the caller's trace.

    The span is named ``<METHOD> <route template>`` (the method alone when no route
    took the request: its path, which may hold anything, is not kept) and carries
    ``http.request.method``, ``http.route``, ``url.path``,
    ``url.scheme``, ``client.address`` and ``http.response.status_code``; a 5xx
    answer or an exception marks it as an error, with ``error.type``. When a
    route has path parameters, ``url.path`` is the route template: a parameter
    may be a record key. With tracing off, a request carrying ``traceparent``
    runs with the caller's context current (so its events store the caller's
    trace id); any other request passes through untouched.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        on = enabled()
        raw_headers = scope.get("headers") or ()
        if not on and not any(name == b"traceparent" for name, _ in raw_headers):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers}
        parent = extract(headers)
        if not on:
            token = otel_context.attach(parent)
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        await self._traced(scope, receive, send, parent)

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, parent: otel_context.Context
    ) -> None:
        method = str(scope.get("method", "GET"))
        path = str(scope.get("path", ""))
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.scheme": str(scope.get("scheme", "http")),
        }
        client = scope.get("client")
        if client:
            attributes["client.address"] = str(client[0])
        status: list[int] = []

        async def send_traced(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        # Named by the method until the route is known: the path may hold a record key.
        with tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as current:
            raised = False
            try:
                await self.app(scope, receive, send_traced)
            except BaseException as exc:
                # Recorded, and the span marked failed, by start_as_current_span.
                raised = True
                current.set_attribute("error.type", type(exc).__qualname__)
                raise
            finally:
                route = _route_template(scope)
                if route is not None:
                    # A path no route took stays out: it may hold anything, a record key
                    # included; the span keeps the method's name.
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", route)
                    current.set_attribute("url.path", route if scope.get("path_params") else path)
                if status:
                    current.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500 and not raised:
                        current.set_attribute("error.type", str(status[0]))
                        current.set_status(StatusCode.ERROR)


def _route_template(scope: Scope) -> str | None:
    """The path template of the route that handled the request: the whole template the
    API's gate matched (``mlledger.route``), else the routing's own (Starlette)."""
    matched = scope.get("mlledger.route")
    if isinstance(matched, str) and matched:
        return str(scope.get("root_path", "")).rstrip("/") + matched
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return None
    return str(scope.get("root_path", "")).rstrip("/") + template
