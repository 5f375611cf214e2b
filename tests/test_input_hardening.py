"""Input the stores cannot hold is refused the same way on SQLite and PostgreSQL.

Every case goes through a real ``mlledger serve`` on each store, and again through
the SDK: times outside years 1-9999 (once in UTC), lone UTF-16 surrogates, NUL
characters, JSON nested deeper than 64 levels, text longer than its column, and
values of the wrong JSON type (``false`` for a subject, ``"5"`` for a number). Each
is a 4xx problem (or an SDK exception) naming the field, and the log's head does
not move. Times in years 1 and 9999 are stored in the fixed-width form and export.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

import registry
from audit.exports import Scope, parquet
from registry.canonical import MAX_DEPTH
from registry.errors import EventRejected, FieldError, LedgerError
from registry.sdk import Registry
from registry.store import Store, open_store
from tests.support.apiserver import ApiServer
from tests.support.pgserver import PostgresServer

P = "hard"
CLI = [sys.executable, "-m", "registry.cli"]
SURROGATE = "\ud800"
NUL = "\x00"
NAN = float("nan")
INF = float("inf")
LATE = "9999-12-31T23:59:59-14:00"  # past 9999 once in UTC
EARLY = "0001-01-01T00:00:00+14:00"  # before year 1 once in UTC


def nested(levels: int) -> Any:
    """A JSON array nested ``levels`` deep."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


DEEP = nested(600)


# --- one server per store -------------------------------------------------------------


@dataclass
class World:
    server: ApiServer
    store: Store
    writer: httpx.Client
    dpo: httpx.Client
    run: str
    model: str

    def head(self) -> int:
        with self.store.read() as conn:
            return Store.max_position(conn)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A server on each store, with a dataset, a running run, a model and a deployment."""
    directory = tmp_path_factory.mktemp(f"hardening-{request.param}")
    pg: PostgresServer | None = None
    db = None
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg_server")
        db = pg.create_database()
    server = ApiServer(directory, db=db).start()
    store = open_store(server.db)
    writer = server.client(server.key(P, "writer"))
    dpo = server.client(server.key(P, "dpo"))
    made = writer.post(
        f"/projects/{P}/datasets",
        json={"name": "raw", "version": "1", "uri": "s3://raw", "digest": "sha256:01",
              "records": ["r1", 2], "subjects": ["s1", None]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    run = writer.post(f"/projects/{P}/runs", json={"job": "train"}).json()["id"]
    model = writer.post(
        f"/projects/{P}/models",
        json={"name": "m", "artifact_uri": "s3://m", "artifact_digest": "sha256:02"},
    ).json()["id"]
    deployed = writer.put(
        f"/projects/{P}/deployments/api", json={"endpoint": "https://api", "served": {model: 100}}
    )
    assert deployed.status_code == 200, deployed.text
    try:
        yield World(server, store, writer, dpo, run, model)
    finally:
        writer.close()
        dpo.close()
        store.dispose()
        server.stop()
        if pg is not None and db is not None:
            pg.drop_database(db.rsplit("/", 1)[1])


def event(type_: str, entity: str, body: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": type_, "entity": entity, "body": body,
            **envelope}  # fmt: skip


def dataset_body(**changes: Any) -> dict[str, Any]:
    return {"name": "fresh", "version": "1", "digest": "sha256:03", "uri": "s3://f", **changes}


def lineage_event(job: str = "nightly", facets: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenLineage RunEvent, as the official clients send it."""
    return {
        "eventType": "START",
        "eventTime": "2026-01-01T00:00:00Z",
        "producer": "https://example.org/scheduler",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4()), "facets": facets or {}},
        "job": {"namespace": "scheduler", "name": job},
        "inputs": [],
        "outputs": [],
    }


