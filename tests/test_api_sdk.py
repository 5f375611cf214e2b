"""The SDK in HTTP mode: same answers, same errors, as on a local file."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import registry
from registry import (
    Conflict,
    EventRejected,
    Forbidden,
    InvalidNodeId,
    LedgerError,
    NotFound,
    Registry,
    Unauthenticated,
)
from registry.backend import LocalBackend
from registry.ledger import Ledger
from tests.support.apiserver import ApiServer
from tests.support.worlds import Scenario, build_world, day


def remote(server: ApiServer, project: str, role: str = "admin") -> Registry:
    return registry.connect(
        server.url, project=project, actor="tester", api_key=server.key(project, role)
    )


def test_http_mode_answers_exactly_as_the_servers_database(
    api_server: ApiServer, server_ledger: Ledger
) -> None:
    with remote(api_server, "parity") as reg:
        world = build_world(reg)
        answers = ask_everything(reg, world)
        head = server_ledger.head()
    local = Registry(LocalBackend(server_ledger), "parity", "tester")
    assert ask_everything(local, world) == answers
    # The writes landed as events of the project, each naming the key that sent it.
    assert server_ledger.head() == head
    events = [e for e in server_ledger.tail() if e.project == "parity"]
    assert {e.type for e in events} >= {
        "dataset-version-registered",
        "dataset-records-added",
        "run-started",
        "run-inputs-used",
        "model-version-registered",
        "run-completed",
        "deployment-configured",
        "predictions-logged",
    }
    assert all(re.fullmatch(r"tester \(key:[0-9a-f]{16}\)", e.actor) for e in events)


def ask_everything(reg: Registry, w: Scenario) -> dict[str, Any]:
    return {
        "scored": reg.scored("rec-0"),
        "trained_on": reg.trained_on(w.m2),
        "trained_on_alias_free": reg.trained_on("clf@1"),
        "downstream": reg.downstream(w.raw),
        "lineage": reg.lineage(w.m2, depth=5),
        "lineage_as_of": reg.lineage(w.raw, direction="downstream", depth=9, as_of=day(4)),
        "footprint": reg.footprint("ann"),
        "history": reg.history("api"),
        "aliases": reg.aliases("clf"),
    }


def test_predictions_with_a_batch_id_are_sent_once_over_http(
    api_server: ApiServer, server_ledger: Ledger
) -> None:
    batch = uuid.uuid4()
    with remote(api_server, "batches") as reg:
        model = reg.register_model("m", artifact_uri="s3://1", artifact_digest="sha256:1")
        dep = reg.deploy("api", endpoint="http://api", served={model: 100})
        sent = dict(model=model, records=["r-1", "r-2"], outputs=[0.1, 0.2],
                    at="2026-05-01T10:00:00Z", batch_id=batch)
        first = reg.log_predictions(dep, **sent)
        head = server_ledger.head()
        assert reg.log_predictions(dep, **sent) == first
        assert len(reg.scored("r-1")["predictions"]) == 1
    assert server_ledger.head() == head
    [event] = server_ledger.read(first[0], 1)
    assert event.type == "predictions-logged" and event.event_id == str(uuid.uuid5(batch, "0"))
    assert event.body["count"] == 2


def test_subject_data_round_trips_over_http(api_server: ApiServer, server_ledger: Ledger) -> None:
    with remote(api_server, "vault") as reg:
        entry = reg.store_subject_data("patient-9", {"name": "Ada", "born": 1815})
        found = reg.subject_data("patient-9")
    stored = server_ledger.last_event()
    assert stored is not None and stored.type == "subject-data-stored"
    assert stored.body["entry"] == entry and "Ada" not in str(stored.as_dict())
    local = Registry(LocalBackend(server_ledger), "vault", "tester")
    assert found == local.subject_data("patient-9")
    assert [(e["entry"], e["attributes"]) for e in found] == [
        (entry, {"name": "Ada", "born": 1815})
    ]


def _errors(reg: Registry) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Bad calls, each to be refused identically in both modes."""
    yield (
        "subjects misaligned",
        lambda: reg.register_dataset(
            "d", "1", uri="s3://d", digest="sha256:1", records=["a", "b"], subjects=["s"]
        ),
    )
    yield (
        "conflicting digest",
        lambda: reg.register_dataset("raw", "1", uri="s3://b/raw", digest="sha256:ff"),
    )
    yield (
        "unknown model served",
        lambda: reg.deploy(
            "api2", endpoint="https://x", served={f"model:{reg.project}/nope@1": 100}
        ),
    )
    yield (
        "output not JSON",
        lambda: reg.log_predictions(
            "api", model=f"model:{reg.project}/clf@1", records=["r"], outputs=[math.nan]
        ),
    )
    yield (
        "model never served",
        lambda: reg.log_predictions(
            "api", model=f"model:{reg.project}/clf-tuned@1", records=["r"], outputs=[1]
        ),
    )
    yield "unknown record", lambda: reg.scored("never-seen")
    yield "unknown alias", lambda: reg.trained_on("clf@staging")
    yield "bad node id", lambda: reg.lineage("dataset:no-version")
    yield "unknown deployment", lambda: reg.history("nowhere")
    yield "unknown subject", lambda: reg.footprint("nobody")
    yield "negative depth", lambda: reg.lineage(f"dataset:{reg.project}/raw@1", depth=-1)


