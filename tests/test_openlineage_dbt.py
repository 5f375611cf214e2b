"""Real dbt lineage on a real server, on SQLite and PostgreSQL: the OpenLineage events
``dbt-ol`` (openlineage-dbt) emitted for ``dbt seed``, ``dbt run`` and ``dbt test`` of
a small project (``tests/fixtures/openlineage/dbt``; its README says how they were
captured), posted to ``/api/v1/lineage`` exactly as emitted, then read back through
the Marquez API.

Both modes of the wrapper are sent, each to a project of its own: ``artifacts`` (the
default: dbt's ``run_results.json`` read after each command; seeds are not reported,
so the staging models have no inputs) and ``structured-logs``
(``--consume-structured-logs``: seeds, models, tests and every SQL statement as jobs of
their own, the seeds as the staging models' inputs).

Checked: every event is accepted (201) and appends its ``openlineage-run-event``, the
run's start (with its parent, the ``dbt-run-…`` wrapper run) and its end, and each
dataset's one version; sending them all again appends nothing; the namespaces, jobs
and datasets are exactly the events'; runs keep the events' times and parent facet;
the models' fields are the columns ``schema.yml`` documents, in the model's order,
with their descriptions; the lineage graph leads from the seeds through the staging
models to the mart; column lineage is the facet sent; search finds by part of a name;
the feed holds every event posted. Answers are checked against Marquez's OpenAPI
document as ``tests/test_marquez_api.py`` does.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from registry.assembly import open_ledger
from registry.events import StoredEvent
from tests.support.apiserver import ApiServer
from tests.test_marquez_api import conforms

FIXTURES = Path(__file__).parent / "fixtures" / "openlineage" / "dbt"
COMMANDS = ("seed", "run", "test")
#: The wrapper's modes (a folder of fixtures each) and the project each is sent to.
PROJECTS = {"artifacts": "dbt-artifacts", "structured-logs": "dbt-logs"}
MODES = tuple(PROJECTS)
NAMESPACE = "dbt-demo"  # OPENLINEAGE_NAMESPACE at capture
WAREHOUSE = "duckdb://shop.duckdb"
WRAPPER = "dbt-run-shop_demo"  # the job of every dbt-ol command
SEEDS = ("shop.main.raw_orders", "shop.main.raw_products")
STAGING = ("shop.main.stg_orders", "shop.main.stg_products")
MART = "shop.main.order_revenue"
#: The columns models/schema.yml documents, in the models' order (not alphabetical).
DOCUMENTED = {
    MART: [
        ("order_id", "Identifier of the order."),
        ("product_title", "Title of the product ordered."),
        ("quantity", "Units ordered."),
        ("revenue", "Quantity times unit price, in euros."),
        ("ordered_on", "Day the order was placed."),
    ],
    "shop.main.stg_orders": [
        ("order_id", "Identifier of the order."),
        ("quantity", "Units ordered."),
        ("product_id", "Product ordered."),
        ("ordered_on", "Day the order was placed."),
    ],
    "shop.main.stg_products": [
        ("product_id", "Identifier of the product."),
        ("product_title", "Display title of the product."),
        ("unit_price", "Price of one unit, in euros."),
        ("category", "Product category."),
    ],
}
#: The model jobs' names: the artifacts mode names them after the relation.
MODEL_JOBS = {
    "artifacts": {
        "stg_orders": "shop.main.shop_demo.stg_orders",
        "stg_products": "shop.main.shop_demo.stg_products",
        "order_revenue": "shop.main.shop_demo.order_revenue",
    },
    "structured-logs": {
        "stg_orders": "model.shop_demo.stg_orders",
        "stg_products": "model.shop_demo.stg_products",
        "order_revenue": "model.shop_demo.order_revenue",
    },
}


def _captured(mode: str) -> list[tuple[str, str]]:
    """``(command, line as emitted)`` of every event ``mode`` captured, in order."""
    return [
        (command, line)
        for command in COMMANDS
        for line in (FIXTURES / mode / f"{command}.jsonl").read_text().splitlines()
        if line.strip()
    ]


CAPTURED = {mode: _captured(mode) for mode in MODES}
EVENTS = {mode: [json.loads(line) for _, line in lines] for mode, lines in CAPTURED.items()}


PARENTS = {
    mode: {
        e["job"]["name"]: e["run"]["facets"]["parent"]["job"]["name"]
        for e in events
        if "parent" in e["run"].get("facets", {})
    }
    for mode, events in EVENTS.items()
}


def _marquez(mode: str, job: str) -> str:
    """A job's Marquez name: a child job's follows its parent's (``<parent>.<child>``)."""
    parent = PARENTS[mode].get(job)
    return job if parent is None else f"{_marquez(mode, parent)}.{job}"