FACET = {"_producer": "https://example.org/scheduler", "_schemaURL": "https://example.org/f#/F"}
FRESH = f"dataset:{P}/fresh@1"
DATASET = "/projects/{p}/datasets"
RUNS = "/projects/{p}/runs"
RUN = "/projects/{p}/runs/{run}"
PREDICT = "/projects/{p}/deployments/api/predictions"
EVENTS = "/projects/{p}/events"
SUBJECTS = "/projects/{p}/subjects/data"
# (case, key, method, path, body, field named; a trailing "..." means "starts with")
CASES: list[tuple[str, str, str, str, dict[str, Any], str]] = [
    # times outside years 1-9999 once in UTC
    ("late-dataset", "writer", "POST", DATASET,
     {"name": "t", "uri": "s3://t", "digest": "sha256:0", "occurred_at": LATE}, "occurred_at"),
    ("early-dataset", "writer", "POST", DATASET,
     {"name": "t", "uri": "s3://t", "digest": "sha256:0", "occurred_at": EARLY}, "occurred_at"),
    ("late-params", "writer", "POST", RUN + "/params",
     {"params": {"a": 1}, "occurred_at": LATE}, "occurred_at"),
    ("early-predictions", "writer", "POST", PREDICT,
     {"model": "m@1", "records": ["r1"], "outputs": [1], "at": EARLY}, "at"),
    ("late-event", "writer", "POST", EVENTS,
     {"events": [event("dataset-version-registered", FRESH, dataset_body(), occurred_at=LATE)]},
     "events.0.occurred_at"),
    # lone surrogates
    ("surrogate-scored", "writer", "POST", "/projects/{p}/questions/scored",
     {"record": SURROGATE}, "record"),
    ("surrogate-footprint", "dpo", "POST", "/projects/{p}/questions/footprint",
     {"subject": SURROGATE}, "subject"),
    ("surrogate-dataset-uri", "writer", "POST", DATASET,
     {"name": "s", "uri": SURROGATE, "digest": "sha256:0"}, "uri"),
    ("surrogate-dataset-record", "writer", "POST", DATASET,
     {"name": "s", "uri": "s3://s", "digest": "sha256:0", "records": ["ok", SURROGATE]},
     "records.1"),
    ("surrogate-subject", "writer", "POST", SUBJECTS,
     {"subject": SURROGATE, "attributes": {"email": "a@b.c"}}, "subject"),
    ("surrogate-attribute", "writer", "POST", SUBJECTS,
     {"subject": "s1", "attributes": {"email": SURROGATE}}, "attributes.email"),
    ("surrogate-prediction-record", "writer", "POST", PREDICT,
     {"model": "m@1", "records": [SURROGATE], "outputs": [1]}, "records.0"),
    ("surrogate-prediction-output", "writer", "POST", PREDICT,
     {"model": "m@1", "records": ["r1"], "outputs": [{"label": SURROGATE}]}, "outputs.0.label"),
    ("surrogate-event-body", "writer", "POST", EVENTS,
     {"events": [event("dataset-version-registered", FRESH, dataset_body(uri=SURROGATE))]},
     "events.0.body.uri"),
    ("surrogate-event-records", "writer", "POST", EVENTS,
     {"events": [event("dataset-records-added", f"dataset:{P}/raw@1",
                       {"records": [SURROGATE], "subjects": None})]},
     "events.0.body.records.0"),
    ("surrogate-erasure", "dpo", "POST", "/projects/{p}/erasures",
     {"subject": SURROGATE, "dry_run": True}, "subject"),
    # nesting deeper than 64 levels
    ("deep-run-params", "writer", "POST", RUNS, {"job": "j", "params": {"a": DEEP}}, "params.a..."),
    ("deep-params", "writer", "POST", RUN + "/params", {"params": {"a": DEEP}}, "params.a..."),
    ("deep-event-body", "writer", "POST", EVENTS,
     {"events": [event("dataset-version-registered", FRESH,
                       dataset_body(schema={"a": "b"}, tags={"x": "y"}) | {"extra": DEEP})]},
     "events.0.body.extra..."),
    ("deep-output", "writer", "POST", PREDICT,
     {"model": "m@1", "records": ["r1"], "outputs": [DEEP]}, "outputs.0..."),
    ("deep-attributes", "writer", "POST", SUBJECTS,
     {"subject": "s1", "attributes": {"a": DEEP}}, "attributes.a..."),
    ("deep-openlineage-facet", "writer", "POST", "/lineage",
     lineage_event(facets={"custom": {**FACET, "v": DEEP}}), "body..."),
    ("deep-openlineage-facet-65", "writer", "POST", "/lineage",
     lineage_event(facets={"custom": {**FACET, "v": nested(70)}}), "body..."),
    # NaN and Infinity (Python's json writes and reads them; JSON has no such numbers)
    ("nan-run-params", "writer", "POST", RUNS, {"job": "j", "params": {"a": NAN}}, "params.a"),
    ("infinity-params", "writer", "POST", RUN + "/params", {"params": {"a": [1, INF]}},
     "params.a.1"),
    ("nan-event-params", "writer", "POST", EVENTS,
     {"events": [event("run-params-logged", "{run}", {"params": {"lr": NAN}})]},
     "events.0.body.params.lr"),
    ("infinity-event-code", "writer", "POST", EVENTS,
     {"events": [event("run-started", f"run:{uuid.uuid4()}", {"job": "j", "code": {"x": -INF}})]},
     "events.0.body.code.x"),
    ("nan-output", "writer", "POST", PREDICT,
     {"model": "m@1", "records": ["r1"], "outputs": [NAN]}, "outputs.0"),
    ("nan-metric", "writer", "POST", RUN + "/metrics", {"metrics": {"auc": NAN}}, "metrics.auc"),
    ("huge-metric", "writer", "POST", RUN + "/metrics", {"metrics": {"auc": 2**53 + 1}},
     "metrics.auc"),
    ("huge-output", "writer", "POST", PREDICT,
     {"model": "m@1", "records": ["r1"], "outputs": [2**60]}, "outputs.0"),
    ("huge-params", "writer", "POST", RUN + "/params", {"params": {"a": {"b": [2**60]}}},
     "params.a.b.0"),
    # NUL in text stored in a column of its own, which PostgreSQL text cannot hold
    ("nul-dataset-name", "writer", "POST", DATASET,
     {"name": "n" + NUL, "uri": "s3://n", "digest": "sha256:0"}, "name"),
    ("nul-dataset-uri", "writer", "POST", DATASET,
     {"name": "n", "uri": "s3://" + NUL, "digest": "sha256:0"}, "uri"),
    ("nul-job", "writer", "POST", RUNS, {"job": "j" + NUL}, "job"),
    ("nul-endpoint", "writer", "PUT", "/projects/{p}/deployments/api",
     {"endpoint": "https://" + NUL, "served": {"m@1": 100}}, "endpoint"),
    ("nul-moved-by", "writer", "PUT", "/projects/{p}/models/m/aliases/prod",
     {"version": "1", "moved_by": "ann" + NUL}, "moved_by"),
    ("nul-metric-key", "writer", "POST", RUN + "/metrics", {"metrics": {"a" + NUL: 1.0}},
     "metrics..."),
    ("nul-framework", "writer", "POST", "/projects/{p}/models",
     {"name": "m", "artifact_uri": "s3://m", "artifact_digest": "sha256:9",
      "framework": "sk" + NUL}, "framework"),
    ("nul-error-type", "writer", "POST", RUN + "/end",
     {"status": "failed", "error_type": "E" + NUL}, "error_type"),
    ("nul-trace-id", "writer", "POST", PREDICT,
     {"model": "m@1", "records": ["r1"], "outputs": [1], "trace_ids": ["t" + NUL]}, "trace_ids.0"),
    ("nul-actor", "writer", "POST", EVENTS,
     {"events": [event("dataset-version-registered", FRESH, dataset_body(), actor="a" + NUL)]},
     "events.0.actor"),
    ("nul-event-uri", "writer", "POST", EVENTS,
     {"events": [event("dataset-version-registered", FRESH, dataset_body(uri="s3://" + NUL))]},
     "events.0.body.uri"),
    ("nul-openlineage-job", "writer", "POST", "/lineage", lineage_event(job="nightly" + NUL),
     "body..."),
    ("surrogate-openlineage-job", "writer", "POST", "/lineage",
     lineage_event(job="nightly" + SURROGATE), "body..."),
    ("nul-event-job", "writer", "POST", EVENTS,
     {"events": [event("run-started", f"run:{uuid.uuid4()}", {"job": "j" + NUL})]},
     "events.0.body.job"),
    # text longer than its PostgreSQL column
    ("long-job", "writer", "POST", RUNS, {"job": "j" * 301}, "job"),
    ("long-framework", "writer", "POST", "/projects/{p}/models",
     {"name": "m", "artifact_uri": "s3://m", "artifact_digest": "sha256:9",
      "framework": "f" * 129}, "framework"),
    ("long-error-type", "writer", "POST", RUN + "/end",
     {"status": "failed", "error_type": "E" * 301}, "error_type"),
    ("long-digest", "writer", "POST", DATASET,
     {"name": "n", "uri": "s3://n", "digest": "sha256:" + "0" * 300}, "digest"),
    ("long-trace-id", "writer", "POST", PREDICT,
     {"model": "m@1", "records": ["r1"], "outputs": [1], "trace_ids": ["t" * 65]}, "trace_ids.0"),
    ("long-event-trace-id", "writer", "POST", EVENTS,
     {"events": [event("dataset-version-registered", FRESH, dataset_body(), trace_id="t" * 65)]},
     "events.0.trace_id"),
    ("long-event-job", "writer", "POST", EVENTS,
     {"events": [event("run-started", f"run:{uuid.uuid4()}", {"job": "j" * 301})]},
     "events.0.body.job"),
    ("long-event-framework", "writer", "POST", EVENTS,
     {"events": [event("model-version-registered", f"model:{P}/m@9",
                       {"name": "m", "version": "9", "artifact_uri": "s3://m",
                        "artifact_digest": "sha256:9", "framework": "f" * 129})]},
     "events.0.body.framework"),
    # strict types: no bool for an integer, no number for a string, no string for a number
    ("false-subject-erasure", "dpo", "POST", "/projects/{p}/erasures",
     {"subject": False, "dry_run": True}, "subject"),
    ("true-subject-footprint", "dpo", "POST", "/projects/{p}/questions/footprint",
     {"subject": True}, "subject"),
    ("float-record-scored", "writer", "POST", "/projects/{p}/questions/scored",
     {"record": 1.0}, "record"),
    ("bool-record-check", "writer", "POST", "/projects/{p}/erasures/check",
     {"records": ["r1", True]}, "records.1"),
    ("string-row-count", "writer", "POST", DATASET,
     {"name": "n", "uri": "s3://n", "digest": "sha256:0", "row_count": "5"}, "row_count"),
    ("bool-row-count", "writer", "POST", DATASET,
     {"name": "n", "uri": "s3://n", "digest": "sha256:0", "row_count": True}, "row_count"),
    ("float-subject-dataset", "writer", "POST", DATASET,
     {"name": "n", "uri": "s3://n", "digest": "sha256:0", "records": ["a"], "subjects": [1.0]},
     "subjects.0"),
    ("string-metric", "writer", "POST", RUN + "/metrics", {"metrics": {"auc": "0.9"}},
     "metrics.auc"),
    ("bool-step", "writer", "POST", RUN + "/metrics", {"metrics": {"auc": 0.9}, "step": True},
     "step"),
    ("bool-traffic", "writer", "PUT", "/projects/{p}/deployments/api",
     {"endpoint": "https://api", "served": {"m@1": True}}, "served.m@1"),
    ("string-event-row-count", "writer", "POST", EVENTS,
     {"events": [event("dataset-version-registered", FRESH, dataset_body(row_count="5"))]},
     "events.0.body.row_count"),
    ("bool-event-subject", "writer", "POST", EVENTS,
     {"events": [event("subject-data-stored", f"subject:{P}/x",
                       {"subject": False, "attributes": {"a": 1}})]},
     "events.0.body.subject"),
    ("bool-event-metric", "writer", "POST", EVENTS,
     {"events": [event("run-metrics-logged", "{run}",
                       {"metrics": [{"key": "a", "value": True}]})]},
     "events.0.body.metrics.0.value"),
]  # fmt: skip


