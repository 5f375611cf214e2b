"""Tags in Marquez's read API, on a real server, on SQLite and PostgreSQL: OpenLineage
``tags`` facets (job, run and dataset, a field's tags included) sent by the official
openlineage-python client, then ``GET /api/v1/tags`` and the ``tags`` of datasets,
their versions, their fields and jobs, each answer checked against Marquez's
published OpenAPI document and against what was sent. A tag's name is ``key:value``,
or its key alone when its value is ``true``; malformed facets give no tag and never
an error.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client import constants as client_constants
from openlineage.client.event_v2 import (
    DatasetEvent,
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    StaticDataset,
)
from openlineage.client.facet_v2 import schema_dataset, tags_dataset, tags_job, tags_run
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from lineage.openlineage.facets import tag_name
from registry.assembly import open_ledger
from tests.support.apiserver import ApiServer
from tests.test_marquez_api import conforms

P = "tagging"
OTHER = "untagged"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/integration/airflow"
LAKE = "s3://lake"
SOURCE = "postgres://db:5432"
#: The run tag the official client adds to every run event it sends.
CLIENT_TAG = f"openlineage_client_version:{client_constants.__version__}"
FACET = {"_producer": PRODUCER, "_schemaURL": "https://example.com/spec/TagsFacet.json"}


@pytest.fixture(scope="module")
def server(store_server: ApiServer) -> ApiServer:
    return store_server


def _dataset_tags(*tags: tuple[str, str, str | None]) -> tags_dataset.TagsDatasetFacet:
    return tags_dataset.TagsDatasetFacet(
        tags=[tags_dataset.TagsDatasetFacetFields(k, v, "DBT", f) for k, v, f in tags]
    )


def _schema(*names: str) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type="text") for n in names]
    )


def _event(
    run_id: str, state: RunState, at: str, output_tags: tags_dataset.TagsDatasetFacet
) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=at,
        run=Run(
            runId=run_id,
            facets={
                "tags": tags_run.TagsRunFacet(tags=[tags_run.TagsRunFacetFields("env", "prod")])
            },
        ),
        job=Job(
            namespace="airflow",
            name="load_customers",
            facets={
                "tags": tags_job.TagsJobFacet(
                    tags=[
                        tags_job.TagsJobFacetFields("team", "data-platform", "USER"),
                        tags_job.TagsJobFacetFields("nightly", "true", "CONFIG"),
                    ]
                )
            },
        ),
        producer=PRODUCER,
        inputs=[InputDataset(namespace=SOURCE, name="shop.public.customers")],
        outputs=[
            OutputDataset(
                namespace=LAKE,
                name="customers",
                facets={"schema": _schema("id", "email"), "tags": output_tags},
            )
        ],
    )


#: What the first run sent for the version it wrote: tags of the dataset, and of fields
#: (one that the schema does not have).
FIRST_TAGS = _dataset_tags(
    ("domain", "sales", None),
    ("tier", "gold", None),
    ("pii", "true", "email"),
    ("classification", "PII", "email"),
    ("pii", "true", "nowhere"),
)
#: What the second run sent for the version it wrote.
SECOND_TAGS = _dataset_tags(
    ("domain", "sales", None), ("certified", "true", None), ("pii", "true", "id")
)


def _malformed(run_id: str) -> dict[str, Any]:
    """A run event whose ``tags`` facets are not what the spec says, as received."""
    return {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-03T10:00:00.000Z",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id, "facets": {"tags": {**FACET, "tags": "env:prod"}}},
        "job": {
            "namespace": "airflow",
            "name": "malformed",
            "facets": {"tags": {**FACET, "tags": {"team": "x"}}},
        },
        "inputs": [
            {
                "namespace": SOURCE,
                "name": "shop.public.orders",
                "facets": {
                    "schema": {
                        **FACET,
                        "fields": [{"name": "id", "type": "int"}],
                    },
                    "tags": {
                        **FACET,
                        "tags": [
                            1,
                            "pii",
                            None,
                            {"key": "", "value": "v"},
                            {"key": 7, "value": "v"},
                            {"key": "count", "value": 5},
                            {"key": "nothing"},
                            {"key": "k", "value": "v", "field": 7},
                            {"key": "k", "value": "v", "field": {"name": "id"}},
                            {"key": "flag", "value": True},
                        ],
                    },
                },
            }
        ],
        "outputs": [
            {
                "namespace": SOURCE,
                "name": "shop.public.orders_copy",
                "facets": {"tags": {**FACET, "tags": None}},
            }
        ],
    }


@pytest.fixture(scope="module")
def sent(server: ApiServer) -> dict[str, Any]:
    """Two runs of one job writing a tagged dataset, a DatasetEvent tagging another,
    and a run whose tags facets are malformed."""
    key = server.key(P, "writer")
    client = OpenLineageClient(
        transport=HttpTransport(
            HttpConfig(url=server.url, auth=ApiKeyTokenProvider({"apiKey": key}))
        )
    )
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    ledger = open_ledger(server.db)
    try:
        head = ledger.head()
        client.emit(_event(first, RunState.START, "2026-11-01T10:00:00.000Z", FIRST_TAGS))
        client.emit(_event(first, RunState.COMPLETE, "2026-11-01T10:05:00.000Z", FIRST_TAGS))
        client.emit(_event(second, RunState.COMPLETE, "2026-11-02T10:00:00.000Z", SECOND_TAGS))
        client.emit(
            DatasetEvent(
                eventTime="2026-11-02T12:00:00.000Z",
                producer=PRODUCER,
                dataset=StaticDataset(
                    namespace=LAKE,
                    name="archive",
                    facets={"tags": _dataset_tags(("retention", "7y", None))},
                ),
            )
        )
        with server.client(key) as http:
            answer = http.post("/lineage", json=_malformed(third))
        assert answer.status_code < 300, answer.text
        appended = ledger.read(head + 1)
    finally:
        ledger.close()
    received = [e.type for e in appended if e.type.startswith("openlineage-")]
    assert received == [
        "openlineage-run-event",
        "openlineage-run-event",
        "openlineage-run-event",
        "openlineage-dataset-event",
        "openlineage-run-event",
    ]
    runs = [e for e in appended if e.type == "openlineage-run-event"]
    assert [e.entity for e in runs] == [f"run:{r}" for r in (first, first, second, third)]
    return {"first": first, "second": second, "third": third}


@pytest.fixture(scope="module")
def http(server: ApiServer) -> httpx.Client:
    return server.client(server.key(P, "viewer"))


def _ok(http: httpx.Client, path: str, **params: Any) -> Any:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, (path, answer.text)
    return answer.json()


#: Every tag the project's events named, by name.
EVERY_TAG = [
    "certified",
    "classification:PII",
    "domain:sales",
    "env:prod",
    "flag",
    "nightly",
    CLIENT_TAG,
    "pii",
    "retention:7y",
    "team:data-platform",
    "tier:gold",
]


def test_tags_lists_every_tag_the_events_named(http: httpx.Client, sent: dict[str, Any]) -> None:
    listed = _ok(http, "/tags")
    conforms(listed, "TagList")
    assert [t["name"] for t in listed["tags"]] == sorted(EVERY_TAG)
    assert all(t["description"] is None for t in listed["tags"])
    assert listed["totalCount"] == len(EVERY_TAG)
    paged = _ok(http, "/tags", limit=2, offset=1)
    conforms(paged, "TagList")
    assert [t["name"] for t in paged["tags"]] == sorted(EVERY_TAG)[1:3]
    assert paged["totalCount"] == len(EVERY_TAG)
    assert _ok(http, "/tags", offset=100)["tags"] == []
    assert http.get("/tags", params={"limit": -1}).status_code == 422


def test_a_dataset_shows_its_latest_versions_tags(http: httpx.Client, sent: dict[str, Any]) -> None:
    dataset = _ok(http, "/namespaces/s3:%2F%2Flake/datasets/customers")
    conforms(dataset, "Dataset")
    assert dataset["tags"] == ["certified", "domain:sales"]
    assert [(f["name"], f["tags"]) for f in dataset["fields"]] == [("id", ["pii"]), ("email", [])]
    assert dataset["facets"]["tags"]["tags"][1]["key"] == "certified"
    listed = _ok(http, "/namespaces/s3:%2F%2Flake/datasets")
    conforms(listed, "DatasetList")
    assert {d["name"]: d["tags"] for d in listed["datasets"]} == {
        "archive": ["retention:7y"],
        "customers": ["certified", "domain:sales"],
    }
    # In the lineage graph too.
    graph = _ok(http, "/lineage", nodeId=f"dataset:{LAKE}:customers", depth=1)["graph"]
    [node] = [n for n in graph if n["id"] == f"dataset:{LAKE}:customers"]
    assert node["data"]["tags"] == ["certified", "domain:sales"]


def test_versions_show_the_datasets_tags_and_their_own_fields_tags(
    http: httpx.Client, sent: dict[str, Any]
) -> None:
    versions = _ok(http, "/namespaces/s3:%2F%2Flake/datasets/customers/versions")
    conforms(versions, "DatasetVersionList")
    newest, oldest = versions["versions"]
    assert [newest["createdByRun"]["id"], oldest["createdByRun"]["id"]] == [
        sent["second"],
        sent["first"],
    ]
    # As in Marquez, every version shows the dataset's tags...
    assert newest["tags"] == oldest["tags"] == ["certified", "domain:sales"]
    # ...and the fields' tags the version itself was sent with (none for a field the
    # schema does not have).
    assert [(f["name"], f["tags"]) for f in newest["fields"]] == [("id", ["pii"]), ("email", [])]
    assert [(f["name"], f["tags"]) for f in oldest["fields"]] == [
        ("id", []),
        ("email", ["classification:PII", "pii"]),
    ]
    assert [t["key"] for t in oldest["facets"]["tags"]["tags"]][:2] == ["domain", "tier"]
    one = _ok(http, f"/namespaces/s3:%2F%2Flake/datasets/customers/versions/{oldest['version']}")
    conforms(one, "DatasetVersion")
    assert one["tags"] == ["certified", "domain:sales"]
    assert one["fields"] == oldest["fields"]
    paged = _ok(http, "/namespaces/s3:%2F%2Flake/datasets/customers/versions", limit=1, offset=1)
    assert paged["versions"][0]["tags"] == ["certified", "domain:sales"]


def test_a_job_shows_the_tags_of_its_latest_runs_job_facets(
    http: httpx.Client, sent: dict[str, Any]
) -> None:
    job = _ok(http, "/namespaces/airflow/jobs/load_customers")
    conforms(job, "Job")
    assert job["tags"] == ["nightly", "team:data-platform"]
    jobs = _ok(http, "/namespaces/airflow/jobs")
    conforms(jobs, "JobList")
    assert {j["name"]: j["tags"] for j in jobs["jobs"]} == {
        "load_customers": ["nightly", "team:data-platform"],
        "malformed": [],
    }
    # A run's tags stay in its facets (Marquez's Run has none), the client's own too.
    run = _ok(http, f"/jobs/runs/{sent['second']}")
    conforms(run, "Run")
    assert [(t["key"], t["value"]) for t in run["facets"]["tags"]["tags"]] == [
        ("env", "prod"),
        ("openlineage_client_version", client_constants.__version__),
    ]


def test_malformed_tags_facets_give_no_tag_and_no_error(
    http: httpx.Client, sent: dict[str, Any]
) -> None:
    orders = _ok(http, "/namespaces/postgres:%2F%2Fdb:5432/datasets/shop.public.orders")
    conforms(orders, "Dataset")
    assert orders["tags"] == ["flag"]  # a boolean true, the one entry that is a tag
    assert orders["fields"] == [{"name": "id", "type": "int", "tags": [], "description": None}]
    copy = _ok(http, "/namespaces/postgres:%2F%2Fdb:5432/datasets/shop.public.orders_copy")
    conforms(copy, "Dataset")
    assert copy["tags"] == [] and copy["facets"]["tags"]["tags"] is None
    [version] = _ok(
        http, "/namespaces/postgres:%2F%2Fdb:5432/datasets/shop.public.orders_copy/versions"
    )["versions"]
    conforms(version, "DatasetVersion")
    assert version["tags"] == []
    job = _ok(http, "/namespaces/airflow/jobs/malformed")
    conforms(job, "Job")
    assert job["tags"] == [] and job["facets"]["tags"]["tags"] == {"team": "x"}
    run = _ok(http, f"/jobs/runs/{sent['third']}")
    assert run["facets"]["tags"]["tags"] == "env:prod"
    feed = _ok(http, "/events/lineage", limit=1)
    assert feed["events"][0]["run"]["runId"] == sent["third"]


def test_another_projects_tags_are_never_seen(server: ApiServer, sent: dict[str, Any]) -> None:
    with server.client(server.key(OTHER, "viewer")) as other:
        listed = _ok(other, "/tags")
        conforms(listed, "TagList")
        assert listed == {"tags": [], "totalCount": 0}
        assert other.get("/namespaces/s3:%2F%2Flake/datasets/customers").status_code == 404


def test_keys_roles_and_the_trail_apply(server: ApiServer, sent: dict[str, Any]) -> None:
    since = server.trail()[-1]["seq"] + 1
    with server.client(None) as anonymous:
        assert anonymous.get("/tags").status_code == 401
    with server.client("mll_not-a-key") as unknown:
        assert unknown.get("/tags").status_code == 401
    for role in ("viewer", "auditor", "dpo"):  # every role reads
        with server.client(server.key(P, role)) as reader:
            assert reader.get("/tags").status_code == 200
    entries = server.trail(since)
    assert [(e["action"], e["outcome"]) for e in entries if e["action"].startswith("marquez")] == [
        ("marquez.tags", "deny"),
        ("marquez.tags", "deny"),
        ("marquez.tags", "allow"),
        ("marquez.tags", "allow"),
        ("marquez.tags", "allow"),
    ]


@pytest.mark.parametrize(
    ("tag", "name"),
    [
        ({"key": "env", "value": "prod", "source": "USER"}, "env:prod"),
        ({"key": "pii", "value": "true"}, "pii"),
        ({"key": "pii", "value": "TRUE"}, "pii"),
        ({"key": "pii", "value": True}, "pii"),
        ({"key": "pii", "value": False}, "pii:false"),
        ({"key": "label", "value": ""}, "label"),
        ({"key": "a:b", "value": "c"}, "a:b:c"),
        ({"key": " ", "value": "x"}, None),
        ({"key": "k", "value": 1}, None),
        ({"key": "k"}, None),
        ({"value": "v"}, None),
        ("pii", None),
        (None, None),
    ],
)
def test_a_tags_name(tag: Any, name: str | None) -> None:
    assert tag_name(tag) == name
