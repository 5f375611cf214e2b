"""``GET /api/v1/lineage?asOf=``: Marquez's lineage graph as it stood at a past time,
a parameter Marquez's readers leave out. Versions registered, runs started and
deployments made by then, each run's state and each deployment's models as they were
then, the edges valid then and the facets the events by then gave (SQLite and
PostgreSQL, in process and over HTTP).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineage import openlineage as ol
from registry.errors import NotFound
from registry.sdk import Registry, connect
from tests.support.apiserver import ApiServer

P = "past"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.0.0/client/python"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
FACET_URL = "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json"
COPY = "job:etl:copy"
ENRICH = "job:etl:enrich"
DAILY = "dataset:s3://lake:daily"


def _event(
    run: str, event_type: str, at: str, job: str, source: str, target: str, fields: list[str]
) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "eventTime": at,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": {"runId": run},
        "job": {"namespace": "etl", "name": job},
        "inputs": [{"namespace": "s3://lake", "name": source}],
        "outputs": [
            {
                "namespace": "s3://lake",
                "name": target,
                "facets": {
                    "schema": {
                        "_producer": PRODUCER,
                        "_schemaURL": FACET_URL,
                        "fields": [{"name": f, "type": "text"} for f in fields],
                    }
                },
            }
        ],
    }


def _send(reg: Registry, *documents: dict[str, Any]) -> None:
    """Append each document's events; assert they were appended."""
    ledger = reg.ledger
    for document in documents:
        head = ledger.head()
        ledger.append(ol.to_events(ledger, P, "tester", document), first_wins=True)
        appended = ledger.read(head + 1)
        assert [e.type for e in appended if e.type.startswith("openlineage-")] == [
            "openlineage-run-event"
        ]


def _populate(reg: Registry) -> dict[str, Any]:
    """copy (raw -> daily) runs 10:00-10:05 on Nov 1, daily's schema gains a field
    at 12:00 (a second copy), enrich (daily -> enriched) starts 11:00 and ends 11:30;
    deployment ``api`` serves clf 1 from 09:00, clf 2 from 13:00."""
    first, second, enrich = (str(uuid.uuid4()) for _ in range(3))
    _send(
        reg,
        _event(first, "START", "2026-11-01T10:00:00Z", "copy", "raw", "daily", ["a"]),
        _event(first, "COMPLETE", "2026-11-01T10:05:00Z", "copy", "raw", "daily", ["a"]),
        _event(enrich, "START", "2026-11-01T11:00:00Z", "enrich", "daily", "enriched", ["a"]),
        _event(enrich, "COMPLETE", "2026-11-01T11:30:00Z", "enrich", "daily", "enriched", ["a"]),
        _event(second, "COMPLETE", "2026-11-01T12:00:00Z", "copy", "raw", "daily", ["a", "b"]),
    )
    models = [
        reg.register_model(
            "clf",
            version,
            artifact_uri=f"s3://m/{version}",
            artifact_digest="sha256:" + version * 64,
            occurred_at="2026-11-01T08:00:00Z",
        )
        for version in ("1", "2")
    ]
    head = reg.ledger.head()
    reg.deploy(
        "api", endpoint="http://x/s", served={models[0]: 100}, occurred_at="2026-11-01T09:00:00Z"
    )
    reg.deploy(
        "api", endpoint="http://x/s", served={models[1]: 100}, occurred_at="2026-11-01T13:00:00Z"
    )
    deployed = reg.ledger.read(head + 1)
    assert [e.type for e in deployed] == ["deployment-configured"] * 2
    return {"runs": [first, second, enrich], "models": models}


@pytest.fixture
def world(store_url: str, isolated_env: Path) -> Iterator[tuple[Registry, dict[str, Any]]]:
    with connect(store_url, project=P, actor="tester") as reg:
        yield reg, _populate(reg)


def _nodes(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["id"]: node for node in graph["graph"]}