def _fill(text: str, world: World) -> str:
    """``text`` (a path, or a body as JSON) with the placeholders {p} and {run} filled in."""
    return text.replace("{p}", P).replace("{run}", world.run)


def named(problem: dict[str, Any]) -> str:
    """The field a problem names, in request terms (an event's fields under its index)."""
    field = str(problem.get("field"))
    if problem["type"].endswith(":event-rejected"):
        return f"events.{problem['index']}.{field}"
    return field


@pytest.mark.parametrize(
    ("key", "method", "path", "body", "field"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(
    world: World, key: str, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    client = world.writer if key == "writer" else world.dpo
    before = world.head()
    # json.dumps escapes NUL and lone surrogates as \u0000 and \ud800, as clients send them.
    answer = client.request(
        method,
        _fill(path, world),
        content=_fill(json.dumps(body), world),
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    if field.endswith("..."):
        assert named(problem).startswith(field[:-3]), problem
    else:
        assert named(problem) == field, problem
    assert problem["detail"] and "unexpected" not in problem["detail"]
    assert world.head() == before


def test_as_of_outside_years_1_to_9999_is_a_problem(world: World) -> None:
    before = world.head()
    for when in (LATE, EARLY):
        answer = world.writer.get(
            f"/projects/{P}/questions/lineage",
            params={"node": f"dataset:{P}/raw@1", "as_of": when},
        )
        assert 400 <= answer.status_code < 500, answer.text
        problem = answer.json()
        assert str(problem.get("field")).replace("-", "_").startswith("as_of"), problem
        assert "0001-01-01" in problem["detail"] and "9999-12-31" in problem["detail"]
    assert world.head() == before


def test_the_deepest_nesting_allowed_is_stored(world: World) -> None:
    """A body may nest 64 levels, the body itself the first: params 63 below it."""
    before = world.head()
    answer = world.writer.post(
        f"/projects/{P}/runs/{world.run.removeprefix('run:')}/params",
        json={"params": {"a": nested(MAX_DEPTH - 2)}},
    )
    assert answer.status_code == 200, answer.text
    with world.store.read() as conn:
        [stored] = Store.select_events(conn, before + 1, 1)
    assert (stored.type, stored.entity) == ("run-params-logged", world.run)
    assert stored.body["params"]["a"] == nested(MAX_DEPTH - 2)
    too_deep = world.writer.post(
        f"/projects/{P}/runs/{world.run.removeprefix('run:')}/params",
        json={"params": {"a": nested(MAX_DEPTH - 1)}},
    )
    assert too_deep.status_code == 422 and too_deep.json()["field"].startswith("params.a.0")
    assert world.head() == before + 1


def test_nul_inside_json_values_and_keys_is_stored_alike(world: World) -> None:
    """JSON text writes NUL as \\u0000 and only a key's keyed hash is stored: tags,
    parameters, outputs, attributes and record keys may hold NUL on either store."""
    before = world.head()
    made = world.writer.post(
        f"/projects/{P}/datasets",
        json={"name": "zero", "uri": "s3://z", "digest": "sha256:0b",
              "tags": {"k" + NUL: "v" + NUL}, "records": ["z" + NUL]},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    logged = world.writer.post(
        f"/projects/{P}/runs/{world.run.removeprefix('run:')}/params",
        json={"params": {"p" + NUL: ["q" + NUL]}},
    )
    assert logged.status_code == 200, logged.text
    scored = world.writer.post(
        f"/projects/{P}/deployments/api/predictions",
        json={"model": "m@1", "records": ["z" + NUL], "outputs": [{"label": "y" + NUL}]},
    )
    assert scored.status_code == 200, scored.text
    stored = world.writer.post(
        f"/projects/{P}/subjects/data", json={"subject": "s" + NUL, "attributes": {"a": NUL}}
    )
    assert stored.status_code == 201, stored.text
    with world.store.read() as conn:
        events = Store.select_events(conn, before + 1, 10)
    assert [e.type for e in events] == [
        "dataset-version-registered", "dataset-records-added", "run-params-logged",
        "predictions-logged", "subject-data-stored",
    ]  # fmt: skip
    assert events[0].body["tags"] == {"k" + NUL: "v" + NUL}
    assert events[2].body["params"] == {"p" + NUL: ["q" + NUL]}
    answer = world.writer.post(f"/projects/{P}/questions/scored", json={"record": "z" + NUL})
    assert answer.status_code == 200, answer.text
    assert [p["output"] for p in answer.json()["predictions"]] == [{"label": "y" + NUL}]
    found = world.dpo.post(f"/projects/{P}/subjects/data/search", json={"subject": "s" + NUL})
    assert [e["attributes"] for e in found.json()] == [{"a": NUL}]


def test_years_1_and_9999_are_stored_fixed_width_and_export(
    world: World, tmp_path: Path
) -> None:
    before = world.head()
    early = world.writer.post(
        f"/projects/{P}/datasets",
        json={"name": "ancient", "uri": "s3://a", "digest": "sha256:a1",
              "occurred_at": "0001-01-01T00:00:00Z"},
    )  # fmt: skip
    assert early.status_code == 201, early.text
    late = world.writer.post(
        f"/projects/{P}/runs",
        json={"job": "far", "occurred_at": "9999-12-31T23:59:59.999999Z"},
    )
    assert late.status_code == 201, late.text
    scored = world.writer.post(
        f"/projects/{P}/deployments/api/predictions",
        json={"model": "m@1", "records": ["r1"], "outputs": [0.5], "at": "0001-01-01T00:00:00Z"},
    )
    assert scored.status_code == 200, scored.text
    with world.store.read() as conn:
        stored = Store.select_events(conn, before + 1, 10)
    assert [(e.type, e.occurred_at) for e in stored] == [
        ("dataset-version-registered", "0001-01-01T00:00:00.000000Z"),
        ("run-started", "9999-12-31T23:59:59.999999Z"),
        ("predictions-logged", "0001-01-01T00:00:00.000000Z"),
    ]

    out = tmp_path / "export"
    env = {**os.environ, "MLLEDGER_DB": world.server.db,
           "MLLEDGER_KEY_FILE": str(world.server.key_file)}  # fmt: skip
    done = subprocess.run(
        [*CLI, "export", "--format", "parquet", "--out", str(out), "--project", P],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = pq.read_table(out / "events.parquet").to_pydict()
    assert datetime(1, 1, 1, tzinfo=UTC) in events["occurred_at"]
    assert datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) in events["occurred_at"]
    runs = pq.read_table(out / "runs.parquet").to_pydict()
    assert datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) in runs["started_at"]
    predictions = pq.read_table(out / "predictions.parquet").to_pydict()
    assert datetime(1, 1, 1, tzinfo=UTC) in predictions["at"]


# --- the SDK ------------------------------------------------------------------------------


def refused(
    reg: Registry, call: Callable[[], object], field: str, kind: type[LedgerError] = LedgerError
) -> None:
    """``call`` raises ``kind`` naming ``field`` (a trailing "..." : starting with it), and
    appends nothing."""
    before = reg.ledger.head()
    with pytest.raises(kind) as caught:
        call()
    named_ = getattr(caught.value, "field", None)
    assert named_ is not None, f"{type(caught.value).__name__} names no field: {caught.value}"
    if field.endswith("..."):
        assert named_.startswith(field[:-3]), caught.value
    else:
        assert named_ == field, caught.value
    assert "Unicode" not in type(caught.value).__name__
    assert reg.ledger.head() == before


def test_the_sdk_refuses_what_the_server_refuses(reg: Registry) -> None:
    data = reg.register_dataset("raw", "1", uri="s3://raw", digest="sha256:01", records=["r1"])
    model = reg.register_model("m", artifact_uri="s3://m", artifact_digest="sha256:02")
    reg.deploy("api", endpoint="https://api", served={model: 100})
    ds = reg.register_dataset  # the cases below are refused before anything is appended

    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:0", occurred_at=LATE),
            "occurred_at", FieldError)
    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:0", occurred_at=EARLY),
            "occurred_at", FieldError)
    refused(reg, lambda: ds("t", uri=SURROGATE, digest="sha256:0"), "body.uri", FieldError)
    refused(reg, lambda: ds("t", uri="s3://" + NUL, digest="sha256:0"), "body.uri", FieldError)
    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:0", tags={"a": SURROGATE}),
            "body.tags.a", FieldError)
    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:0", records=["a", SURROGATE]),
            "body.records.1", EventRejected)
    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:0", records=[True]),
            "body.records.0", EventRejected)
    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:0", records=["a"],
                            subjects=[1.0]), "body.subjects.0", EventRejected)
    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:0", row_count="5"),  # type: ignore[arg-type]
            "body.row_count", FieldError)
    refused(reg, lambda: ds("t", uri="s3://t", digest="sha256:" + "0" * 300), "body.digest",
            FieldError)

    def run_with(job: str = "j", **kw: Any) -> None:
        with reg.run(job, **kw):
            pass

    refused(reg, lambda: run_with("j" + NUL), "body.job", FieldError)
    refused(reg, lambda: run_with("j" * 301), "body.job", FieldError)
    refused(reg, lambda: run_with(params={"k": DEEP}), "body.params.k...", FieldError)
    refused(reg, lambda: run_with(params={"k" + SURROGATE: 1}), "body.params...", FieldError)
    refused(reg, lambda: reg.deploy("api", endpoint="https://" + NUL, served={model: 100}),
            "body.endpoint", FieldError)
    refused(reg, lambda: reg.register_model("m", artifact_uri="s3://m", artifact_digest="s",
                                            framework="f" * 129), "body.framework", FieldError)

    predict = reg.log_predictions
    refused(reg, lambda: predict("api", model=model, records=[SURROGATE], outputs=[1]),
            "body.records.0", EventRejected)
    refused(reg, lambda: predict("api", model=model, records=["r1"], outputs=[SURROGATE]),
            "body.outputs.0", EventRejected)
    refused(reg, lambda: predict("api", model=model, records=["r1"], outputs=[1],
                                 trace_ids=["t" + NUL]), "body.trace_ids.0", EventRejected)
    refused(reg, lambda: predict("api", model=model, records=["r1"], outputs=[DEEP]),
            "body.outputs.0...", EventRejected)
    refused(reg, lambda: predict("api", model=model, records=["r1"], outputs=[1],
                                 trace_ids=["t" * 65]), "body.trace_ids.0", EventRejected)
    refused(reg, lambda: predict("api", model=model, records=["r1"], outputs=[1], at=LATE),
            "at", FieldError)

    refused(reg, lambda: reg.store_subject_data(SURROGATE, {"a": 1}), "body.subject",
            EventRejected)
    refused(reg, lambda: reg.store_subject_data(False, {"a": 1}), "body.subject",  # type: ignore[arg-type]
            EventRejected)
    refused(reg, lambda: reg.store_subject_data("s1", {"a": SURROGATE}), "body.attributes.a",
            EventRejected)
    refused(reg, lambda: reg.scored(SURROGATE), "record", FieldError)
    refused(reg, lambda: reg.scored(True), "record", FieldError)
    refused(reg, lambda: reg.footprint(1.0), "subject", FieldError)  # type: ignore[arg-type]
    refused(reg, lambda: reg.erase(False, dry_run=True), "subject", FieldError)
    refused(reg, lambda: reg.erased_records(["r1", SURROGATE]), "records.1", FieldError)
    refused(reg, lambda: reg.lineage(data, as_of=EARLY), "as_of", FieldError)

    # A run that fails with an exception whose name is too long still records its end.
    before = reg.ledger.head()
    long_name = type("E" * 400, (Exception,), {})
    with pytest.raises(long_name), reg.run("train"):
        raise long_name()
    last = reg.ledger.last_event()
    assert last is not None and last.type == "run-failed" and last.position == before + 2
    assert len(last.body["error_type"]) == 300 and last.body["error_type"].endswith("...")


