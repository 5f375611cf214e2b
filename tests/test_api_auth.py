"""Keys and roles over HTTP: every endpoint, every role, own and other project.

Deny by default: no key or a revoked one → 401; a key of another project, or a
role without the permission → 403. Every decision, allow or deny, lands in the
access trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from registry import auth
from registry.store import open_store
from tests.support.apiserver import ApiServer

P = "matrix"
RUN = "run:0190d3a4-0000-7000-8000-000000000001"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    permission: str
    json: Any = None
    params: dict[str, Any] | None = None
    # No {project} in the path: the key's own project is used, so no key is "outside" it.
    key_project: bool = False

    @property
    def action(self) -> str:
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("POST", f"/projects/{P}/events", "write", {"events": []}),
    Endpoint("GET", f"/projects/{P}/events", "audit"),
    Endpoint(
        "POST",
        f"/projects/{P}/datasets",
        "write",
        {"name": "d", "version": "1", "uri": "s3://d", "digest": "sha256:01"},
    ),
    Endpoint("POST", f"/projects/{P}/runs", "write", {"job": "train", "run_id": RUN}),
    Endpoint("POST", f"/projects/{P}/runs/{RUN}/inputs", "write", {"inputs": [f"dataset:{P}/d@1"]}),
    Endpoint("POST", f"/projects/{P}/runs/{RUN}/params", "write", {"params": {"c": 1}}),
    Endpoint("POST", f"/projects/{P}/runs/{RUN}/metrics", "write", {"metrics": {"auc": 0.9}}),
    Endpoint(
        "POST",
        f"/projects/{P}/models",
        "write",
        {"name": "clf", "run": RUN, "artifact_uri": "s3://m", "artifact_digest": "sha256:aa"},
    ),
    Endpoint("POST", f"/projects/{P}/runs/{RUN}/end", "write", {}),
    Endpoint("PUT", f"/projects/{P}/models/clf/aliases/prod", "write", {"version": "1"}),
    Endpoint(
        "PUT",
        f"/projects/{P}/deployments/api",
        "write",
        {"endpoint": "e", "served": {"clf@1": 100}},
    ),
    Endpoint(
        "POST",
        f"/projects/{P}/deployments/api/predictions",
        "write",
        {"records": ["r1"], "outputs": [0.5], "model": f"model:{P}/clf@1"},
    ),
    Endpoint("POST", f"/projects/{P}/deployments/api/retire", "write", {}),
    Endpoint(
        "POST", f"/projects/{P}/subjects/data", "write", {"subject": "s", "attributes": {"a": 1}}
    ),
    Endpoint("POST", f"/projects/{P}/questions/scored", "read", {"record": "r1"}),
    Endpoint("GET", f"/projects/{P}/questions/trained-on", "read", params={"model": "clf@1"}),
    Endpoint("GET", f"/projects/{P}/questions/downstream", "read", params={"dataset": "d@1"}),
    Endpoint(
        "GET", f"/projects/{P}/questions/lineage", "read", params={"node": f"dataset:{P}/d@1"}
    ),
    Endpoint("GET", f"/projects/{P}/questions/history", "read", params={"deployment": "api"}),
    Endpoint("GET", f"/projects/{P}/questions/aliases", "read", params={"name": "clf"}),
    Endpoint("POST", f"/projects/{P}/questions/footprint", "personal", {"subject": "s"}),
    Endpoint("POST", f"/projects/{P}/subjects/data/search", "personal", {"subject": "s"}),
    Endpoint("GET", f"/projects/{P}/datasets/d/versions/1", "read"),
    Endpoint("GET", f"/projects/{P}/models/clf/top-version", "read"),
    Endpoint("GET", f"/projects/{P}/models/resolve", "read", params={"model": "clf@prod"}),
    Endpoint("GET", f"/projects/{P}/access-trail", "audit"),
    Endpoint("GET", f"/projects/{P}/openlineage", "audit"),
    Endpoint("GET", f"/projects/{P}/keys", "admin"),
    Endpoint("POST", f"/projects/{P}/keys", "admin", {"role": "viewer", "name": "made"}),
    Endpoint("DELETE", f"/projects/{P}/keys/0000000000000000", "admin"),
    Endpoint(
        "POST",
        "/lineage",
        "write",
        {
            "eventType": "START",
            "eventTime": "2026-11-01T10:00:00Z",
            "run": {"runId": "0190d3a4-0000-7000-8000-0000000000aa"},
            "job": {"namespace": "etl", "name": "load"},
            "producer": "https://example.com/producer",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        },
        key_project=True,
    ),
    Endpoint(
        "GET", "/lineage", "read", params={"nodeId": "job:etl:load", "depth": 2}, key_project=True
    ),
]

PRINCIPALS = ["none", "revoked", *auth.ROLES, "other-project"]


def expected_status(endpoint: Endpoint, principal: str) -> str:
    if principal in ("none", "revoked"):
        return "401"
    if principal == "other-project":
        return "allowed" if endpoint.key_project else "403"
    return "allowed" if endpoint.permission in auth.ROLES[principal] else "403"


@pytest.fixture(scope="module")
def tokens(api_server: ApiServer) -> dict[str, str | None]:
    made: dict[str, str | None] = {"none": None}
    for role in auth.ROLES:
        made[role] = api_server.key(P, role, name=f"matrix-{role}")
    made["other-project"] = api_server.key("elsewhere", "admin")
    revoked = api_server.key(P, "admin")
    store = open_store(api_server.db)
    try:
        auth.revoke_key(store, key_id=revoked.split("_")[1], revoked_by="tests")
    finally:
        store.dispose()
    made["revoked"] = revoked
    return made


def trail(server: ApiServer, since: int) -> list[dict[str, Any]]:
    store = open_store(server.db)
    try:
        return auth.read_trail(store, since=since, limit=10_000)
    finally:
        store.dispose()


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_endpoint_for_every_role(
    api_server: ApiServer, tokens: dict[str, str | None], principal: str
) -> None:
    before = trail(api_server, 0)
    start = before[-1]["seq"] + 1 if before else 0
    seen = []
    with api_server.client(tokens[principal]) as http:
        for endpoint in ENDPOINTS:
            response = http.request(
                endpoint.method, endpoint.path, json=endpoint.json, params=endpoint.params
            )
            want = expected_status(endpoint, principal)
            got = response.status_code
            where = f"{principal}: {endpoint.action} answered {got}: {response.text[:300]}"
            if want == "allowed":
                assert got not in (401, 403) and got < 500, where
            else:
                assert got == int(want), where
                problem = response.json()
                assert response.headers["content-type"].startswith("application/problem+json")
                assert problem["status"] == got and problem["detail"], where
                if got == 401:
                    assert response.headers["www-authenticate"] == "Bearer"
            seen.append((endpoint, want))
    # One trail entry per request, in order, with the decision taken.
    entries = trail(api_server, start)
    # (Keys created or revoked add their own entries, about "key:<id>".)
    decisions = [e for e in entries if e["resource"].startswith("/api/v1/")]
    made = [e for e in entries if e["resource"].startswith("key:")]
    assert [e["action"] for e in made] == (["keys.create"] if principal == "admin" else [])
    assert len(decisions) == len(seen)
    for entry, (endpoint, want) in zip(decisions, seen, strict=True):
        assert entry["outcome"] == ("allow" if want == "allowed" else "deny"), entry
        assert entry["status"] == (200 if want == "allowed" else int(want)), entry
        assert entry["resource"].startswith("/api/v1" + endpoint.path), entry
        assert entry["source"] == "127.0.0.1"
        assert entry["actor"] == ("anonymous" if principal == "none" else entry["actor"])
        if principal not in ("none",):
            assert len(entry["actor"]) == 16


def test_a_revoked_key_stops_at_once(api_server: ApiServer) -> None:
    token = api_server.key(P, "viewer")
    with api_server.client(token) as http:
        assert http.get(f"/projects/{P}/questions/aliases", params={"name": "x"}).status_code in (
            200,
            404,
        )
        admin = api_server.client(api_server.key(P, "admin"))
        key_id = token.split("_")[1]
        revoked = admin.delete(f"/projects/{P}/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        denied = http.get(f"/projects/{P}/questions/aliases", params={"name": "x"})
        assert denied.status_code == 401 and "revoked" in denied.json()["detail"]
    entries = trail(api_server, 0)
    actions = [e["action"] for e in entries if e["resource"] == f"key:{key_id}"]
    assert actions == ["keys.create", "keys.revoke"]


def test_keys_created_over_http_are_shown_once_and_work(api_server: ApiServer) -> None:
    admin = api_server.client(api_server.key(P, "admin"))
    made = admin.post(f"/projects/{P}/keys", json={"role": "auditor", "name": "soc2"})
    assert made.status_code == 201
    token = made.json()["token"]
    listed = admin.get(f"/projects/{P}/keys").json()
    assert any(k["key_id"] == made.json()["key_id"] for k in listed)
    assert all("token" not in k and "secret_hash" not in k for k in listed)
    with api_server.client(token) as auditor:
        assert auditor.get(f"/projects/{P}/access-trail", params={"limit": 1}).status_code == 200
        assert auditor.post(f"/projects/{P}/keys", json={"role": "admin"}).status_code == 403
    assert httpx.get(api_server.url + "/api/v1/health").json() == {"status": "ok"}