def _datasets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [*doc.get("inputs", []), *doc.get("outputs", [])]


def _runs_of(mode: str, job: str) -> list[str]:
    """The run ids of ``job`` in ``mode``'s events, oldest first."""
    return list(dict.fromkeys(e["run"]["runId"] for e in EVENTS[mode] if e["job"]["name"] == job))


def _wrapper_run(mode: str, command: str) -> str:
    """The run id of the ``dbt-run-…`` wrapper of one dbt command."""
    lines = [json.loads(line) for c, line in CAPTURED[mode] if c == command]
    [run] = {e["run"]["runId"] for e in lines if e["job"]["name"] == WRAPPER}
    return str(run)


def _latest_facet(mode: str, name: str, facet: str) -> Any:
    """The ``facet`` of dataset ``name`` in the last event of ``mode`` that sent it."""
    sent = [
        d["facets"][facet]
        for e in EVENTS[mode]
        for d in _datasets(e)
        if d["name"] == name and facet in d.get("facets", {})
    ]
    assert sent, (mode, name, facet)
    return sent[-1]


def _time(text: str) -> datetime:
    """An ISO 8601 time, ``Z`` or ``+00:00`` (dbt-ol writes both)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _node(name: str) -> str:
    return f"dataset:{WAREHOUSE}:{name}"


def _job(name: str) -> str:
    return f"job:{NAMESPACE}:{name}"


def _path(namespace: str, name: str | None = None) -> str:
    """``/namespaces/{namespace}`` (and ``/datasets/{name}``) with both percent-encoded."""
    path = f"/namespaces/{quote(namespace, safe='')}"
    return path if name is None else f"{path}/datasets/{quote(name, safe='')}"


def _ok(http: httpx.Client, path: str, **params: Any) -> Any:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    return answer.json()


def _check_appended(
    doc: dict[str, Any], appended: list[StoredEvent], project: str, seen: set[str]
) -> None:
    """What one posted event appended, all in ``project``: its ``openlineage-run-event``;
    the run's start when the run is not in ``seen`` (naming the wrapper's run as its
    parent, from the ParentRunFacet); its end for a COMPLETE. Adds the run to ``seen``."""
    run = f"run:{doc['run']['runId']}"
    received = [e for e in appended if e.type == "openlineage-run-event"]
    assert [(e.entity, e.body["event_type"]) for e in received] == [(run, doc["eventType"])]
    assert received[0].body["job"]["name"] == doc["job"]["name"]
    assert all(e.project == project for e in appended)
    started = [e for e in appended if e.type == "run-started"]
    if run in seen:
        assert started == []
    else:
        assert [e.entity for e in started] == [run]
        parent = doc["run"]["facets"].get("parent")
        expected = None if parent is None else f"run:{parent['run']['runId']}"
        assert started[0].body["parent_run"] == expected
        assert started[0].body["tags"]["openlineage.job"] == doc["job"]["name"]
        seen.add(run)
    ended = [e for e in appended if e.type in ("run-completed", "run-failed")]
    if doc["eventType"] == "COMPLETE":
        assert [(e.type, e.entity) for e in ended] == [("run-completed", run)]
        assert appended[-1].type == "run-completed"
    else:
        assert ended == []


@pytest.fixture(scope="module")
def server(store_server: ApiServer) -> ApiServer:
    return store_server


@pytest.fixture(scope="module")
def sent(server: ApiServer) -> dict[str, list[StoredEvent]]:
    """Every captured event posted in order, each mode to its project, as a writer:
    each answered 201 and appended what ``_check_appended`` says. The events each mode
    appended, by mode."""
    ledger = open_ledger(server.db)
    appended: dict[str, list[StoredEvent]] = {}
    try:
        for mode, project in PROJECTS.items():
            appended[mode] = []
            seen: set[str] = set()
            with server.client(server.key(project, "writer")) as http:
                for (command, line), doc in zip(CAPTURED[mode], EVENTS[mode], strict=True):
                    head = ledger.head()
                    answer = http.post(
                        "/lineage", content=line, headers={"Content-Type": "application/json"}
                    )
                    assert answer.status_code == 201, (mode, command, line[:200], answer.text)
                    new = ledger.read(head + 1)
                    _check_appended(doc, new, project, seen)
                    appended[mode] += new
    finally:
        ledger.close()
    return appended


@pytest.fixture(scope="module")
def viewers(server: ApiServer) -> Iterator[dict[str, httpx.Client]]:
    """A viewer's client of each mode's project (closed after the module)."""
    clients = {mode: server.client(server.key(p, "viewer")) for mode, p in PROJECTS.items()}
    yield clients
    for client in clients.values():
        client.close()


@pytest.mark.parametrize("mode", MODES)
def test_every_event_recorded_its_run(mode: str, sent: dict[str, list[StoredEvent]]) -> None:
    appended = sent[mode]
    runs = {e["run"]["runId"] for e in EVENTS[mode]}
    types = Counter(e.type for e in appended)
    assert types["openlineage-run-event"] == len(EVENTS[mode])
    # Every run started once and completed once (the wrapper's START comes first, so no
    # parent is started from a ParentRunFacet alone); none failed.
    assert sorted(e.entity for e in appended if e.type == "run-started") == sorted(
        f"run:{r}" for r in runs
    )
    assert sorted(e.entity for e in appended if e.type == "run-completed") == sorted(
        f"run:{r}" for r in runs
    )
    assert "run-failed" not in types
    # One version of each dataset, registered once: a model's output is its run's.
    registered = [e for e in appended if e.type == "dataset-version-registered"]
    names = {d["name"] for e in EVENTS[mode] for d in _datasets(e)}
    assert sorted(e.body["tags"]["openlineage.name"] for e in registered) == sorted(names)
    mart_run = _runs_of(mode, MODEL_JOBS[mode]["order_revenue"])
    [mart] = [e for e in registered if e.body["tags"]["openlineage.name"] == MART]
    assert mart.body["produced_by"] == f"run:{mart_run[0]}"
    # The mart's run read the two staging models.
    [used] = [
        e for e in appended if e.type == "run-inputs-used" and e.entity == mart.body["produced_by"]
    ]
    staged = {e.body["tags"]["openlineage.name"]: e.entity for e in registered}
    assert sorted(used.body["inputs"]) == sorted(staged[n] for n in STAGING)


def test_sending_every_event_again_appends_nothing(
    server: ApiServer, sent: dict[str, list[StoredEvent]]
) -> None:
    ledger = open_ledger(server.db)
    try:
        head = ledger.head()
        for mode, project in PROJECTS.items():
            with server.client(server.key(project, "writer")) as http:
                for _, line in CAPTURED[mode]:
                    answer = http.post(
                        "/lineage", content=line, headers={"Content-Type": "application/json"}
                    )
                    assert answer.status_code == 201, answer.text
        assert ledger.read(head + 1) == []
        assert ledger.head() == head
    finally:
        ledger.close()


@pytest.mark.parametrize("mode", MODES)
def test_namespaces_are_the_events(
    mode: str, viewers: dict[str, httpx.Client], sent: dict[str, list[StoredEvent]]
) -> None:
    listed = _ok(viewers[mode], "/namespaces")
    conforms(listed, "NamespaceList")
    expected = {e["job"]["namespace"] for e in EVENTS[mode]} | {
        d["namespace"] for e in EVENTS[mode] for d in _datasets(e)
    }
    assert expected == {NAMESPACE, WAREHOUSE}
    assert [n["name"] for n in listed["namespaces"]] == sorted(expected)
    one = _ok(viewers[mode], _path(WAREHOUSE))
    conforms(one, "Namespace")
    assert one["name"] == WAREHOUSE


@pytest.mark.parametrize("mode", MODES)
def test_jobs_are_the_events_with_their_runs(
    mode: str, viewers: dict[str, httpx.Client], sent: dict[str, list[StoredEvent]]
) -> None:
    http = viewers[mode]
    listed = _ok(http, f"/namespaces/{NAMESPACE}/jobs", limit=1000)
    conforms(listed, "JobList")
    names = [j["name"] for j in listed["jobs"]]
    assert sorted(names) == sorted({_marquez(mode, e["job"]["name"]) for e in EVENTS[mode]})
    assert listed["totalCount"] == len(names)
    assert all(j["latestRun"]["state"] == "COMPLETED" for j in listed["jobs"])

    # The wrapper: one run per dbt command, newest first, all completed.
    runs = _ok(http, f"/namespaces/{NAMESPACE}/jobs/{WRAPPER}/runs")
    conforms(runs, "RunList")
    assert [r["id"] for r in runs["runs"]] == [_wrapper_run(mode, c) for c in reversed(COMMANDS)]
    assert {r["state"] for r in runs["runs"]} == {"COMPLETED"}

    # The mart's job: between the staging models and the mart, a child of `dbt run`.
    name = MODEL_JOBS[mode]["order_revenue"]
    job = _ok(http, f"/namespaces/{NAMESPACE}/jobs/{quote(_marquez(mode, name), safe='')}")
    conforms(job, "Job")
    assert job["id"] == {"namespace": NAMESPACE, "name": f"{WRAPPER}.{name}"}
    assert (job["simpleName"], job["parentJobName"]) == (name, WRAPPER)
    assert job["inputs"] == [{"namespace": WAREHOUSE, "name": n} for n in STAGING]
    assert job["outputs"] == [{"namespace": WAREHOUSE, "name": MART}]
    assert job["facets"]["jobType"]["integration"] == "DBT"
    assert job["facets"]["jobType"]["jobType"] == "MODEL"
    [run_id] = _runs_of(mode, name)
    assert job["latestRun"]["id"] == run_id
    run = _ok(http, f"/jobs/runs/{run_id}")
    conforms(run, "Run")
    assert run["state"] == "COMPLETED"
    # Its start and end are its START's and COMPLETE's eventTime.
    times = {
        e["eventType"]: _time(e["eventTime"]) for e in EVENTS[mode] if e["job"]["name"] == name
    }
    assert (_time(run["startedAt"]), _time(run["endedAt"])) == (times["START"], times["COMPLETE"])
    assert run["durationMs"] == (times["COMPLETE"] - times["START"]) // timedelta(milliseconds=1)
    assert run["facets"]["parent"]["run"]["runId"] == _wrapper_run(mode, "run")
    assert run["facets"]["parent"]["job"] == {"namespace": NAMESPACE, "name": WRAPPER}
    [written] = run["outputDatasetVersions"]
    assert written["datasetVersionId"]["name"] == MART
    # The staging models' jobs: their seeds as inputs only where the mode reports them.
    for model, table, seed in zip(("stg_orders", "stg_products"), STAGING, SEEDS, strict=True):
        staging_job = _marquez(mode, MODEL_JOBS[mode][model])
        staging = _ok(http, f"/namespaces/{NAMESPACE}/jobs/{quote(staging_job, safe='')}")
        assert staging["outputs"] == [{"namespace": WAREHOUSE, "name": table}]
        seeds = [{"namespace": WAREHOUSE, "name": seed}] if mode == "structured-logs" else []
        assert staging["inputs"] == seeds


@pytest.mark.parametrize("mode", MODES)
def test_datasets_carry_the_documented_columns_in_order(
    mode: str, viewers: dict[str, httpx.Client], sent: dict[str, list[StoredEvent]]
) -> None:
    http = viewers[mode]
    listed = _ok(http, f"{_path(WAREHOUSE)}/datasets", limit=1000)
    conforms(listed, "DatasetList")
    names = {d["name"] for e in EVENTS[mode] for d in _datasets(e)}
    assert sorted(d["name"] for d in listed["datasets"]) == sorted(names)
    assert listed["totalCount"] == len(names)
    expected = {*STAGING, MART} | (set(SEEDS) if mode == "structured-logs" else set())
    assert expected <= names

    for name, documented in DOCUMENTED.items():
        dataset = _ok(http, _path(WAREHOUSE, name))
        conforms(dataset, "Dataset")
        assert dataset["id"] == {"namespace": WAREHOUSE, "name": name}
        assert [(f["name"], f["description"]) for f in dataset["fields"]] == documented
        schema = _latest_facet(mode, name, "schema")
        assert [(f["name"], f["description"]) for f in schema["fields"]] == documented
        docs = _latest_facet(mode, name, "documentation")
        assert dataset["description"] == docs["description"]

    mart = _ok(http, _path(WAREHOUSE, MART))
    assert mart["description"] == "Revenue per order, joining orders to products."
    assert {"schema", "documentation", "dataSource", "dataQualityAssertions"} <= set(mart["facets"])
    # Every test of the mart, accumulated over the events that ran them (with
    # structured logs each test's event carries its own assertion only).
    shown = mart["facets"]["dataQualityAssertions"]["assertions"]
    assert sorted(a["name"] for a in shown) == [
        "not_null_order_revenue_order_id",
        "not_null_order_revenue_revenue",
        "unique_order_revenue_order_id",
    ]
    assert all(a["success"] for a in shown)
    sent_assertions = [
        a
        for e in EVENTS[mode]
        for d in _datasets(e)
        if d["name"] == MART
        for facets in (d.get("facets", {}), d.get("inputFacets", {}))
        for a in facets.get("dataQualityAssertions", {}).get("assertions", [])
    ]
    assert all(a in sent_assertions for a in shown)

    # One version, written by the mart's run, with the fields in the model's order.
    versions = _ok(http, f"{_path(WAREHOUSE, MART)}/versions")
    conforms(versions, "DatasetVersionList")
    [version] = versions["versions"]
    assert versions["totalCount"] == 1
    assert version["createdByRun"]["id"] == _runs_of(mode, MODEL_JOBS[mode]["order_revenue"])[0]
    assert [f["name"] for f in version["fields"]] == [n for n, _ in DOCUMENTED[MART]]
    one = _ok(http, f"{_path(WAREHOUSE, MART)}/versions/{quote(version['version'], safe='')}")
    conforms(one, "DatasetVersion")
    assert one["id"] == version["id"]


def _edges(graph: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Every ``(origin, destination)`` of a lineage graph, from both ends' edges."""
    return {
        (edge["origin"], edge["destination"])
        for node in graph
        for edge in [*node["inEdges"], *node["outEdges"]]
    }