def test_a_refused_record_fails_its_own_call_and_the_session_goes_on(reg: Registry) -> None:
    """A run's records are buffered; one the ledger would refuse (a lone surrogate, NaN,
    ±Infinity) raises EventRejected at the call that made it, is never buffered, and the
    run's other records, later calls and close() still work."""
    data = reg.register_dataset("raw", "1", uri="s3://raw", digest="sha256:01", records=["r1"])
    before = reg.ledger.head()
    with reg.run("train") as run:
        run.use(data)
        for params, field in (
            ({"name": SURROGATE}, "body.params.name"),
            ({"k" + SURROGATE: 1}, "body.params..."),
            ({"lr": NAN}, "body.params.lr"),
            ({"grid": [0.1, INF]}, "body.params.grid.1"),
            ({"deep": {"low": -INF}}, "body.params.deep.low"),
            ({"seed": 2**60}, "body.params.seed"),
        ):
            with pytest.raises(EventRejected) as caught:
                run.log_params(params)
            assert caught.value.event_type == "run-params-logged"
            assert caught.value.index == 0
            if field.endswith("..."):
                assert caught.value.field.startswith(field[:-3]), caught.value
            else:
                assert caught.value.field == field, caught.value
            assert isinstance(caught.value, FieldError)  # what earlier versions raised
        for value in (NAN, 2**53 + 1, 10**400):  # a double would round the last two
            with pytest.raises(EventRejected) as metric:
                run.log_metrics({"auc": value})
            assert metric.value.field == "body.metrics.0.value"
        run.log_params(lr=0.1)
        run.log_metrics({"auc": 0.9})
    reg.flush()
    written = reg.ledger.read(before + 1, 100)
    assert [e.type for e in written] == [
        "run-started", "run-inputs-used", "run-params-logged", "run-metrics-logged",
        "run-completed",
    ]  # fmt: skip
    assert written[2].body == {"params": {"lr": 0.1}}
    # A run's start refuses them too.
    with pytest.raises(EventRejected) as start, reg.run("train", params={"lr": NAN}):
        pass
    assert (start.value.event_type, start.value.field) == ("run-started", "body.params.lr")
    head = reg.ledger.head()
    reg.close()
    assert reg.ledger.head() == head


