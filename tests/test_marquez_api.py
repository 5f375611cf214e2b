"""Marquez's read API on a real server, on SQLite and PostgreSQL: events sent by the
official openlineage-python client, then every route a Marquez reader calls,
each answer checked against Marquez's published OpenAPI document
(``tests/fixtures/marquez``) and against what was sent.

Marquez's document leaves nullability out (OpenAPI 3.0 needs ``nullable: true``)
while Marquez itself answers ``null`` for an absent description, end time or
location: the check lets every typed member be null, as Marquez's own answers
are. It also reads, as Marquez answers them, column lineage's DATASET_FIELD nodes
(the document's NodeType leaves them out), ``DatasetVersion.tags`` as a list of
names (the document says a string) and ``FacetsResult.facets`` as a map of
facets by name (the document says one facet); and it does not check ``format:
uuid`` (dataset versions here are the producer's or ``run-<hex>`` labels).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    datasource_dataset,
    documentation_dataset,
    job_type_job,
    parent_run,
    schema_dataset,
    sql_job,
)
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from lineage import openlineage
from registry.assembly import open_ledger
from tests.support.apiserver import ApiServer

P = "marquezlike"
OTHER = "elsewhere"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/integration/airflow"
SOURCE = "postgres://db:5432"
LAKE = "s3://lake"
JOB = "nightly.load_orders"
#: Its Marquez name: a child job's name follows its parent's.
FULL = f"nightly.{JOB}"
PARENT_RUN = "0190d3a4-0000-7000-8000-00000000beef"
MARQUEZ = json.loads((Path(__file__).parent / "fixtures" / "marquez" / "openapi.json").read_text())


def _nullable(node: Any) -> Any:
    """Marquez's schemas as its answers are: every typed member may be null."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k not in ("discriminator", "example")}
    if "type" in out:
        if out["type"] is None:
            del out["type"]  # `type:` left empty in the document
        elif isinstance(out["type"], str):
            out["type"] = [out["type"], "null"]
    return out


def _schemas() -> dict[str, Any]:
    document = copy.deepcopy(MARQUEZ)
    version = document["components"]["schemas"]["DatasetVersion"]["properties"]
    version["tags"] = {"type": "array", "items": {"type": "string"}}
    result = document["components"]["schemas"]["FacetsResult"]["properties"]
    result["facets"] = {"type": "object", "additionalProperties": result["facets"]}
    # Column lineage's nodes, which the document's NodeType and GraphNode leave out:
    # DATASET_FIELD, with the data of Marquez's ColumnLineageNodeData.
    schemas = document["components"]["schemas"]
    schemas["NodeType"]["enum"].append("DATASET_FIELD")
    field = {"type": "string"}
    schemas["ColumnLineageGraph"] = {
        "type": "object",
        "required": ["graph"],
        "properties": {
            "graph": {
                "type": "array",
                "items": {
                    "allOf": [
                        {"$ref": "#/components/schemas/GraphNode"},
                        {"properties": {"data": {"$ref": "#/components/schemas/FieldData"}}},
                    ]
                },
            }
        },
    }
    schemas["GraphNode"]["properties"]["data"] = {"type": "object"}
    schemas["FieldData"] = {
        "type": "object",
        "required": ["namespace", "dataset", "field", "inputFields"],
        "properties": {
            "namespace": field,
            "dataset": field,
            "datasetVersion": field,
            "field": field,
            "fieldType": field,
            "transformationDescription": field,
            "transformationType": field,
            "inputFields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["namespace", "dataset", "field"],
                    "properties": {k: field for k in ("namespace", "dataset", "field")},
                },
            },
        },
    }
    return {"components": _nullable(document["components"])}


SCHEMAS = _schemas()


def conforms(answer: Any, schema: str) -> None:
    """``answer`` is valid against Marquez's component ``schema``."""
    jsonschema.Draft7Validator({**SCHEMAS, "$ref": f"#/components/schemas/{schema}"}).validate(
        answer
    )