def _outcome(call: Callable[[], Any]) -> tuple[type, str]:
    try:
        call()
    except LedgerError as exc:
        if isinstance(exc, EventRejected):
            return type(exc), f"#{exc.index} {exc.event_type} {exc.field}: {exc.message}"
        return type(exc), re.sub(r"[0-9a-f]{32}", "<pseudonym>", str(exc))
    raise AssertionError("expected an error")


def test_http_mode_fails_exactly_as_a_local_file(
    api_server: ApiServer, tmp_path: Path, server_ledger: Ledger
) -> None:
    project = "errs"
    with registry.connect(f"sqlite:///{tmp_path}/l.db", project=project, actor="t") as local:
        build_world(local)
        expected = {name: _outcome(call) for name, call in _errors(local)}
    with remote(api_server, project) as reg:
        build_world(reg)
        head = server_ledger.head()
        got = {name: _outcome(call) for name, call in _errors(reg)}
        assert server_ledger.head() == head, "a refused write left a trace"
    assert got == expected
    kinds = {name: kind for name, (kind, _) in got.items()}
    assert kinds["conflicting digest"] is Conflict
    assert kinds["unknown model served"] is EventRejected
    assert kinds["unknown record"] is NotFound
    assert kinds["bad node id"] is InvalidNodeId


def test_http_mode_needs_a_valid_key_with_the_right_role(api_server: ApiServer) -> None:
    with pytest.raises(registry.ConfigError, match="needs an API key"):
        registry.connect(api_server.url, project="p")
    bad = registry.connect(api_server.url, project="p", api_key="mll_0000000000000000_nope")
    with pytest.raises(Unauthenticated, match="unknown or malformed"):
        bad.scored("x")
    viewer = remote(api_server, "p", role="viewer")
    with pytest.raises(Forbidden, match="does not allow 'write'"):
        viewer.register_dataset("d", "1", uri="s3://d", digest="sha256:1")
    other = registry.connect(api_server.url, project="q", api_key=api_server.key("p", "admin"))
    with pytest.raises(Forbidden, match="is for project 'p', not 'q'"):
        other.history("api")


def test_a_jobs_span_and_the_events_it_sends_share_a_trace(
    api_server: ApiServer, server_ledger: Ledger
) -> None:
    """The SDK sends traceparent: events appended over HTTP carry the job's trace id."""
    from opentelemetry.sdk.trace import TracerProvider

    from registry import tracing

    previous = tracing.use_provider(TracerProvider())
    try:
        with remote(api_server, "traced") as reg, tracing.span("training-job") as job:
            trace_id = format(job.get_span_context().trace_id, "032x")
            made = reg.register_dataset("d", "1", uri="s3://d", digest="sha256:1", records=["a"])
    finally:
        tracing.use_provider(previous)
    stored = [e for e in server_ledger.tail() if e.entity == made.id]
    assert [e.type for e in stored] == ["dataset-version-registered", "dataset-records-added"]
    assert {e.trace_id for e in stored} == {trace_id}
    # The request itself joined the trace (traceparent): its access-trail entry says so.
    from registry import auth

    trail = auth.read_trail(server_ledger.store, project="traced")
    assert [e["trace_id"] for e in trail if e["action"] == "events.append"] == [trace_id]