def test_the_sdk_over_http_refuses_alike(world: World) -> None:
    token = world.server.key(P, "writer")
    with registry.connect(world.server.url, project=P, actor="sdk", api_key=token) as reg:
        before = world.head()
        with pytest.raises(EventRejected) as caught:
            reg.store_subject_data(SURROGATE, {"a": 1})
        assert caught.value.field == "body.subject"
        with pytest.raises(FieldError) as scored:
            reg.scored(False)
        assert scored.value.field == "record"
        with pytest.raises(FieldError) as late:
            reg.register_dataset("t", uri="s3://t", digest="sha256:0", occurred_at=LATE)
        assert late.value.field == "occurred_at"
        with pytest.raises(FieldError) as nul:
            reg.register_dataset("t", uri="s3://" + NUL, digest="sha256:0")
        assert nul.value.field == "body.uri"
        with reg.run("train") as run:
            for params, field in (({"a": SURROGATE}, "body.params.a"),
                                  ({"a": NAN}, "body.params.a")):  # fmt: skip
                with pytest.raises(EventRejected) as bad:
                    run.log_params(params)
                assert bad.value.field == field
            run.log_params(a=1)
        assert world.head() == before + 3  # started, params, completed
    with world.store.read() as conn:
        types = [
            row[0]
            for row in conn.exec_driver_sql(
                f"SELECT type FROM events WHERE position > {int(before)} ORDER BY position"
            )
        ]
    assert types == ["run-started", "run-params-logged", "run-completed"]