@pytest.fixture(scope="module")
def server(store_server: ApiServer) -> ApiServer:
    return store_server


def _schema(*fields: tuple[str, str, str | None]) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=n, type=t, description=d)
            for n, t, d in fields
        ]
    )


def _columns(
    namespace: str, name: str, made_of: dict[str, list[str]], how: str
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            out: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(namespace=namespace, name=name, field=f)
                    for f in inputs
                ],
                transformationDescription=how,
                transformationType="AGGREGATION",
            )
            for out, inputs in made_of.items()
        }
    )


def _event(run_id: str, state: RunState, at: str) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=at,
        run=Run(
            runId=run_id,
            facets={
                "parent": parent_run.ParentRunFacet(
                    run=parent_run.Run(runId=PARENT_RUN),
                    job=parent_run.Job(namespace="airflow", name="nightly"),
                )
            },
        ),
        job=Job(
            namespace="airflow",
            name=JOB,
            facets={
                "sql": sql_job.SQLJobFacet(query="INSERT INTO daily SELECT * FROM orders"),
                "jobType": job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="AIRFLOW", jobType="TASK"
                ),
            },
        ),
        producer=PRODUCER,
        inputs=[
            InputDataset(
                namespace=SOURCE,
                name="shop.public.orders",
                facets={
                    # Table order, not alphabetical.
                    "schema": _schema(
                        ("id", "bigint", None),
                        ("amount", "numeric", "in cents"),
                        ("customer", "text", None),
                    ),
                    "documentation": documentation_dataset.DocumentationDatasetFacet(
                        description="Every order placed."
                    ),
                    "dataSource": datasource_dataset.DatasourceDatasetFacet(
                        name="warehouse", uri="postgres://db:5432/shop"
                    ),
                },
            )
        ],
        outputs=[
            OutputDataset(
                namespace=LAKE,
                name="orders/daily",
                facets={
                    "schema": _schema(("day", "date", None), ("total", "numeric", None)),
                    "columnLineage": _columns(
                        SOURCE,
                        "shop.public.orders",
                        {"total": ["amount"], "day": ["id"]},
                        "SUM(amount) by day",
                    ),
                },
            )
        ],
    )


@pytest.fixture(scope="module")
def sent(server: ApiServer) -> dict[str, Any]:
    """Two runs of one job sent by the official client: one completed, one failed."""
    key = ApiKeyTokenProvider({"apiKey": server.key(P, "writer")})
    config = HttpConfig(url=server.url, auth=key)
    client = OpenLineageClient(transport=HttpTransport(config))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    ledger = open_ledger(server.db)
    try:
        head = ledger.head()
        client.emit(_event(first, RunState.START, "2026-11-01T10:00:00.000Z"))
        client.emit(_event(first, RunState.COMPLETE, "2026-11-01T10:05:00.000Z"))
        client.emit(_event(second, RunState.START, "2026-11-02T10:00:00.000Z"))
        client.emit(_event(second, RunState.FAIL, "2026-11-02T10:01:00.000Z"))
        appended = ledger.read(head + 1)
    finally:
        ledger.close()
    received = [e for e in appended if e.type == "openlineage-run-event"]
    assert [e.body["event_type"] for e in received] == ["START", "COMPLETE", "START", "FAIL"]
    assert {e.entity for e in received} == {f"run:{first}", f"run:{second}"}
    return {"first": first, "second": second}


@pytest.fixture(scope="module")
def http(server: ApiServer) -> httpx.Client:
    return server.client(server.key(P, "viewer"))


def _ok(http: httpx.Client, path: str, **params: Any) -> Any:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    return answer.json()


def test_namespaces_list_every_namespace_of_the_project(
    http: httpx.Client, sent: dict[str, Any]
) -> None:
    listed = _ok(http, "/namespaces")
    conforms(listed, "NamespaceList")
    names = [n["name"] for n in listed["namespaces"]]
    assert {"airflow", SOURCE, LAKE} <= set(names)
    assert names == sorted(names)
    one = _ok(http, "/namespaces/s3:%2F%2Flake")
    conforms(one, "Namespace")
    assert one["name"] == LAKE
    assert one["createdAt"] <= one["updatedAt"]
    assert http.get("/namespaces/nowhere").status_code == 404
    not_utf8 = http.get("/namespaces/%C3%28/jobs")
    assert not_utf8.status_code == 400 and "not UTF-8" in not_utf8.json()["detail"]