def test_the_graph_as_it_stood(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, made = world
    ledger = reg.ledger
    now = _nodes(ol.marquez_graph(ledger, P, DAILY, 5))
    assert {COPY, ENRICH, DAILY} <= set(now)
    # Before enrich started: copy and what it read and wrote, nothing downstream.
    early = _nodes(ol.marquez_graph(ledger, P, DAILY, 5, "2026-11-01T10:30:00Z"))
    assert set(early) == {COPY, DAILY, "dataset:s3://lake:raw"}
    assert [f["name"] for f in early[DAILY]["data"]["fields"]] == ["a"]
    assert early[COPY]["data"]["latestRun"]["state"] == "COMPLETED"
    # While enrich ran: it is there, running, with no end.
    during = _nodes(ol.marquez_graph(ledger, P, ENRICH, 5, "2026-11-01T11:10:00+00:00"))
    run = during[ENRICH]["data"]["latestRun"]
    assert run["state"] == "RUNNING" and run["endedAt"] is None
    assert run["id"] == made["runs"][2]
    assert [f["name"] for f in during[DAILY]["data"]["fields"]] == ["a"]
    # Now: enrich completed, daily's schema from the second copy.
    assert now[ENRICH]["data"]["latestRun"]["state"] == "COMPLETED"
    assert [f["name"] for f in now[DAILY]["data"]["fields"]] == ["a", "b"]
    # Before anything: the node did not exist.
    with pytest.raises(NotFound, match="at 2026-11-01T09:59:59"):
        ol.marquez_graph(ledger, P, DAILY, 5, "2026-11-01T09:59:59Z")


def test_a_deployment_serves_what_it_served_then(world: tuple[Registry, dict[str, Any]]) -> None:
    reg, made = world
    first, second = (m.id for m in made["models"])
    api = f"job:{P}:deployment/api"

    def served(at: str | None) -> tuple[list[str], str]:
        run = _nodes(ol.marquez_graph(reg.ledger, P, api, 1, at))[api]["data"]["latestRun"]
        versions = [v["datasetVersionId"] for v in run["inputDatasetVersions"]]
        assert {v["name"] for v in versions} == {"model/clf"}
        return [v["version"] for v in versions], run["startedAt"]

    assert served("2026-11-01T10:00:00Z") == (["1"], "2026-11-01T09:00:00.000000Z")
    assert served("2026-11-01T13:00:00Z") == (["2"], "2026-11-01T13:00:00.000000Z")
    assert served(None) == (["2"], "2026-11-01T13:00:00.000000Z")
    assert first != second
    with pytest.raises(NotFound):
        ol.marquez_graph(reg.ledger, P, api, 1, "2026-11-01T08:59:00Z")


def test_over_http(tmp_path: Path, isolated_env: Path) -> None:
    """A Marquez reader's request without ``asOf`` answers the graph of now; with it,
    the graph then; a malformed time is refused saying what was expected."""
    server = ApiServer(tmp_path / "server", env={"MLLEDGER_CHECKPOINT_EVERY": "0"})
    server.start()
    try:
        with connect(server.db, project=P, actor="tester") as reg:
            _populate(reg)
        with server.client(server.key(P, "viewer")) as viewer:
            now = viewer.get("/lineage", params={"nodeId": DAILY, "depth": 5})
            assert now.status_code == 200, now.text
            assert ENRICH in _nodes(now.json())
            early = viewer.get(
                "/lineage",
                params={"nodeId": DAILY, "depth": 5, "asOf": "2026-11-01T10:30:00Z"},
            )
            assert early.status_code == 200, early.text
            assert set(_nodes(early.json())) == {COPY, DAILY, "dataset:s3://lake:raw"}
            bad = viewer.get("/lineage", params={"nodeId": DAILY, "asOf": "yesterday"})
            assert bad.status_code in (400, 422) and "asOf" in bad.text, bad.text
            gone = viewer.get("/lineage", params={"nodeId": DAILY, "asOf": "2026-10-01T00:00:00Z"})
            assert gone.status_code == 404, gone.text
    finally:
        server.stop()