# --- exports of values older versions stored ------------------------------------------------


def test_parquet_reads_the_old_short_years_and_names_a_value_it_cannot(
    reg: Registry, tmp_path: Path
) -> None:
    """Versions before the fixed-width form stored year 1 as '1-01-01T...'; the export
    reads it. A value no version wrote stops the export with the table, column and row."""
    made = reg.register_dataset("raw", "1", uri="s3://raw", digest="sha256:01")
    store = reg.ledger.store
    with store.append_transaction() as conn:
        conn.exec_driver_sql(
            "UPDATE cat_datasets SET registered_at = '1-01-01T00:00:00.000000Z' WHERE id = "
            + ("%s" if store.url.startswith("postgresql") else "?"),
            (made.id,),
        )
    scope = Scope.make(reg.ledger.head() + 1, "test")
    parquet.write(store, tmp_path, scope)
    rows = pq.read_table(tmp_path / "dataset_versions.parquet").to_pydict()
    assert rows["registered_at"] == [datetime(1, 1, 1, tzinfo=UTC)]

    with store.append_transaction() as conn:
        conn.exec_driver_sql(
            "UPDATE cat_datasets SET registered_at = 'last tuesday' WHERE id = "
            + ("%s" if store.url.startswith("postgresql") else "?"),
            (made.id,),
        )
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(LedgerError) as caught:
        parquet.write(store, again, scope)
    message = str(caught.value)
    assert "dataset_versions.registered_at" in message and made.id in message
    assert "'last tuesday'" in message and "nothing was exported" in message


def test_openlineage_keys_that_cannot_be_stored_are_refused_with_the_field(
    store_server: ApiServer,
) -> None:
    """A lone surrogate in a facet's key, and a NUL key above a stringified number, are
    refused (or stored) without a 5xx, on both stores."""
    token = store_server.key(P, "writer")
    bad_key = {"custom": {**FACET, "a\udc00b": 1}}
    nul_key = {"custom": {**FACET, "a\u0000b": {"x": 12345678901234567890}}}
    with store_server.client(token) as http:
        refused = http.post(
            "/lineage",
            content=json.dumps(lineage_event(facets=bad_key)).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert refused.status_code in (400, 422), refused.text
        assert str(refused.json()["field"]).startswith("body"), refused.text
        kept = http.post("/lineage", json=lineage_event(facets=nul_key))
        assert kept.status_code == 201, kept.text