def _reachable(edges: set[tuple[str, str]], start: str, *, up: bool) -> set[str]:
    """The nodes upstream (``up``) or downstream of ``start``."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for origin, destination in edges:
            near, far = (destination, origin) if up else (origin, destination)
            if near == node and far not in seen:
                seen.add(far)
                todo.append(far)
    return seen


@pytest.mark.parametrize("mode", MODES)
def test_lineage_leads_from_the_seeds_through_staging_to_the_mart(
    mode: str, viewers: dict[str, httpx.Client], sent: dict[str, list[StoredEvent]]
) -> None:
    http = viewers[mode]
    answer = _ok(http, "/lineage", nodeId=_node(MART), depth=5)
    conforms(answer, "LineageGraph")
    graph = answer["graph"]
    nodes = {n["id"]: n for n in graph}
    edges = _edges(graph)
    jobs = {model: _marquez(mode, name) for model, name in MODEL_JOBS[mode].items()}
    mart_job = _job(jobs["order_revenue"])
    assert nodes[_node(MART)]["type"] == "DATASET"
    assert nodes[mart_job]["type"] == "JOB"
    assert (mart_job, _node(MART)) in edges
    for model, table in zip(("stg_orders", "stg_products"), STAGING, strict=True):
        assert (_job(jobs[model]), _node(table)) in edges
        assert (_node(table), mart_job) in edges
    upstream = _reachable(edges, _node(MART), up=True)
    assert {_node(t) for t in STAGING} <= upstream
    # The tests read the mart: they are downstream of it.
    test_jobs = {
        _job(_marquez(mode, e["job"]["name"])) for e in EVENTS[mode] if _is_test_of_mart(e)
    }
    assert test_jobs and test_jobs <= _reachable(edges, _node(MART), up=False)
    if mode == "artifacts":
        # dbt's artifacts name no seed as a model's input: the staging models start the graph.
        assert {_node(s) for s in SEEDS}.isdisjoint(nodes)
        assert nodes[_job(jobs["stg_orders"])]["inEdges"] == []
        return
    for seed, model in zip(SEEDS, ("stg_orders", "stg_products"), strict=True):
        assert (_node(seed), _job(jobs[model])) in edges
        assert _node(seed) in upstream
    # And from a seed: the mart is downstream.
    around = _ok(http, "/lineage", nodeId=_node(SEEDS[0]), depth=5)["graph"]
    assert _node(MART) in _reachable(_edges(around), _node(SEEDS[0]), up=False)


@pytest.mark.parametrize("mode", MODES)
def test_column_lineage_is_the_facet_sent(
    mode: str, viewers: dict[str, httpx.Client], sent: dict[str, list[StoredEvent]]
) -> None:
    answer = _ok(viewers[mode], "/column-lineage", nodeId=_node(MART), depth=1)
    fields = {
        n["data"]["field"]: {(i["dataset"], i["field"]) for i in n["data"]["inputFields"]}
        for n in answer["graph"]
        if n["data"]["dataset"] == MART
    }
    facets = [
        d["facets"]["columnLineage"]
        for e in EVENTS[mode]
        for d in e.get("outputs", [])
        if d["name"] == MART and "columnLineage" in d["facets"]
    ]
    if not facets:
        # With structured logs dbt-ol sends no columnLineage facet: nothing to answer.
        assert mode == "structured-logs" and answer["graph"] == []
        return
    expected = {
        field: {(i["name"], i["field"]) for i in lineage["inputFields"]}
        for field, lineage in facets[-1]["fields"].items()
    }
    assert fields == expected
    assert fields["revenue"] == {
        ("shop.main.stg_orders", "quantity"),
        ("shop.main.stg_products", "unit_price"),
    }


def _is_test_of_mart(event: dict[str, Any]) -> bool:
    job_type = event["job"]["facets"].get("jobType", {}).get("jobType")
    return job_type == "TEST" and [d["name"] for d in event.get("inputs", [])] == [MART]


@pytest.mark.parametrize("mode", MODES)
def test_search_by_part_of_a_model_name(
    mode: str, viewers: dict[str, httpx.Client], sent: dict[str, list[StoredEvent]]
) -> None:
    found = _ok(viewers[mode], "/search", q="revenue", limit=100)
    conforms(found, "SearchResultList")
    jobs = {_marquez(mode, e["job"]["name"]) for e in EVENTS[mode]}
    expected = {_job(name) for name in jobs if "revenue" in name} | {
        _node(d["name"]) for e in EVENTS[mode] for d in _datasets(e) if "revenue" in d["name"]
    }
    assert {_node(MART), _job(_marquez(mode, MODEL_JOBS[mode]["order_revenue"]))} <= expected
    assert {r["nodeId"] for r in found["results"]} == expected
    assert found["totalCount"] == len(expected)
    # Datasets only: the staging model's table (and, with structured logs, its tests').
    staging = _ok(viewers[mode], "/search", q="STG_ORDERS", filter="DATASET", limit=100)
    names = {d["name"] for e in EVENTS[mode] for d in _datasets(e) if "stg_orders" in d["name"]}
    assert "shop.main.stg_orders" in names
    assert {r["nodeId"] for r in staging["results"]} == {_node(n) for n in names}
    assert {r["type"] for r in staging["results"]} == {"DATASET"}


def _comparable(event: dict[str, Any]) -> str:
    """An event as canonical text, empty ``inputFacets``/``outputFacets`` left out."""
    event = json.loads(json.dumps(event))
    for side, key in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for dataset in event.get(side, []):
            if dataset.get(key) == {}:
                del dataset[key]
    return json.dumps(event, sort_keys=True)


@pytest.mark.parametrize("mode", MODES)
def test_the_feed_holds_every_event_posted(
    mode: str, viewers: dict[str, httpx.Client], sent: dict[str, list[StoredEvent]]
) -> None:
    feed = _ok(viewers[mode], "/events/lineage", limit=1000)
    conforms(feed, "LineageEventList")
    assert feed["totalCount"] == len(feed["events"]) == len(CAPTURED[mode])
    assert sorted(map(_comparable, feed["events"])) == sorted(map(_comparable, EVENTS[mode]))
    newest = feed["events"][0]
    assert (newest["job"]["name"], newest["eventType"]) == (WRAPPER, "COMPLETE")
    assert newest["run"]["runId"] == _wrapper_run(mode, "test")
