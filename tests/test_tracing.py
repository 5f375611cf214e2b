"""Tracing: events store the trace id of whoever appended them, spans nest, none is personal.

Spans go to an in-memory exporter through ``tracing.use_provider``, never through
the process-wide provider (which OpenTelemetry lets a process set only once):
``configure()``, which sets that one, runs in a child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.routing import Route

import registry
from registry import tracing
from registry.assembly import open_ledger
from registry.canonical import canonical_text, leaf_hash
from registry.events import canonical_event, make_event
from registry.sdk import Registry
from tests.support.helpers import newest

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
SECRET_RECORD = "patient-7c1e-RAW-RECORD-KEY"
SECRET_SUBJECT = "subject-4411-RAW-SUBJECT-ID"


@dataclass
class Spans:
    """The provider mlledger's spans go to in a test, and what they recorded."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    @property
    def tracer(self) -> trace.Tracer:
        return self.provider.get_tracer("test-job")

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use_provider(provider)
    try:
        yield Spans(provider, exporter)
    finally:
        tracing.use_provider(previous)
        provider.shutdown()


@pytest.fixture
def sdk(tmp_path: Path) -> Iterator[Registry]:
    connection = registry.connect(f"sqlite:///{tmp_path}/ledger.db", project="test", actor="t")
    yield connection
    connection.close()