def test_jobs_and_their_runs(http: httpx.Client, sent: dict[str, Any]) -> None:
    jobs = _ok(http, "/namespaces/airflow/jobs")
    conforms(jobs, "JobList")
    names = [j["name"] for j in jobs["jobs"]]
    assert {FULL, "nightly"} <= set(names) and jobs["totalCount"] == len(names)
    job = _ok(http, f"/namespaces/airflow/jobs/{FULL}")
    conforms(job, "Job")
    assert job["id"] == {"namespace": "airflow", "name": FULL}
    assert (job["simpleName"], job["parentJobName"]) == (JOB, "nightly")
    assert job["latestRun"]["id"] == sent["second"]
    assert job["latestRun"]["state"] == "FAILED"
    assert [r["id"] for r in job["latestRuns"]] == [sent["second"], sent["first"]]
    assert job["inputs"] == [{"namespace": SOURCE, "name": "shop.public.orders"}]
    assert job["outputs"] == [{"namespace": LAKE, "name": "orders/daily"}]
    assert job["facets"]["sql"]["query"] == "INSERT INTO daily SELECT * FROM orders"
    assert job["facets"]["jobType"]["integration"] == "AIRFLOW"

    # Both runs read and wrote the same datasets from the same code: one version.
    versions = _ok(http, f"/namespaces/airflow/jobs/{FULL}/versions")
    conforms(versions, "JobVersionList")
    [version] = versions["versions"]
    assert versions["totalCount"] == 1
    assert version["id"] == {"namespace": "airflow", "name": FULL, "version": job["currentVersion"]}
    assert version["latestRun"]["id"] == sent["second"]
    assert version["inputs"] == job["inputs"] and version["outputs"] == job["outputs"]
    assert version["facets"]["sql"]["query"].startswith("INSERT")
    one = _ok(http, f"/namespaces/airflow/jobs/{FULL}/versions/{job['currentVersion']}")
    conforms(one, "JobVersion")
    assert one["version"] == job["currentVersion"]
    missing = http.get(f"/namespaces/airflow/jobs/{FULL}/versions/{uuid.uuid4()}")
    assert missing.status_code == 404

    runs = _ok(http, f"/namespaces/airflow/jobs/{FULL}/runs")
    conforms(runs, "RunList")
    assert [r["id"] for r in runs["runs"]] == [sent["second"], sent["first"]]
    assert [r["state"] for r in runs["runs"]] == ["FAILED", "COMPLETED"]
    assert runs["totalCount"] == 2
    paged = _ok(http, f"/namespaces/airflow/jobs/{FULL}/runs", limit=1, offset=1)
    assert [r["id"] for r in paged["runs"]] == [sent["first"]] and paged["totalCount"] == 2

    run = _ok(http, f"/jobs/runs/{sent['first']}")
    conforms(run, "Run")
    assert run["state"] == "COMPLETED" and run["durationMs"] == 300_000
    assert run["facets"]["parent"]["run"]["runId"] == PARENT_RUN
    assert run["jobVersion"] == {
        "namespace": "airflow",
        "name": FULL,
        "version": job["currentVersion"],
    }
    [written] = run["outputDatasetVersions"]
    assert written["datasetVersionId"]["name"] == "orders/daily"

    facets = _ok(http, f"/jobs/runs/{sent['first']}/facets", type="job")
    conforms(facets, "FacetsResult")
    assert facets["runId"] == sent["first"]
    assert set(facets["facets"]) == {"sql", "jobType"}
    assert "parent" in _ok(http, f"/jobs/runs/{sent['first']}/facets", type="run")["facets"]
    assert http.get(f"/jobs/runs/{uuid.uuid4()}").status_code == 404
    assert http.get("/jobs/runs/not-a-uuid").status_code == 422
    assert http.get(f"/namespaces/airflow/jobs/{FULL}.nothing").status_code == 404
    # The lineage graph names the job the same way, and finds it by its own name too.
    graph = _ok(http, "/lineage", nodeId=f"job:airflow:{JOB}", depth=0)["graph"]
    assert [n["id"] for n in graph if n["type"] == "JOB"] == [f"job:airflow:{FULL}"]


