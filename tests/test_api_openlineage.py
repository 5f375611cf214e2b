"""The official openlineage-python client against a real server: START and COMPLETE of
a job with inputs and outputs, then the Marquez-shaped lineage endpoint shows the job
between its datasets."""

from __future__ import annotations

import uuid

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    datasource_dataset,
    parent_run,
    schema_dataset,
)
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from registry.ledger import Ledger
from tests.support.apiserver import ApiServer

P = "lakehouse"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/integration/airflow"
SOURCE = "postgres://warehouse:5432"


def client_for(server: ApiServer, role: str = "writer") -> OpenLineageClient:
    """The client exactly as an integration configures it: a URL and an API key."""
    config = HttpConfig(url=server.url, auth=ApiKeyTokenProvider({"apiKey": server.key(P, role)}))
    return OpenLineageClient(transport=HttpTransport(config))


def events(run_id: str, state: RunState, time: str) -> RunEvent:
    schema = schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name="amount", type="numeric")]
    )
    return RunEvent(
        eventType=state,
        eventTime=time,
        run=Run(
            runId=run_id,
            facets={
                "parent": parent_run.ParentRunFacet(
                    run=parent_run.Run(runId="0190d3a4-0000-7000-8000-00000000beef"),
                    job=parent_run.Job(namespace="airflow", name="daily_dag"),
                )
            },
        ),
        job=Job(namespace="airflow", name="daily_dag.load_orders"),
        producer=PRODUCER,
        inputs=[
            InputDataset(
                namespace=SOURCE,
                name="public.raw_orders",
                facets={
                    "schema": schema,
                    "dataSource": datasource_dataset.DatasourceDatasetFacet(
                        name=SOURCE, uri=SOURCE
                    ),
                },
            )
        ],
        outputs=[OutputDataset(namespace=SOURCE, name="public.orders")],
    )


def test_the_official_client_records_a_job_between_its_datasets(
    api_server: ApiServer, server_ledger: Ledger
) -> None:
    client = client_for(api_server)
    run_id = str(uuid.uuid4())
    head = server_ledger.head()
    client.emit(events(run_id, RunState.START, "2026-11-01T10:00:00.000Z"))
    client.emit(events(run_id, RunState.COMPLETE, "2026-11-01T10:05:00.000Z"))
    appended = server_ledger.read(head + 1)
    types = [e.type for e in appended]
    assert "run-started" in types and types[-1] != "run-started"
    assert "run-completed" in types
    run = [e for e in appended if e.type == "run-started" and e.entity == f"run:{run_id}"]
    assert run and run[0].body["parent_run"] == "run:0190d3a4-0000-7000-8000-00000000beef"
    assert all(e.project == P for e in appended)

    # Sending the same events again changes nothing.
    after = server_ledger.head()
    client.emit(events(run_id, RunState.COMPLETE, "2026-11-01T10:05:00.000Z"))
    assert server_ledger.head() == after

    viewer = api_server.client(api_server.key(P, "viewer"))
    # As in Marquez, a child job's name follows its parent's ("daily_dag").
    job = "job:airflow:daily_dag.daily_dag.load_orders"
    graph = viewer.get("/lineage", params={"nodeId": job, "depth": 2}).json()["graph"]
    nodes = {n["id"]: n for n in graph}
    source = f"dataset:{SOURCE}:public.raw_orders"
    target = f"dataset:{SOURCE}:public.orders"
    assert {source, job, target} <= set(nodes)
    assert nodes[job]["type"] == "JOB"
    assert nodes[source]["type"] == nodes[target]["type"] == "DATASET"
    assert {"origin": source, "destination": job} in nodes[job]["inEdges"]
    assert {"origin": job, "destination": target} in nodes[job]["outEdges"]
    assert {"origin": source, "destination": job} in nodes[source]["outEdges"]
    assert {"origin": job, "destination": target} in nodes[target]["inEdges"]
    # The dataset answers too, from either side.
    around = viewer.get("/lineage", params={"nodeId": target, "depth": 2}).json()["graph"]
    assert job in {n["id"] for n in around}


def test_a_viewer_key_cannot_write_lineage(api_server: ApiServer) -> None:
    with api_server.client(api_server.key(P, "viewer")) as http:
        answer = http.post("/lineage", json={"eventType": "START"})
    assert answer.status_code == 403


def test_invalid_events_are_problems_naming_the_field(
    api_server: ApiServer, server_ledger: Ledger
) -> None:
    head = server_ledger.head()
    with api_server.client(api_server.key(P, "writer")) as http:
        answer = http.post(
            "/lineage",
            json={
                "eventType": "START",
                "eventTime": "not a time",
                "run": {"runId": str(uuid.uuid4())},
                "job": {"namespace": "n", "name": "j"},
                "producer": PRODUCER,
                "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            },
        )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "eventTime" in answer.json()["detail"]
    assert server_ledger.head() == head