def hex_trace(span: trace.Span | ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return trace.format_trace_id(context.trace_id)


def recomputed_leaf(event: Any) -> bytes:
    envelope = (
        event.position,
        event.event_id,
        event.type,
        event.schema_version,
        event.project,
        event.entity,
        event.actor,
        event.occurred_at,
        event.recorded_at,
    )
    body = canonical_text(event.body)[0]
    return leaf_hash(canonical_event(*envelope, body, event.personal_refs, event.trace_id))


def dataset_event(name: str, **kw: Any) -> Any:
    return make_event(
        "dataset-version-registered",
        project="test",
        entity=f"dataset:test/{name}@1",
        actor="t",
        body={"name": name, "version": "1", "digest": "sha256:aa", "uri": "s3://d"},
        **kw,
    )


# --- trace ids on events ---------------------------------------------------------------------


def test_events_appended_inside_a_span_carry_its_trace_id(spans: Spans, sdk: Registry) -> None:
    with spans.tracer.start_as_current_span("train") as job:
        sdk.register_dataset("d", "1", uri="s3://d", digest="sha256:aa", records=["a"])
    stored = sdk.ledger.read()
    assert len(stored) == 2
    assert {e.trace_id for e in stored} == {hex_trace(job)}
    # The trace id is part of what the leaf hash covers.
    assert all(e.leaf_hash == recomputed_leaf(e) for e in stored)


def test_the_ledger_stamps_events_built_without_a_trace_id(spans: Spans, tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    try:
        with spans.tracer.start_as_current_span("job") as job:
            ledger.append([dataset_event("a"), dataset_event("b", trace_id="f" * 32)])
        first, second = ledger.read()
        assert first.trace_id == hex_trace(job) and second.trace_id == "f" * 32
        assert first.leaf_hash == recomputed_leaf(first)
        # No caller span: nothing to stamp, though the ledger's own span is there.
        ledger.append([dataset_event("c")])
        assert newest(ledger).trace_id is None
        assert len(spans.named("ledger.append")) == 2
    finally:
        ledger.close()


def test_without_a_span_events_have_no_trace_id(sdk: Registry) -> None:
    assert not tracing.enabled()
    sdk.register_dataset("d", "1", uri="s3://d", digest="sha256:aa")
    assert newest(sdk.ledger).trace_id is None


def test_a_remote_parent_is_stamped_with_tracing_off(tmp_path: Path) -> None:
    assert not tracing.enabled()
    ledger = open_ledger(f"sqlite:///{tmp_path}/ledger.db")
    token = otel_context.attach(tracing.extract({"traceparent": TRACEPARENT}))
    try:
        assert tracing.current_trace_id() == TRACE
        ledger.append([dataset_event("a")])
    finally:
        otel_context.detach(token)
        ledger.close()
    assert tracing.current_trace_id() is None
    assert newest(ledger).trace_id == TRACE


def test_inject_writes_traceparent_of_the_current_span(spans: Spans) -> None:
    assert tracing.inject({}) == {}
    with spans.tracer.start_as_current_span("job") as job:
        headers = tracing.inject({"accept": "application/json"})
    assert headers["traceparent"].split("-")[1] == hex_trace(job)
    assert headers["accept"] == "application/json"
    parent = trace.get_current_span(tracing.extract(headers)).get_span_context()
    assert trace.format_trace_id(parent.trace_id) == hex_trace(job)


def test_spans_are_free_when_tracing_is_off() -> None:
    assert not tracing.enabled()
    # One shared inert context manager, whatever the name and attributes.
    assert tracing.span("a") is tracing.span("b", **{"mlledger.events": 3})
    with tracing.span("a") as current:
        assert not current.is_recording()
    assert tracing.current_trace_id() is None


# --- spans -----------------------------------------------------------------------------------


def test_append_projection_and_query_spans_nest_under_the_callers_span(
    spans: Spans, sdk: Registry
) -> None:
    with spans.tracer.start_as_current_span("train") as job:
        data = sdk.register_dataset("d", "1", uri="s3://d", digest="sha256:aa", records=["a"])
        with sdk.run("fit", inputs=[data]) as run:
            model = run.register_model("clf", artifact_uri="s3://m", artifact_digest="sha256:bb")
        sdk.trained_on(model)
        sdk.lineage(data, depth=2)
    job_id = job.get_span_context().span_id
    appends = spans.named("ledger.append")
    assert appends and all(s.parent is not None and s.parent.span_id == job_id for s in appends)
    assert all(hex_trace(s) == hex_trace(job) for s in spans.finished())
    first = appends[0].attributes or {}
    assert first["mlledger.events"] == 2 and first["mlledger.first_position"] == 0
    assert first["mlledger.appended"] == 2 and first["mlledger.projects"] == ("test",)

    append_ids = {s.context.span_id for s in appends}
    applied = spans.named("projection.apply")
    assert applied and all(s.parent is not None and s.parent.span_id in append_ids for s in applied)
    names = {(s.attributes or {})["mlledger.projection"] for s in applied}
    assert names == {
        "catalogue",
        "record_index",
        "prediction_index",
        "lineage",
        "erasures",
        "executions",
        "merkle",
    }

    (trained,) = spans.named("query.trained_on")
    assert (trained.attributes or {})["mlledger.model"] == model.id
    (lineage,) = spans.named("query.lineage")
    attributes = lineage.attributes or {}
    assert attributes["mlledger.node"] == data.id and attributes["mlledger.depth"] == 2
    assert attributes["mlledger.direction"] == "both"
    for question in (trained, lineage):
        assert question.parent is not None
        assert hex_trace(question) == hex_trace(job)


def test_rebuild_and_catch_up_have_spans(spans: Spans, sdk: Registry) -> None:
    sdk.register_dataset("d", "1", uri="s3://d", digest="sha256:aa", records=["a", "b"])
    sdk.ledger.rebuild()
    (rebuilt,) = spans.named("projection.rebuild")
    (caught_up,) = spans.named("projection.catch_up")
    assert caught_up.parent is not None and caught_up.parent.span_id == rebuilt.context.span_id
    assert (rebuilt.attributes or {})["mlledger.events"] == 2


def test_no_span_holds_a_record_key_subject_id_or_their_pseudonyms(
    spans: Spans, sdk: Registry
) -> None:
    data = sdk.register_dataset(
        "d",
        "1",
        uri="s3://d",
        digest="sha256:aa",
        records=[SECRET_RECORD],
        subjects=[SECRET_SUBJECT],
    )
    with sdk.run("fit", inputs=[data]) as run:
        model = run.register_model("clf", artifact_uri="s3://m", artifact_digest="sha256:bb")
    sdk.deploy("api", endpoint="https://api", served=[model])
    sdk.log_predictions("api", model=model, records=[SECRET_RECORD], outputs=[0.9])
    scored = sdk.scored(SECRET_RECORD)
    footprint = sdk.footprint(SECRET_SUBJECT)
    with pytest.raises(registry.NotFound):
        sdk.scored(SECRET_RECORD + "-unknown")

    (asked,) = [s for s in spans.named("query.scored") if s.status.status_code != StatusCode.ERROR]
    assert (asked.attributes or {})["mlledger.record"] == "record:test/[redacted]"
    (found,) = spans.named("query.footprint")
    assert (found.attributes or {})["mlledger.subject"] == "subject:test/[redacted]"
    everything = [
        (s.name, dict(s.attributes or {}), [(e.name, dict(e.attributes or {})) for e in s.events])
        for s in spans.finished()
    ]
    text = repr(everything)
    assert "query.scored" in text and "ledger.append" in text
    assert SECRET_RECORD not in text and SECRET_SUBJECT not in text
    # Nor their pseudonyms: spans leave the ledger, where an erasure cannot reach.
    for node in (scored["record"], footprint["subject"]):
        assert node.split("/", 1)[1] not in text


# --- configure() -----------------------------------------------------------------------------

CONFIGURE = """
import json
from opentelemetry import trace
from registry import tracing
from registry.errors import ConfigError
try:
    on = tracing.configure()
except ConfigError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
provider = trace.get_tracer_provider()
resource = getattr(provider, "resource", None)
with tracing.span("configured-span"):
    trace_id = tracing.current_trace_id()
print(json.dumps({
    "on": on,
    "again": tracing.configure(),
    "enabled": tracing.enabled(),
    "provider": type(provider).__name__,
    "service": None if resource is None else resource.attributes.get("service.name"),
    "traced": trace_id is not None,
}))
"""


def configure_in_child(env: dict[str, str], prelude: str = "") -> tuple[dict[str, Any], str]:
    """Run ``configure()`` in a fresh interpreter with ``env`` as its only OTEL_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", prelude + CONFIGURE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[0]), done.stdout


@pytest.mark.parametrize("env", [{}, {"OTEL_TRACES_EXPORTER": "none"}])
def test_configure_is_off_unless_asked(env: dict[str, str]) -> None:
    result, _ = configure_in_child(env)
    assert result["on"] is False and result["again"] is False and result["enabled"] is False
    assert result["provider"] == "ProxyTracerProvider" and result["traced"] is False


def test_configure_console_installs_a_provider_named_mlledger() -> None:
    result, out = configure_in_child({"OTEL_TRACES_EXPORTER": "console"})
    assert result["on"] is True and result["again"] is True and result["traced"] is True
    assert result["provider"] == "TracerProvider" and result["service"] == "mlledger"
    assert '"name": "configured-span"' in out  # the console exporter wrote it at exit


def test_configure_honours_service_name_endpoint_and_disable() -> None:
    result, _ = configure_in_child(
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "scoring-api"}
    )
    assert result["service"] == "scoring-api"
    result, _ = configure_in_child(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_BSP_SCHEDULE_DELAY": "60000",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            "OTEL_TRACES_SAMPLER": "always_off",
        }
    )
    assert result["on"] is True and result["provider"] == "TracerProvider"
    result, _ = configure_in_child({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"})
    assert result["on"] is False and result["provider"] == "ProxyTracerProvider"


def test_configure_refuses_an_unknown_exporter() -> None:
    result, _ = configure_in_child({"OTEL_TRACES_EXPORTER": "console,zipkin"})
    assert "'zipkin'" in result["error"] and "otlp, console, none" in result["error"]


def test_configure_keeps_the_applications_own_provider() -> None:
    prelude = (
        "from opentelemetry import trace as _t\n"
        "from opentelemetry.sdk.trace import TracerProvider as _P\n"
        "from opentelemetry.sdk.resources import Resource as _R\n"
        "_t.set_tracer_provider(_P(resource=_R({'service.name': 'training-job'})))\n"
    )
    result, _ = configure_in_child({"OTEL_TRACES_EXPORTER": "console"}, prelude)
    assert result["on"] is True and result["service"] == "training-job"
    assert result["traced"] is True
    # Without any OTEL_* variable the job's provider still gets mlledger's spans.
    result, _ = configure_in_child({}, prelude)
    assert result["on"] is True and result["enabled"] is True and result["traced"] is True


# --- TraceMiddleware -------------------------------------------------------------------------


def request(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=tracing.TraceMiddleware(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
            return await client.get(path, headers=headers or {})

    return asyncio.run(send())


class Recorder:
    """A raw ASGI app answering ``status`` and noting the trace id current inside it."""

    def __init__(self, status: int = 200, append: Registry | None = None):
        self.status = status
        self.append = append
        self.seen: list[str | None] = []
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(tracing.current_trace_id())
        self.scopes.append(scope)
        if self.append is not None:
            self.append.register_dataset("d", "1", uri="s3://d", digest="sha256:aa")
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def test_middleware_with_tracing_off_makes_the_callers_context_current(sdk: Registry) -> None:
    assert not tracing.enabled()
    app = Recorder(append=sdk)
    assert request(app, "/datasets", {"traceparent": TRACEPARENT}).status_code == 200
    assert app.seen == [TRACE]
    assert newest(sdk.ledger).trace_id == TRACE
    assert tracing.current_trace_id() is None


def test_middleware_with_tracing_off_and_no_traceparent_passes_through() -> None:
    app = Recorder()
    assert request(app, "/datasets").text == "ok"
    assert app.seen == [None]


def test_middleware_opens_a_server_span_under_the_remote_parent(
    spans: Spans, sdk: Registry
) -> None:
    app = Starlette(routes=[Route("/datasets", Recorder(append=sdk))])
    request(app, "/datasets", {"traceparent": TRACEPARENT})
    (server,) = spans.named("GET /datasets")
    assert server.kind == SpanKind.SERVER and hex_trace(server) == TRACE
    assert server.parent is not None and server.parent.is_remote
    assert trace.format_span_id(server.parent.span_id) == PARENT
    attributes = dict(server.attributes or {})
    assert attributes["http.request.method"] == "GET" and attributes["url.path"] == "/datasets"
    assert attributes["http.response.status_code"] == 200 and "client.address" in attributes
    assert newest(sdk.ledger).trace_id == TRACE
    (append,) = spans.named("ledger.append")
    assert append.parent is not None and append.parent.span_id == server.context.span_id


def test_middleware_marks_5xx_and_starts_a_trace_without_traceparent(spans: Spans) -> None:
    app = Recorder(status=503)
    request(Starlette(routes=[Route("/broken", app)]), "/broken")
    (server,) = spans.named("GET /broken")
    assert server.parent is None and server.status.status_code == StatusCode.ERROR
    assert app.seen == [hex_trace(server)]


def test_middleware_names_the_span_by_route_and_keeps_parameters_out(spans: Spans) -> None:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse

    async def scored(request: Request) -> PlainTextResponse:
        return PlainTextResponse("scored")

    app = Starlette(routes=[Route("/records/{key}/scored", scored)])
    assert request(app, f"/records/{SECRET_RECORD}/scored").text == "scored"
    (server,) = spans.finished()
    assert server.name == "GET /records/{key}/scored"
    attributes = dict(server.attributes or {})
    assert attributes["http.route"] == "/records/{key}/scored"
    assert SECRET_RECORD not in repr((server.name, attributes))


def test_middleware_marks_an_exception(spans: Spans) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError):
        request(failing, "/failing")
    # No route took it: the span keeps the method alone, not the path.
    (server,) = spans.named("GET")
    assert "url.path" not in (server.attributes or {})
    assert server.status.status_code == StatusCode.ERROR
    assert (server.attributes or {})["error.type"] == "RuntimeError"
    assert [e.name for e in server.events] == ["exception"]


def test_the_api_makes_one_span_per_request_without_query_or_credentials(
    spans: Spans, tmp_path: Path
) -> None:
    """The real app: one SERVER span per request (the framework's own is off), with no
    query string, token or pseudonym in any span's attributes."""
    from registry import auth
    from registry.api.app import create_app
    from registry.store import opened

    db = f"sqlite:///{tmp_path}/ledger.db"
    with opened(db) as store:
        _, token = auth.create_key(store, project="p", role="viewer", created_by="t")
    pseudonym = "ab" * 16

    async def send() -> list[int]:
        app = create_app(db, checkpoints=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
                asked = await client.get(
                    "/api/v1/projects/p/questions/lineage",
                    params={"node": f"record:p/{pseudonym}", "depth": 1},
                    headers={"Authorization": f"Bearer {token}"},
                )
                leaked = await client.get(
                    "/api/v1/projects/p/models/clf/top-version", params={"api_key": token}
                )
                return [asked.status_code, leaked.status_code]

    assert asyncio.run(send()) == [404, 400]
    servers = [s for s in spans.finished() if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == [
        "GET /api/v1/projects/{project}/questions/lineage",
        "GET /api/v1/projects/{project}/models/{name}/top-version",
    ]
    text = repr([(s.name, dict(s.attributes or {})) for s in spans.finished()])
    assert "url.query" not in text
    assert token not in text and pseudonym not in text


def test_marquez_paths_and_paths_no_route_takes_keep_people_out_of_spans(
    spans: Spans, tmp_path: Path
) -> None:
    """A Marquez route's span is named by its template, never the names in its path;
    a path no route takes leaves no trace of itself in any span."""
    from registry import auth
    from registry.api.app import create_app
    from registry.store import opened

    db = f"sqlite:///{tmp_path}/ledger.db"
    with opened(db) as store:
        _, token = auth.create_key(store, project="p", role="viewer", created_by="t")

    async def send() -> list[int]:
        app = create_app(db, checkpoints=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as client:
                headers = {"Authorization": f"Bearer {token}"}
                marquez = await client.get(
                    f"/api/v1/namespaces/{SECRET_RECORD}%2Fx/jobs", headers=headers
                )
                nowhere = await client.get(f"/api/v1/nothing/{SECRET_RECORD}", headers=headers)
                return [marquez.status_code, nowhere.status_code]

    assert asyncio.run(send()) == [200, 404]
    servers = [s for s in spans.finished() if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /api/v1/namespaces/{namespace}/jobs", "GET"]
    assert SECRET_RECORD not in repr([(s.name, dict(s.attributes or {})) for s in spans.finished()])