def test_datasets_and_their_versions_with_encoded_names(
    http: httpx.Client, sent: dict[str, Any]
) -> None:
    listed = _ok(http, "/namespaces/s3:%2F%2Flake/datasets")
    conforms(listed, "DatasetList")
    assert [d["name"] for d in listed["datasets"]] == ["orders/daily"]
    assert listed["totalCount"] == 1
    dataset = _ok(http, "/namespaces/s3:%2F%2Flake/datasets/orders%2Fdaily")
    conforms(dataset, "Dataset")
    assert dataset["id"] == {"namespace": LAKE, "name": "orders/daily"}
    assert {f["name"] for f in dataset["fields"]} == {"day", "total"}

    versions = _ok(http, "/namespaces/s3:%2F%2Flake/datasets/orders%2Fdaily/versions")
    conforms(versions, "DatasetVersionList")
    assert versions["totalCount"] == 2  # one a run
    created_by = [v["createdByRun"]["id"] for v in versions["versions"]]
    assert created_by == [sent["second"], sent["first"]]
    newest = versions["versions"][0]
    one = _ok(
        http,
        "/namespaces/s3:%2F%2Flake/datasets/orders%2Fdaily/versions/" + newest["version"],
    )
    conforms(one, "DatasetVersion")
    assert one["id"] == newest["id"]
    source = _ok(http, "/namespaces/postgres:%2F%2Fdb:5432/datasets/shop.public.orders")
    conforms(source, "Dataset")
    assert source["namespace"] == SOURCE
    # The facets sent: fields in the table's order with their descriptions, the
    # documentation's description, and the facets themselves.
    assert [(f["name"], f["type"], f["description"]) for f in source["fields"]] == [
        ("id", "bigint", None),
        ("amount", "numeric", "in cents"),
        ("customer", "text", None),
    ]
    assert source["description"] == "Every order placed."
    assert set(source["facets"]) == {"schema", "documentation", "dataSource"}
    assert source["sourceName"] == "warehouse"
    # The sources the datasets named.
    listed = _ok(http, "/sources")
    conforms(listed, "SourceList")
    assert [(x["name"], x["connectionUrl"], x["type"]) for x in listed["sources"]] == [
        ("warehouse", "postgres://db:5432/shop", "POSTGRES")
    ]
    assert _ok(http, "/sources/warehouse") == listed["sources"][0]
    assert http.get("/sources/nowhere").status_code == 404
    [version] = _ok(
        http, "/namespaces/postgres:%2F%2Fdb:5432/datasets/shop.public.orders/versions"
    )["versions"]
    assert version["description"] == "Every order placed."
    assert [f["name"] for f in version["fields"]] == ["id", "amount", "customer"]
    graph = _ok(http, "/lineage", nodeId=f"dataset:{SOURCE}:shop.public.orders", depth=1)
    [node] = [n for n in graph["graph"] if n["id"] == f"dataset:{SOURCE}:shop.public.orders"]
    assert node["data"]["description"] == "Every order placed."
    assert [f["name"] for f in node["data"]["fields"]] == ["id", "amount", "customer"]
    assert http.get("/namespaces/s3:%2F%2Flake/datasets/orders").status_code == 404
    assert (
        http.get("/namespaces/s3:%2F%2Flake/datasets/orders%2Fdaily/versions/none").status_code
        == 404
    )


