"""The HTTP API over a real uvicorn server, with httpx: writes, batches, errors, traces."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.assembly import open_ledger
from registry.ledger import Ledger
from tests.support.apiserver import ApiServer
from tests.support.helpers import newest

P = "api"


@pytest.fixture(scope="module")
def http(api_server: ApiServer) -> Iterator[httpx.Client]:
    with api_server.client(api_server.key(P, "admin", name="api-tests")) as client:
        yield client


def problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert isinstance(body, dict)
    assert body["status"] == status
    assert str(body["type"]).startswith("urn:mlledger:problem:")
    assert body["title"] and body["detail"] and body["instance"]
    return body


def event(type_: str, entity: str, body: dict[str, object], **kw: object) -> dict[str, object]:
    return {"event_id": str(uuid.uuid4()), "type": type_, "entity": entity, "body": body, **kw}


def dataset_events(name: str) -> list[dict[str, object]]:
    node = f"dataset:{P}/{name}@1"
    return [
        event(
            "dataset-version-registered",
            node,
            {"name": name, "version": "1", "digest": "sha256:0a", "uri": "s3://x"},
        ),
        event("dataset-records-added", node, {"records": ["k1", 2], "subjects": ["s1", None]}),
    ]


def test_a_batch_is_appended_whole_and_records_are_pseudonymised(
    http: httpx.Client, server_ledger: Ledger
) -> None:
    batch = dataset_events("batch")
    answer = http.post(f"/projects/{P}/events", json={"events": batch})
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["positions"]
    assert second == first + 1
    stored = server_ledger.read(first, 2)
    assert [e.type for e in stored] == ["dataset-version-registered", "dataset-records-added"]
    assert [e.event_id for e in stored] == [b["event_id"] for b in batch]
    records = stored[1].body["records"]
    assert len(records) == 2 and "k1" not in records and all(len(r) == 32 for r in records)
    assert stored[0].actor.startswith("key:")
    # Sending the same batch again appends nothing and answers the same positions.
    again = http.post(f"/projects/{P}/events", json={"events": batch})
    assert again.json()["positions"] == [first, second]
    assert newest(server_ledger).position == second


def test_a_bad_event_rejects_the_whole_batch_naming_index_and_field(
    http: httpx.Client, server_ledger: Ledger
) -> None:
    head = server_ledger.head()
    batch = [
        *dataset_events("half"),
        event("run-metrics-logged", f"run:{uuid.uuid4()}", {"metrics": []}),
    ]
    body = problem(http.post(f"/projects/{P}/events", json={"events": batch}), 422)
    assert body["type"] == "urn:mlledger:problem:event-rejected"
    assert body["index"] == 2 and body["field"] == "body.metrics"
    assert body["event_type"] == "run-metrics-logged"
    assert server_ledger.head() == head
    # A reference to something unknown is refused by the ledger, also whole.
    batch = [*dataset_events("half2"), event("run-completed", f"run:{uuid.uuid4()}", {})]
    body = problem(http.post(f"/projects/{P}/events", json={"events": batch}), 422)
    assert body["index"] == 2 and body["field"] == "entity" and "unknown run" in str(body["detail"])
    assert server_ledger.head() == head


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        (f"/projects/{P}/datasets", {"name": "x", "uri": "s3://x"}, "digest"),
        (f"/projects/{P}/datasets", {"name": "x", "uri": "s3://x", "digest": 5}, "digest"),
        (f"/projects/{P}/runs", {"job": ""}, "job"),
        (f"/projects/{P}/events", {"events": [{"type": "run-completed"}]}, "events.0.event_id"),
        (f"/projects/{P}/questions/scored", {"record": [1]}, "record.str"),
    ],
)
def test_malformed_requests_name_the_field(
    http: httpx.Client, path: str, payload: object, field: str
) -> None:
    body = problem(http.post(path, json=payload), 422)
    assert body["type"] == "urn:mlledger:problem:invalid-request"
    assert str(body["field"]).startswith(field), body


def test_semantic_errors_are_problem_details(http: httpx.Client) -> None:
    body = problem(http.get(f"/projects/{P}/questions/lineage", params={"node": "nonsense"}), 400)
    assert body["type"] == "urn:mlledger:problem:invalid-node-id"
    assert "expected" in str(body["detail"])
    body = problem(http.get(f"/projects/{P}/questions/history", params={"deployment": "no"}), 404)
    assert body["type"] == "urn:mlledger:problem:not-found"
    body = problem(http.get("/no/such/route"), 404)
    assert "no route" in str(body["detail"])
    not_allowed = http.delete(f"/projects/{P}/events")
    assert problem(not_allowed, 405)["type"] == "urn:mlledger:problem:method-not-allowed"
    # Allow names every method of the path, not only those of the route that answered.
    assert not_allowed.headers["allow"] == "GET, POST"
    assert http.options(f"/projects/{P}/keys").headers["allow"] == "GET, POST"
    not_json = http.post(
        f"/projects/{P}/events", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert problem(not_json, 422)["type"] == "urn:mlledger:problem:invalid-request"


def test_a_node_of_another_project_is_not_found(http: httpx.Client) -> None:
    # The same answer as for a node that does not exist: a key learns nothing of the
    # nodes of projects it cannot read.
    answer = http.get(f"/projects/{P}/questions/downstream", params={"dataset": "dataset:x/d@1"})
    assert problem(answer, 404)["detail"] == f"no node dataset:x/d@1 in project {P!r}"


def test_native_writes_append_the_events_the_sdk_would(
    http: httpx.Client, server_ledger: Ledger
) -> None:
    made = http.post(
        f"/projects/{P}/datasets",
        json={
            "name": "native",
            "version": "1",
            "uri": "s3://n",
            "digest": "sha256:0b",
            "records": ["a", "b", "c"],
            "subjects": ["x", "y", None],
        },
    )
    assert made.status_code == 201 and made.json()["records"] == 3
    assert newest(server_ledger).type == "dataset-records-added"
    run = http.post(f"/projects/{P}/runs", json={"job": "fit", "inputs": [made.json()["id"]]})
    assert run.status_code == 201
    run_id = run.json()["id"]
    assert newest(server_ledger).type == "run-inputs-used"
    metrics = http.post(f"/projects/{P}/runs/{run_id}/metrics", json={"metrics": {"auc": 0.91}})
    assert newest(server_ledger).body == {"metrics": [{"key": "auc", "value": 0.91, "step": None}]}
    assert metrics.json()["position"] == newest(server_ledger).position
    model = http.post(
        f"/projects/{P}/models",
        json={"name": "m", "run": run_id, "artifact_uri": "s3://m", "artifact_digest": "sha256:1"},
    )
    assert model.json()["version"] == "1" and newest(server_ledger).entity == f"model:{P}/m@1"
    ended = http.post(f"/projects/{P}/runs/{run_id}/end", json={})
    assert ended.json() == {"id": run_id, "job": "fit", "status": "completed"}
    assert newest(server_ledger).type == "run-completed"
    alias = http.put(
        f"/projects/{P}/models/m/aliases/prod", json={"version": "1", "moved_by": "cto"}
    )
    moved = newest(server_ledger)
    assert alias.json()["position"] == moved.position and moved.type == "model-alias-moved"
    assert moved.actor.startswith("cto (key:")
    deployed = http.put(
        f"/projects/{P}/deployments/web", json={"endpoint": "https://w", "served": {"m@prod": 100}}
    )
    assert deployed.json()["served"] == {f"model:{P}/m@1": 100.0}
    logged = http.post(
        f"/projects/{P}/deployments/web/predictions",
        json={"records": ["a", "b"], "outputs": [0.2, {"label": 1}], "model": f"model:{P}/m@1"},
    )
    assert logged.json()["positions"] == [newest(server_ledger).position]
    assert newest(server_ledger).body["count"] == 2
    scored = http.post(f"/projects/{P}/questions/scored", json={"record": "b"}).json()
    assert [p["output"] for p in scored["predictions"]] == [{"label": 1}]
    retired = http.post(f"/projects/{P}/deployments/web/retire", json={"reason": "done"})
    assert newest(server_ledger).type == "deployment-retired"
    assert retired.json()["position"] == newest(server_ledger).position


def test_events_carry_the_trace_id_of_the_request(
    http: httpx.Client, server_ledger: Ledger
) -> None:
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    answer = http.post(
        f"/projects/{P}/events",
        json={"events": dataset_events("traced")},
        headers={"traceparent": traceparent},
    )
    assert answer.status_code == 200
    for stored in server_ledger.read(answer.json()["positions"][0], 2):
        assert stored.trace_id == trace_id
    trail = http.get(f"/projects/{P}/access-trail", params={"since": 0, "limit": 10_000}).json()
    assert any(e["trace_id"] == trace_id and e["action"] == "events.append" for e in trail)


def test_auditors_read_the_projects_log(http: httpx.Client, server_ledger: Ledger) -> None:
    page = http.get(f"/projects/{P}/events", params={"limit": 5}).json()
    assert 0 < len(page["events"]) <= 5
    assert all(e["project"] == P for e in page["events"])
    first = page["events"][0]
    assert first == server_ledger.read(first["position"], 1)[0].as_dict()


# --- one service function per question --------------------------------------------------------


def test_the_routes_and_the_local_backend_ask_the_same_service_function(
    tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each question route and ``LocalBackend.ask`` answer through the function of
    ``registry.services`` named after the question, and give the same JSON."""
    from fastapi.testclient import TestClient

    import registry
    from registry import auth, services
    from registry.api.app import create_app
    from registry.backend import LocalBackend
    from registry.store import open_store

    url = f"sqlite:///{tmp_path}/ledger.db"
    with registry.connect(url, project=P, actor="alice") as reg:
        raw = reg.register_dataset("raw", "1", uri="file:///raw.csv", digest="sha256:" + "a" * 64,
                                   records=["r-1"], subjects=["s-1"])  # fmt: skip
        with reg.run("train", inputs=[raw]) as run:
            model = run.register_model("clf", artifact_uri="file:///m.pkl",
                                       artifact_digest="sha256:" + "b" * 64)  # fmt: skip
        api = reg.deploy("api", endpoint="https://api.example", served={model: 100})
        reg.log_predictions(api, model=model, records=["r-1"], outputs=[0.5])
        reg.set_alias(model, "production")
    store = open_store(url)
    try:
        _, token = auth.create_key(store, project=P, role="dpo", name="t", created_by="tests")
    finally:
        store.dispose()
    asked = [
        ("scored", "POST", "scored", {"record": "r-1"}),
        ("trained_on", "GET", "trained-on", {"model": "clf@production"}),
        ("downstream", "GET", "downstream", {"dataset": "raw@1"}),
        ("lineage", "GET", "lineage", {"node": model.id}),
        ("footprint", "POST", "footprint", {"subject": "s-1"}),
        ("history", "GET", "history", {"deployment": "api"}),
        ("aliases", "GET", "aliases", {"name": "clf"}),
    ]
    assert [name for name, *_ in asked] == list(services.QUESTIONS)
    calls: list[str] = []
    for name in services.QUESTIONS:
        assert services.QUESTIONS[name] is getattr(services, name)

        def spy(*args: object, _name: str = name, _real: object = getattr(services, name),
                **kwargs: object) -> object:  # fmt: skip
            calls.append(_name)
            return _real(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(services, name, spy)
        monkeypatch.setitem(services.QUESTIONS, name, spy)
    monkeypatch.setenv("MLLEDGER_CHECKPOINT_EVERY", "0")
    with TestClient(create_app(url)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        ledger = open_ledger(url)
        try:
            for name, method, path, params in asked:
                route = f"/api/v1/projects/{P}/questions/{path}"
                if method == "POST":
                    got = client.post(route, json=params, headers=headers)
                else:
                    got = client.get(route, params=params, headers=headers)
                assert got.status_code == 200, got.text
                local = LocalBackend(ledger).ask(P, name, **params)
                assert got.json() == local, name
                assert got.content == json.dumps(
                    local, separators=(",", ":"), ensure_ascii=False
                ).encode()
        finally:
            ledger.close()
    assert calls == [name for name, *_ in asked for _ in (0, 1)]
