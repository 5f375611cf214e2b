"""Project isolation over HTTP, on a real server on SQLite and PostgreSQL: every route a
writer of one project could use to reach into another is refused, questions answer
nothing of a project the key cannot read, and grants are made by the granting
project's admin, recorded in the log and the trail."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from registry import auth
from registry.assembly import open_ledger
from registry.store import open_store
from tests.support.apiserver import ApiServer

A, B = "alpha", "beta"


@pytest.fixture(scope="module")
def keys(store_server: ApiServer) -> dict[str, str]:
    return {
        f"{project}-{role}": store_server.key(project, role)
        for project in (A, B)
        for role in ("viewer", "writer", "admin")
    }


def _head(server: ApiServer) -> int:
    ledger = open_ledger(server.db)
    try:
        return ledger.head()
    finally:
        ledger.close()


def _newest(server: ApiServer) -> Any:
    ledger = open_ledger(server.db)
    try:
        return ledger.last_event()
    finally:
        ledger.close()


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(store_server: ApiServer, keys: dict[str, str]) -> dict[str, str]:
    """beta's dataset, run (left running) and model; alpha's dataset."""
    with store_server.client(keys[f"{B}-writer"]) as b:
        shared = _ok(
            b.post(f"/projects/{B}/datasets", json={"name": "shared", "version": "1",
                   "uri": "s3://b/shared", "digest": "sha256:b1"}), 201
        )["id"]  # fmt: skip
        run = _ok(b.post(f"/projects/{B}/runs", json={"job": "prep"}), 201)["id"]
        trained = _ok(b.post(f"/projects/{B}/runs", json={"job": "train"}), 201)["id"]
        model = _ok(
            b.post(f"/projects/{B}/models", json={"name": "clf", "version": "1", "run": trained,
                   "artifact_uri": "s3://b/m", "artifact_digest": "sha256:bm"}), 201
        )["id"]  # fmt: skip
        _ok(b.post(f"/projects/{B}/runs/{trained}/end", json={}))
    with store_server.client(keys[f"{A}-writer"]) as a:
        mine = _ok(
            a.post(f"/projects/{A}/datasets", json={"name": "own", "version": "1",
                   "uri": "s3://a/own", "digest": "sha256:a1"}), 201
        )["id"]  # fmt: skip
    return {"shared": shared, "run": run, "model": model, "trained": trained, "mine": mine}


def test_a_writer_cannot_touch_another_projects_run(
    store_server: ApiServer, keys: dict[str, str], world: dict[str, str]
) -> None:
    head = _head(store_server)
    run = world["run"]
    with store_server.client(keys[f"{A}-writer"]) as a:
        for path, body in (
            (f"/projects/{A}/runs/{run}/params", {"params": {"lr": 1}}),
            (f"/projects/{A}/runs/{run}/inputs", {"inputs": [world["mine"]]}),
            (f"/projects/{A}/runs/{run}/metrics", {"metrics": {"acc": 0.5}}),
            (f"/projects/{A}/runs/{run}/end", {"status": "failed", "error_type": "Sabotage"}),
        ):
            got = a.post(path, json=body)
            assert got.status_code == 422, (path, got.text)
            assert got.json()["field"] == "entity"
            assert "unknown run" in got.json()["detail"]
    assert _head(store_server) == head
    with store_server.client(keys[f"{B}-writer"]) as b:
        b.post(f"/projects/{B}/runs/{run}/params", json={"params": {"mine": True}})
    newest = _newest(store_server)
    assert (newest.type, newest.project, newest.entity) == ("run-params-logged", B, run)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("datasets", {"name": "d1", "version": "1", "uri": "s3://a/d", "digest": "sha256:d",
                      "derived_from": ["{shared}"]}, "body.derived_from.0"),
        ("datasets", {"name": "d2", "version": "1", "uri": "s3://a/d", "digest": "sha256:d",
                      "produced_by": "{run}"}, "body.produced_by"),
        ("models", {"name": "m", "version": "1", "run": "{run}", "artifact_uri": "s3://a/m",
                    "artifact_digest": "sha256:m"}, "body.run"),
        ("runs", {"job": "child", "parent": "{run}"}, "body.parent_run"),
        ("runs", {"job": "reads", "inputs": ["{shared}"]}, "body.inputs.0"),
    ],
)  # fmt: skip
def test_references_into_another_project_are_refused(
    store_server: ApiServer,
    keys: dict[str, str],
    world: dict[str, str],
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    sent = {
        k: (
            [x.format(**world) for x in v]
            if isinstance(v, list)
            else v.format(**world)
            if isinstance(v, str)
            else v
        )
        for k, v in body.items()
    }
    head = _head(store_server)
    with store_server.client(keys[f"{A}-writer"]) as a:
        got = a.post(f"/projects/{A}/{path}", json=sent)
    assert got.status_code == 422, got.text
    assert got.json()["field"] == field
    assert _head(store_server) == head


def test_questions_about_another_projects_nodes_are_not_found(
    store_server: ApiServer, keys: dict[str, str], world: dict[str, str]
) -> None:
    with store_server.client(keys[f"{A}-viewer"]) as a:
        for path, params in (
            ("questions/downstream", {"dataset": world["shared"]}),
            ("questions/trained-on", {"model": world["model"]}),
            ("questions/lineage", {"node": world["run"]}),
            ("questions/lineage", {"node": world["shared"]}),
            ("models/resolve", {"model": world["model"]}),
        ):
            got = a.get(f"/projects/{A}/{path}", params=params)
            assert got.status_code == 404, (path, got.text)
            assert B not in got.json()["detail"].replace(params[next(iter(params))], "")
    with store_server.client(keys[f"{B}-viewer"]) as b:
        dossier = b.get(f"/projects/{B}/reports/models/clf@1", params={"format": "json"})
    assert dossier.status_code == 200, dossier.text


def test_grants_are_made_by_the_granting_admin_and_open_the_link(
    store_server: ApiServer, keys: dict[str, str], world: dict[str, str]
) -> None:
    with store_server.client(keys[f"{A}-admin"]) as a:
        assert a.post(f"/projects/{B}/grants", json={"grantee": A}).status_code == 403
    with store_server.client(keys[f"{B}-writer"]) as b:
        assert b.post(f"/projects/{B}/grants", json={"grantee": A}).status_code == 403
    with store_server.client(keys[f"{B}-admin"]) as b:
        made = _ok(b.post(f"/projects/{B}/grants", json={"grantee": A, "reason": "pilot"}), 201)
        again = b.post(f"/projects/{B}/grants", json={"grantee": A})
        assert again.status_code == 422 and "already has access" in again.json()["detail"]
    granted = _newest(store_server)
    assert granted.position == made["position"]
    assert (granted.type, granted.project, granted.entity, granted.body) == (
        "project-access-granted",
        B,
        f"project:{B}",
        {"grantee": A, "reason": "pilot"},
    )

    with store_server.client(keys[f"{A}-writer"]) as a:
        run = _ok(
            a.post(f"/projects/{A}/runs", json={"job": "fit", "inputs": [world["shared"]]}), 201
        )
        model = _ok(
            a.post(f"/projects/{A}/models", json={"name": "fit", "version": "1", "run": run["id"],
                   "artifact_uri": "s3://a/m", "artifact_digest": "sha256:am"}), 201
        )  # fmt: skip
    with store_server.client(keys[f"{A}-viewer"]) as a:
        seen = _ok(a.get(f"/projects/{A}/questions/trained-on", params={"model": model["id"]}))
        assert [d["dataset"] for d in seen["datasets"]] == [world["shared"]]
        listed = _ok(a.get(f"/projects/{A}/grants"))
        assert [(g["project"], g["grantee"], g["revoked_position"]) for g in listed] == [
            (B, A, None)
        ]
    with store_server.client(keys[f"{B}-viewer"]) as b:
        below = _ok(
            b.get(f"/projects/{B}/questions/downstream", params={"dataset": world["shared"]})
        )
        assert below["runs"] == [] and below["models"] == [] and below["withheld"] == 2

    with store_server.client(keys[f"{B}-admin"]) as b:
        _ok(b.delete(f"/projects/{B}/grants/{A}"))
    assert _newest(store_server).type == "project-access-revoked"
    with store_server.client(keys[f"{A}-viewer"]) as a:
        hidden = _ok(a.get(f"/projects/{A}/questions/trained-on", params={"model": model["id"]}))
        assert hidden["datasets"] == [] and hidden["withheld"] == 1

    store = open_store(store_server.db)
    try:
        actions = {e["action"] for e in auth.read_trail(store, limit=100_000)}
    finally:
        store.dispose()
    assert {"grants.create", "grants.revoke", "grants.list"} <= actions


def test_event_ids_are_scoped_and_compared_by_content(
    store_server: ApiServer, keys: dict[str, str], world: dict[str, str]
) -> None:
    event_id = str(uuid.uuid4())

    def event(project: str, job: str) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "type": "run-started",
            "entity": f"run:{uuid.UUID(int=uuid.UUID(event_id).int ^ len(project))}",
            "body": {"job": job},
        }

    with store_server.client(keys[f"{B}-writer"]) as b:
        [theirs] = _ok(b.post(f"/projects/{B}/events", json={"events": [event(B, "x")]}))[
            "positions"
        ]
        again = b.post(f"/projects/{B}/events", json={"events": [event(B, "x")]})
        assert _ok(again)["positions"] == [theirs]
        other = b.post(f"/projects/{B}/events", json={"events": [event(B, "changed")]})
        assert other.status_code == 409, other.text
        assert other.json()["type"] == "urn:mlledger:problem:conflict"
    with store_server.client(keys[f"{A}-writer"]) as a:
        [mine] = _ok(a.post(f"/projects/{A}/events", json={"events": [event(A, "y")]}))["positions"]
    assert mine > theirs
    newest = _newest(store_server)
    assert (newest.project, newest.event_id, newest.body["job"]) == (A, event_id, "y")