def test_search_by_part_of_a_name(http: httpx.Client, sent: dict[str, Any]) -> None:
    found = _ok(http, "/search", q="ORDERS")
    conforms(found, "SearchResultList")
    ids = {r["nodeId"] for r in found["results"]}
    assert {
        f"dataset:{SOURCE}:shop.public.orders",
        f"dataset:{LAKE}:orders/daily",
        f"job:airflow:{FULL}",
    } <= ids
    assert found["totalCount"] == len(found["results"])
    jobs = _ok(http, "/search", q="load%orders", filter="JOB")
    assert [r["nodeId"] for r in jobs["results"]] == [f"job:airflow:{FULL}"]
    assert _ok(http, "/search", q="orders/_aily", namespace=LAKE)["totalCount"] == 1
    assert _ok(http, "/search", q="orders", limit=1)["totalCount"] == 1
    # Wildcards cannot make a search take long: matched piece by piece, never backtracking.
    started = time.perf_counter()
    assert _ok(http, "/search", q="%" * 500 + "!")["results"] == []
    assert time.perf_counter() - started < 5
    assert _ok(http, "/search", q="s%%h%p_b")["totalCount"] == 1  # shop.public.orders
    refused = http.get("/search", params={"q": "x", "filter": "model"})
    assert refused.status_code == 422 and "filter" in refused.text


def test_the_feed_of_events_received(http: httpx.Client, sent: dict[str, Any]) -> None:
    feed = _ok(http, "/events/lineage")
    conforms(feed, "LineageEventList")
    times = [e["eventTime"] for e in feed["events"]]
    assert times == sorted(times, reverse=True) and feed["totalCount"] == len(times) >= 4
    for event in feed["events"]:
        openlineage.validate(event)
    newest = feed["events"][0]
    assert newest["eventType"] == "FAIL" and newest["run"]["runId"] == sent["second"]
    assert newest["job"]["facets"]["sql"]["query"].startswith("INSERT")
    oldest = _ok(http, "/events/lineage", sortDirection="asc", limit=1)["events"]
    assert oldest[0]["eventTime"].startswith("2026-11-01T10:00")
    window = _ok(
        http,
        "/events/lineage",
        after="2026-11-02T00:00:00Z",
        before="2026-11-02T23:59:59Z",
    )
    assert [e["eventType"] for e in window["events"]] == ["FAIL", "START"]


def test_keys_roles_and_the_trail_apply(server: ApiServer, sent: dict[str, Any]) -> None:
    # Another project's key sees its own project only: nothing of these events.
    with server.client(server.key(OTHER, "viewer")) as other:
        assert _ok(other, "/namespaces")["namespaces"] == []
        assert other.get(f"/namespaces/airflow/jobs/{FULL}").status_code == 404
        assert other.get(f"/jobs/runs/{sent['first']}").status_code == 404
        assert _ok(other, "/search", q="orders")["results"] == []
        assert _ok(other, "/events/lineage")["events"] == []
    since = server.trail()[-1]["seq"] + 1
    with server.client(None) as anonymous:
        assert anonymous.get("/namespaces/airflow/jobs").status_code == 401
    with server.client(server.key(P, "viewer")) as viewer:
        assert viewer.get("/namespaces/s3:%2F%2Flake/datasets").status_code == 200
    entries = server.trail(since)
    assert [(e["action"], e["outcome"]) for e in entries if e["action"].startswith("marquez")] == [
        ("marquez.jobs", "deny"),
        ("marquez.datasets", "allow"),
    ]


def test_column_lineage_upstream_and_downstream(
    server: ApiServer, http: httpx.Client, sent: dict[str, Any]
) -> None:
    # A second job makes a weekly table from the daily one.
    key = ApiKeyTokenProvider({"apiKey": server.key(P, "writer")})
    client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=server.url, auth=key)))
    weekly_run = str(uuid.uuid4())
    ledger = open_ledger(server.db)
    try:
        head = ledger.head()
        client.emit(
            RunEvent(
                eventType=RunState.COMPLETE,
                eventTime="2026-11-03T10:00:00.000Z",
                run=Run(runId=weekly_run),
                job=Job(namespace="airflow", name="weekly"),
                producer=PRODUCER,
                inputs=[InputDataset(namespace=LAKE, name="orders/daily")],
                outputs=[
                    OutputDataset(
                        namespace=LAKE,
                        name="orders/weekly",
                        facets={
                            "schema": _schema(("week_total", "numeric", None)),
                            "columnLineage": _columns(
                                LAKE, "orders/daily", {"week_total": ["total"]}, "SUM by week"
                            ),
                        },
                    )
                ],
            )
        )
        assert "openlineage-run-event" in [e.type for e in ledger.read(head + 1)]
    finally:
        ledger.close()

    weekly = f"datasetField:{LAKE}:orders/weekly:week_total"
    daily = f"datasetField:{LAKE}:orders/daily:total"
    amount = f"datasetField:{SOURCE}:shop.public.orders:amount"
    graph = _ok(http, "/column-lineage", nodeId=f"dataset:{LAKE}:orders/weekly")
    conforms(graph, "ColumnLineageGraph")
    nodes = {n["id"]: n for n in graph["graph"]}
    assert set(nodes) == {weekly, daily, amount}
    assert all(n["type"] == "DATASET_FIELD" for n in nodes.values())
    data = nodes[weekly]["data"]
    assert (data["namespace"], data["dataset"], data["field"]) == (
        LAKE,
        "orders/weekly",
        "week_total",
    )
    assert data["fieldType"] == "numeric"
    assert [
        (f["dataset"], f["field"], f["transformationDescription"]) for f in data["inputFields"]
    ] == [("orders/daily", "total", "SUM by week")]
    assert nodes[weekly]["inEdges"] == [{"origin": weekly, "destination": daily}]
    assert nodes[daily]["outEdges"] == [{"origin": daily, "destination": weekly}]
    assert nodes[daily]["data"]["inputFields"][0]["field"] == "amount"
    # One edge deep: only the weekly column and what it was made of.
    shallow = _ok(http, "/column-lineage", nodeId=weekly, depth=1)
    assert {n["id"] for n in shallow["graph"]} == {weekly, daily}
    # From the source column: nothing upstream; downstream when asked.
    assert _ok(http, "/column-lineage", nodeId=amount)["graph"] == []
    down = _ok(
        http, "/column-lineage", nodeId=f"dataset:{LAKE}:orders/daily", withDownstream="true"
    )
    assert {weekly, daily, amount} <= {n["id"] for n in down["graph"]}
    up_only = _ok(http, "/column-lineage", nodeId=f"dataset:{LAKE}:orders/daily")
    assert weekly not in {n["id"] for n in up_only["graph"]}
    # A job's columns are those of what it wrote.
    by_job = _ok(http, "/column-lineage", nodeId="job:airflow:weekly", depth=1)
    assert {n["id"] for n in by_job["graph"]} == {weekly, daily}
    assert http.get("/column-lineage", params={"nodeId": "dataset:nowhere:x"}).status_code == 404

    # The runs upstream of the weekly run: it, then the run that wrote what it read.
    upstream = _ok(http, "/runlineage/upstream", runId=weekly_run)
    conforms(upstream, "UpstreamRunLineage")
    runs = upstream["runs"]
    assert [r["run"]["id"] for r in runs] == [weekly_run, sent["second"]]
    assert runs[0]["job"]["name"] == "weekly" and runs[0]["run"]["status"] == "COMPLETED"
    [read] = runs[0]["inputs"]
    assert (read["namespace"], read["name"]) == (LAKE, "orders/daily")
    assert read["producedByRunId"] == sent["second"]
    assert [(i["name"], i["producedByRunId"]) for i in runs[1]["inputs"]] == [
        ("shop.public.orders", None)
    ]
    only = _ok(http, "/runlineage/upstream", runId=weekly_run, depth=0)["runs"]
    assert [r["run"]["id"] for r in only] == [weekly_run]
    assert http.get("/runlineage/upstream", params={"runId": str(uuid.uuid4())}).status_code == 404
